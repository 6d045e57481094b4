"""A console database after a month of work on three services, filled deterministically.

Everything goes through the store's own API (ingest, transitions, attempts, PRs) while the
store's clock is a fake one that walks through the month, so every stamp the store writes
(attempt starts, decisions, receipts) lies where it would after 30 days of real use, and a
fixed seed makes the same file every time. :data:`NOW` is the snapshot stores' moment.

An opened PR goes on as PRs do: some stay open or are closed, most are merged (on GitHub by
a person, or by auto-merge), the service starts again on the merged code, and the error is
resolved or regresses; a regressed auto-merged fix pauses auto-merge and is reverted by
auto-merge, and a person reverts some of the others. That part draws on a random source of
its own and keeps the month's clock where it was, so the rest of the month is the same.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

from agent.wire import ErrorEvent, Start, iso
from console.automerge.plan import MERGED_ACTION, PAUSED_ACTION, RESUMED_ACTION
from console.models import State
from console.store import Store
from tests.snapshot_store import NOW

DAYS = 30
SEED = 13
HOSTS = ("prod-1", "prod-2")
SERVICES = ("PA", "billing", "worker")
KINDS = (
    ("TypeError", "Cannot read properties of undefined (reading '{}')"),
    ("RangeError", "Invalid array length in {}"),
    ("Error", "connect ECONNREFUSED 10.0.0.{}:5432"),
    ("SyntaxError", "Unexpected token < in JSON at position {}"),
    ("TimeoutError", "Request to {} timed out after 5000ms"),
)
SEVERITIES = ("critical", "high", "high", "medium", "medium", "medium", "low")
WORDS = ("id", "user", "cart", "invoice", "sku", "token", "plan", "order", "price", "email")


@dataclass
class FakeClock:
    """The store's ``now_iso`` during the fill: a moment the filler moves forward."""

    now: float

    def iso(self) -> str:
        return iso(self.now)


@dataclass
class Planted:
    error_id: int
    service: str
    fingerprint: str
    severity: str
    kind: str
    message: str
    first_seen: str
    totals: dict[str, int]


class MonthFiller:
    def __init__(self, store: Store, clock: FakeClock, rng: random.Random) -> None:
        self.store, self.clock, self.rng = store, clock, rng
        self.after = random.Random(rng.random())  # what becomes of the opened PRs
        self.seqs = dict.fromkeys(HOSTS, 0)
        self.errors: list[Planted] = []

    async def occur(self, error: Planted, host: str, times: int, first: bool = False) -> int:
        """``times`` more occurrences on ``host``, relayed now; returns the error's id."""
        error.totals[host] = error.totals.get(host, 0) + times
        self.seqs[host] += 1
        results = await self.store.ingest(
            host,
            [
                ErrorEvent(
                    type="error" if first else "update",
                    seq=self.seqs[host],
                    host=host,
                    service=error.service,
                    fingerprint=error.fingerprint,
                    count=error.totals[host],
                    severity=error.severity,  # type: ignore[arg-type]
                    message=error.message,
                    error_type=error.kind,
                    stack=[f"{error.kind}: {error.message}", "    at handler (/srv/app/x.js:1:1)"],
                    route=None,
                    first_seen=error.first_seen,
                    last_seen=iso(self.clock.now),
                )
            ],
        )
        return results[0].error_id

    async def new_error(self) -> Planted:
        rng = self.rng
        kind, template = rng.choice(KINDS)
        number = len(self.errors) + 1
        error = Planted(
            error_id=0,
            service=rng.choice(SERVICES),
            fingerprint=f"fp-{number:04d}",
            severity=rng.choice(SEVERITIES),
            kind=kind,
            message=template.format(f"{rng.choice(WORDS)}{number}"),
            first_seen=iso(self.clock.now),
            totals={},
        )
        error.error_id = await self.occur(error, rng.choice(HOSTS), rng.randint(1, 30), True)
        self.errors.append(error)
        await self.store.transition(error.error_id, State.NEW, State.AWAITING_APPROVAL)
        return error

    def wait(self, low: float, high: float) -> None:
        """Time passes within one error's story (never past the end of the month)."""
        self.clock.now = min(self.clock.now + self.rng.uniform(low, high), NOW - 60)

    async def attempt(self, error: Planted) -> State:
        """One fix attempt from approval to where it ends; returns the error's state."""
        rng, store = self.rng, self.store
        self.wait(120, 4 * 3600)
        attempt = await store.create_attempt(error.error_id, actor="keyboard")
        assert attempt is not None
        self.wait(60, 600)
        cost = round(rng.uniform(0.01, 0.35), 4)
        await store.update_attempt(attempt.id, claude_cost_usd=cost, claude_turns=rng.randint(2, 9))
        roll = rng.random()
        if roll < 0.04:
            await store.transition_attempt(attempt.id, State.FIXING, State.INTERRUPTED,
                                           reason="console stopped during the attempt")  # fmt: skip
            return State.INTERRUPTED
        await store.transition_attempt(attempt.id, State.FIXING, State.TESTING)
        self.wait(20, 300)
        if roll < 0.28:
            await store.transition_attempt(attempt.id, State.TESTING, State.FAILED,
                                           reason="tests failed (exit 1)")  # fmt: skip
            return State.FAILED
        await store.transition_attempt(attempt.id, State.TESTING, State.REVIEW)
        if self.clock.now > NOW - 2 * 86400 and rng.random() < 0.5:
            return State.REVIEW  # the latest ones still wait for a person
        self.wait(300, 10 * 3600)
        if roll < 0.38:
            await store.transition_attempt(attempt.id, State.REVIEW, State.SKIPPED,
                                           actor="telegram:7", reason="not this way")  # fmt: skip
            return State.SKIPPED
        number = attempt.id + 100
        await store.transition_attempt(
            attempt.id, State.REVIEW, State.PR_OPENED, actor="keyboard",
            pr_url=f"https://github.com/acme/{error.service.lower()}/pull/{number}",
            pr_number=number, branch=f"hotfix/auto-{error.fingerprint}-{attempt.id}",
        )  # fmt: skip
        pr = await store.record_pr(
            attempt.id, f"hotfix/auto-{error.fingerprint}-{attempt.id}",
            f"https://github.com/acme/{error.service.lower()}/pull/{number}", number,
        )  # fmt: skip
        month_clock = self.clock.now
        try:
            return await self.after_pr(error, attempt.id, pr.id, number)
        finally:
            self.clock.now = month_clock

    def later(self, low: float, high: float) -> bool:
        """Time passes after the PR; False when the story would run past the month."""
        self.clock.now += self.after.uniform(low, high)
        return self.clock.now < NOW - 60

    async def after_pr(self, error: Planted, attempt_id: int, pr_id: int, number: int) -> State:
        """What became of an opened PR: open, closed, or merged and then resolved or
        regressed (and reverted)."""
        rng, store, eid = self.after, self.store, error.error_id
        roll = rng.random()
        if roll < 0.2 or not self.later(1800, 20 * 3600):
            return State.PR_OPENED
        if roll < 0.3:
            await store.update_pr(pr_id, state="closed", closed_at=self.clock.iso())
            await store.transition(
                eid,
                State.PR_OPENED,
                State.CLOSED,
                actor="github",
                reason=f"pull request #{number} closed without merging",
            )
            return State.CLOSED
        auto = rng.random() < 0.4
        sha = f"{rng.getrandbits(160):040x}"
        by = "auto-merge" if auto else "octocat"
        await store.update_pr(
            pr_id, state="merged", merged_at=self.clock.iso(), merge_sha=sha, merged_by=by
        )
        if auto:
            await store.note_decision(
                eid,
                MERGED_ACTION,
                "auto-merge",
                f"squash-merged PR #{number} as {sha[:12]}: 6 lines, "
                "only stack files, tests pass, checks green, risk low",
                attempt_id=attempt_id,
            )
        await store.transition(
            eid,
            State.PR_OPENED,
            State.MERGED,
            actor="auto-merge" if auto else "github:octocat",
            reason=f"pull request #{number} merged",
        )
        if not self.later(600, 6 * 3600):
            return State.MERGED
        host = rng.choice(HOSTS)
        self.seqs[host] += 1
        started = self.clock.iso()
        await store.record_starts(
            host,
            [
                Start(
                    seq=self.seqs[host],
                    host=host,
                    service=error.service,
                    at=started,
                    line="listening on :3000",
                )
            ],
        )
        state = State.MERGED
        if rng.random() < 0.75:
            if not self.later(3600, 3 * 3600):
                return state
            await store.transition(
                eid,
                state,
                State.RESOLVED,
                actor="console",
                reason=f"no occurrence for 60 min after {host} started again at {started}",
                marks={"resolved_at": self.clock.iso()},
            )
            state = State.RESOLVED
            if rng.random() < 0.75:
                return state
        if not self.later(600, 2 * 86400):
            return state
        await self.occur(error, host, rng.randint(100, 900))  # it comes back hard
        await store.transition(
            eid,
            state,
            State.REGRESSED,
            actor="console",
            reason=f"occurred again on {host}, which started again at "
            f"{started} after PR #{number} was merged",
            marks={"regressed_at": self.clock.iso()},
        )
        if auto:
            await store.note_decision(
                eid, PAUSED_ACTION, "auto-merge", f"auto-merged PR #{number} regressed"
            )
        reverter = "auto-merge" if auto else "keyboard" if rng.random() < 0.5 else None
        if reverter is not None and self.later(30, 3600):
            revert = number + 5000
            await store.record_pr(
                attempt_id,
                f"revert/auto-{error.fingerprint}-pr{number}",
                f"https://github.com/acme/{error.service.lower()}/pull/{revert}",
                revert,
                kind="revert",
            )
            await store.note_decision(
                eid, "revert", reverter, f"opened revert pull request #{revert}"
            )
        if auto and self.later(3600, 86400):
            await store.note_decision(
                eid, RESUMED_ACTION, "keyboard", f"auto-merge for {error.service} resumed"
            )
        return State.REGRESSED


async def fill_month(db_path: Path, *, seed: int = SEED, days: int = DAYS) -> None:
    """A month of errors appearing, recurring and being fixed (or not) on three services."""
    rng = random.Random(seed)
    clock = FakeClock(NOW - days * 86400)
    with ExitStack() as stack:
        for module in ("console.store.db", "console.store.ingest"):
            stack.enter_context(patch(f"{module}.now_iso", clock.iso))
        store = await Store.open(db_path)
        try:
            filler = MonthFiller(store, clock, rng)
            for day in range(days):
                day_start = NOW - (days - day) * 86400
                for _ in range(rng.randint(1, 4)):
                    clock.now = day_start + rng.uniform(0, 20 * 3600)
                    error = await filler.new_error()
                    if rng.random() < 0.12:
                        await store.transition(error.error_id, State.AWAITING_APPROVAL,
                                               State.SKIPPED, actor="keyboard")  # fmt: skip
                        continue
                    if rng.random() < 0.1:
                        continue  # left waiting for approval
                    state = await filler.attempt(error)
                    if state is State.FAILED and rng.random() < 0.6:
                        await filler.attempt(error)
                # Older errors come back: a few occurrences on either host.
                for error in rng.sample(filler.errors, min(len(filler.errors), 5)):
                    clock.now = day_start + rng.uniform(0, 86400 - 60)
                    await filler.occur(error, rng.choice(HOSTS), rng.randint(1, 200))
            clock.now = NOW
        finally:
            await store.close()
