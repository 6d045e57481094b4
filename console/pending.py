"""Engine events waiting for the next repaint, coalesced so a flood cannot stall the console.

The engine may publish thousands of events a second (a noisy host replaying its backlog).
Painting each one would starve key handling, so the listener only files events here, in
O(1) and with bounded memory: the latest row per error and per attempt wins, Claude lines
and notices are capped. A short timer drains the lot and paints it once.

Error rows are paced: when every visible row changed, the errors table renders them all
again, about 10 ms of CPU, many times that in wall time on a busy machine. While many
errors change at once (a flood), their rows are handed over at most once every
``flood_seconds``, so key presses are not stuck behind back-to-back table renders; a quiet
console still sees each change at the next flush.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from console.automerge.plan import MergePlan
from console.budget import QueueHold
from console.events import (
    AttemptChanged,
    AutoMergeChanged,
    ClaudeActivity,
    EngineEvent,
    ErrorChanged,
    LinkChanged,
    Notice,
    TelegramChanged,
)
from console.fix.claude import StreamEvent as ClaudeEvent
from console.link import LinkStatus
from console.models import AttemptRow, ErrorRow

MAX_CLAUDE_EVENTS = 2000
MAX_NOTICES = 20
# A drain that hands over this many changed errors counts as a flood...
FLOOD_ROWS = 25
# ...and the next error rows wait this long.
FLOOD_SECONDS = 1.0


@dataclass
class Drained:
    """Everything that changed since the last repaint, newest state only."""

    errors: list[ErrorRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    claude: list[tuple[int, ClaudeEvent]] = field(default_factory=list)
    claude_dropped: int = 0
    links: list[LinkStatus] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    notices_dropped: int = 0
    telegram: TelegramChanged | None = None
    hold: QueueHold | None = None
    # Automatic merges that moved (newest plan per attempt).
    plans: list[MergePlan] = field(default_factory=list)


class PendingUpdates:
    """Collects engine events between repaints; ``add`` is the engine listener's whole work."""

    def __init__(
        self,
        max_claude: int = MAX_CLAUDE_EVENTS,
        max_notices: int = MAX_NOTICES,
        flood_rows: int = FLOOD_ROWS,
        flood_seconds: float = FLOOD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flood_rows = flood_rows
        self._flood_seconds = flood_seconds
        self._clock = clock
        self._errors_due = 0.0  # the clock time before which error rows are held back
        self._errors: dict[int, ErrorRow] = {}
        self._attempts: dict[int, AttemptRow] = {}
        self._claude: deque[tuple[int, ClaudeEvent]] = deque(maxlen=max_claude)
        self._claude_dropped = 0
        self._links: dict[str, LinkStatus] = {}
        self._notices: list[Notice] = []
        self._max_notices = max_notices
        self._notices_dropped = 0
        self._telegram: TelegramChanged | None = None
        self._hold: QueueHold | None = None
        self._plans: dict[int, MergePlan] = {}
        self.received = 0

    def add(self, event: EngineEvent) -> None:
        """File one event; constant time so the engine's loop never waits on the view."""
        self.received += 1
        if isinstance(event, ErrorChanged):
            self._errors.pop(event.error.id, None)  # re-insert: dict order is arrival order
            self._errors[event.error.id] = event.error
        elif isinstance(event, AttemptChanged):
            self._attempts[event.attempt.id] = event.attempt
        elif isinstance(event, ClaudeActivity):
            if len(self._claude) == self._claude.maxlen:
                self._claude_dropped += 1
            self._claude.append((event.attempt_id, event.event))
        elif isinstance(event, LinkChanged):
            self._links[event.status.host] = event.status
        elif isinstance(event, Notice):
            if len(self._notices) < self._max_notices:
                self._notices.append(event)
            else:
                self._notices_dropped += 1
        elif isinstance(event, TelegramChanged):
            self._telegram = event
        elif isinstance(event, QueueHold):
            self._hold = event
        elif isinstance(event, AutoMergeChanged):
            self._plans[event.plan.attempt_id] = event.plan

    def drain(self) -> Drained | None:
        """Hand over what changed and start afresh; None when nothing did.

        Error rows stay behind (and keep coalescing) until a flood's pause is over."""
        now = self._clock()
        errors_due = now >= self._errors_due
        if not (
            (self._errors and errors_due)
            or self._attempts
            or self._claude
            or self._links
            or self._notices
            or self._notices_dropped
            or self._telegram
            or self._hold
            or self._plans
        ):
            return None
        errors = list(self._errors.values()) if errors_due else []
        if errors:
            self._errors = {}
            if len(errors) >= self._flood_rows:
                self._errors_due = now + self._flood_seconds
        drained = Drained(
            errors=errors,
            attempts=list(self._attempts.values()),
            claude=list(self._claude),
            claude_dropped=self._claude_dropped,
            links=list(self._links.values()),
            notices=self._notices,
            notices_dropped=self._notices_dropped,
            telegram=self._telegram,
            hold=self._hold,
            plans=list(self._plans.values()),
        )
        self._attempts = {}
        self._claude.clear()
        self._claude_dropped = 0
        self._links = {}
        self._notices = []
        self._notices_dropped = 0
        self._telegram = None
        self._hold = None
        self._plans = {}
        return drained
