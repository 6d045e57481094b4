"""Applying the lifecycle's rules (:mod:`console.lifecycle.rules`) to the store.

Two moments decide: each ingested batch (a merged fix's error occurring again on a host
that started since the merge is ``regressed``; a skipped error coming back fast is
``escalating``), and a sweep every few seconds (a merged fix's error that stayed away long
enough after a start is ``resolved``). Each move is a compare-and-set recorded as a
decision by ``console`` through the engine's :class:`~console.decision_log.DecisionLog`,
with the reason a person reads; the engine is then told, so a regression of an
auto-merged fix pauses auto-merge (and opens the revert when the policy says so).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from agent.wire import ErrorEvent
from console.config import ConsoleConfig
from console.decision_log import DecisionLog
from console.events import NoticeLevel
from console.lifecycle.rules import (
    ESCALATE_BASELINE_MINUTES,
    ESCALATE_WINDOW_MINUTES,
    escalates,
    is_regression,
    resolution,
    split_window,
)
from console.models import STATE_LABELS, WATCHED_STATES, ErrorRow, State
from console.store import Store
from console.store.schema import now_iso

ACTOR = "console"
# The sweep's interval bounds: often enough for a resolve_after of seconds (tests, demos),
# never more than twice a minute otherwise.
MIN_SWEEP_S = 0.5
MAX_SWEEP_S = 30.0

# What the engine is told after a move (recorded and said already): the moved error, its
# new state and the reason.
OnMove = Callable[[ErrorRow, State, str], Awaitable[None]]
# How loud each move is said: a regression is an alarm, an escalation a warning.
_LEVELS: dict[State, NoticeLevel] = {State.REGRESSED: "error", State.ESCALATING: "warning"}


class LifecycleWatch:
    """Moves errors after their PR: resolved, regressed, escalating."""

    def __init__(
        self, config: ConsoleConfig, store: Store, *, decisions: DecisionLog, on_move: OnMove
    ) -> None:
        self.config = config
        self.store = store
        self._decisions = decisions
        self._on_move = on_move

    @property
    def sweep_seconds(self) -> float:
        """How often :meth:`sweep` runs: a tenth of the shortest resolve time, bounded."""
        shortest = min((s.resolve_after_minutes for s in self.config.services), default=60.0)
        return min(MAX_SWEEP_S, max(MIN_SWEEP_S, shortest * 60 / 10))

    async def after_ingest(
        self, host: str, events: Sequence[ErrorEvent], rows: Sequence[ErrorRow]
    ) -> None:
        """Look at the errors one host's batch touched: a regression or an escalation."""
        latest: dict[tuple[str, str], str] = {}
        for e in events:
            key = (e.service, e.fingerprint)
            if e.last_seen > latest.get(key, ""):
                latest[key] = e.last_seen
        for row in rows:
            if row.state in WATCHED_STATES:
                await self._check_regression(host, row, latest.get((row.service, row.fingerprint)))
            elif row.state is State.SKIPPED:
                await self._check_escalation(row)

    async def _check_regression(self, host: str, row: ErrorRow, occurred: str | None) -> None:
        pr = await self.store.fix_pr(row.current_attempt_id)
        if pr is None or pr.merged_at is None:
            return
        start = await self.store.first_start(row.service, pr.merged_at, host=host)
        if start is None or not is_regression(occurred, start.at):
            return
        reason = (
            f"occurred again at {occurred} on {host}, which started again at {start.at} "
            f"after PR #{pr.number} was merged at {pr.merged_at}"
        )
        await self._move(row, State.REGRESSED, reason, regressed_at=now_iso())

    async def _check_escalation(self, row: ErrorRow) -> None:
        service = self.config.service(row.service)
        if service is None:
            return
        minutes = ESCALATE_WINDOW_MINUTES + ESCALATE_BASELINE_MINUTES
        series = await self.store.occurrences_per_minute(row.id, time.time(), minutes)
        recent, baseline = split_window(series)
        if not escalates(recent, baseline, service.escalate_factor):
            return
        reason = (
            f"{recent} occurrence(s) in the last {ESCALATE_WINDOW_MINUTES} min against "
            f"{baseline} in the {ESCALATE_BASELINE_MINUTES} min before "
            f"(escalate_factor {service.escalate_factor:g})"
        )
        await self._move(row, State.ESCALATING, reason)

    async def sweep(self, now: float | None = None) -> int:
        """Resolve the merged fixes whose error stayed away long enough; returns how many."""
        moment = time.time() if now is None else now
        resolved = 0
        for row in await self.store.errors(limit=10_000, state=State.MERGED):
            service = self.config.service(row.service)
            pr = await self.store.fix_pr(row.current_attempt_id)
            if service is None or pr is None or pr.merged_at is None:
                continue
            start = await self.store.first_start(row.service, pr.merged_at)
            quiet = resolution(
                start.received_at if start else None,
                await self.store.last_received(row.id) if start else None,
                moment,
                service.resolve_after_minutes * 60,
            )
            if not quiet.resolved or start is None:
                continue
            reason = (
                f"no occurrence for {_minutes(service.resolve_after_minutes)} after "
                f"{start.host} started again at {start.at} (PR #{pr.number} merged at "
                f"{pr.merged_at})"
            )
            if await self._move(row, State.RESOLVED, reason, resolved_at=now_iso()):
                resolved += 1
        return resolved

    async def _move(self, row: ErrorRow, new: State, reason: str, **marks: str) -> bool:
        moved = await self._decisions.move(
            row,
            new,
            ACTOR,
            reason,
            title=STATE_LABELS[new],
            level=_LEVELS.get(new, "info"),
            marks=marks or None,
        )
        if moved is not None:
            await self._on_move(moved, new, reason)
        return moved is not None


def _minutes(value: float) -> str:
    return f"{value:g} min" if value >= 1 else f"{value * 60:g} s"
