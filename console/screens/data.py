"""What the screens read, and from whom: the app hands each screen a :class:`ScreenData`.

Screens hold no store, engine or git handle; they ask this for rows and for which decisions
are possible (the engine's one flow rule), so a view can be built and tested on any source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from console.automerge.plan import MergePlan
from console.budget import QueueHold
from console.fix.claude_state import ClaudeState
from console.fix.frames import FramePosition
from console.history import History, HistoryQuery
from console.link import LinkStatus
from console.models import Action, AttemptRow, DecisionRow, ErrorRow
from console.regression import AfterMerge


@dataclass(frozen=True)
class Overview:
    """What the main screen shows when it opens."""

    hosts: list[str]
    seqs: dict[str, int]
    links: dict[str, LinkStatus]
    telegram: tuple[str, str | None]
    errors: list[ErrorRow]
    attempts: list[AttemptRow]
    # Errors of listed attempts that are not among ``errors`` (older ones), for labels.
    attempt_errors: list[ErrorRow] = field(default_factory=list)
    # What the header and the Claude panel say about Claude (None: nothing to say).
    claude: ClaudeState | None = None
    # What today's attempts cost and what holds the queue (the daily budget, a rate limit).
    hold: QueueHold | None = None


@dataclass(frozen=True)
class ErrorDetail:
    """Everything the detail screen shows about one error."""

    error: ErrorRow | None
    samples: list[str]
    attempts: list[AttemptRow]
    decisions: list[DecisionRow]
    # The stack's in-app frames in the service's checkout, through source maps where the
    # build left them (the latest attempt's worktree when it is still there).
    sources: list[FramePosition] = field(default_factory=list)
    # Its latest merged fix and the occurrences since the merged code ran (None: never
    # merged).
    after_merge: AfterMerge | None = None


class ScreenData(Protocol):
    """The reads and the flow question the screens need; the app implements it."""

    async def overview(self, max_errors: int, max_attempts: int) -> Overview: ...

    async def attempt(self, attempt_id: int) -> AttemptRow | None: ...

    async def transcript(self, attempt_id: int) -> list[str]: ...

    async def occurrences_per_minute(self, error_id: int, now: float) -> list[int]: ...

    async def detail(self, error_id: int, samples: int) -> ErrorDetail: ...

    async def history(self, query: HistoryQuery, now: float) -> History: ...

    async def unanswered_regressions(self) -> list[ErrorRow]:
        """Regressed errors nobody has answered yet, for the header's alarm."""
        ...

    def sensitive_paths(self, service: str) -> tuple[str, ...]: ...

    @property
    def runner(self) -> str:
        """Who this console runs attempts as (``user@host``); the queue names other runners."""
        ...

    def actions(self, error: ErrorRow, attempt: AttemptRow | None = None) -> frozenset[Action]: ...

    def merge_plan(self, attempt_id: int) -> MergePlan | None: ...
