"""A console database after a month of work on three services, filled deterministically.

Everything goes through the store's own API (ingest, transitions, attempts, PRs) while the
store's clock is a fake one that walks through the month, so every stamp the store writes
(attempt starts, decisions, receipts) lies where it would after 30 days of real use, and a
fixed seed makes the same file every time. :data:`NOW` is the snapshot stores' moment.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

from agent.wire import ErrorEvent, iso
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
        await store.record_pr(
            attempt.id, f"hotfix/auto-{error.fingerprint}-{attempt.id}",
            f"https://github.com/acme/{error.service.lower()}/pull/{number}", number,
        )  # fmt: skip
        return State.PR_OPENED


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
