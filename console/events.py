"""What the engine tells its views: the events it publishes and the answers to its commands.

The terminal UI, the Telegram bot and the headless printer only render these; they are
plain frozen dataclasses so a view can keep one without holding any part of the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from console.automerge.plan import MergePlan
from console.budget import QueueHold
from console.fix.claude import StreamEvent
from console.link import LinkStatus
from console.models import AttemptRow, ErrorRow

NoticeLevel = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class ErrorChanged:
    """An error was created, counted again, or moved to another state."""

    error: ErrorRow


@dataclass(frozen=True)
class Regressed:
    """A fixed error occurred again on the merged code (published after its
    :class:`ErrorChanged`): the loud signal the header, a bell and Telegram give, and the
    hook anything that answers regressions by itself subscribes to. ``reason`` is the
    lifecycle's, as recorded with the move."""

    error: ErrorRow
    reason: str


@dataclass(frozen=True)
class AttemptChanged:
    """A fix attempt changed state or gained results (cost, diff, test result, PR)."""

    attempt: AttemptRow


@dataclass(frozen=True)
class ClaudeActivity:
    """One parsed line of Claude's stream (or a refusal it revealed) for the live panel."""

    attempt_id: int
    event: StreamEvent


@dataclass(frozen=True)
class LinkChanged:
    """An agent link connected, lagged, failed or stopped."""

    status: LinkStatus


@dataclass(frozen=True)
class Notice:
    """Something a person should see: failures are never silent."""

    level: NoticeLevel
    text: str
    error_id: int | None = None
    attempt_id: int | None = None


@dataclass(frozen=True)
class TelegramChanged:
    """The Telegram bot's state for the header: ``on``, ``off`` or ``error``."""

    state: Literal["on", "off", "error"]
    detail: str | None = None


@dataclass(frozen=True)
class AutoMergeChanged:
    """A fix PR's automatic merge moved: checks read, soak started, stopped, merged."""

    plan: MergePlan


EngineEvent = (
    ErrorChanged
    | Regressed
    | AttemptChanged
    | ClaudeActivity
    | LinkChanged
    | Notice
    | TelegramChanged
    | QueueHold
    | AutoMergeChanged
)
Listener = Callable[[EngineEvent], None]


class Notify(Protocol):
    """How a component reports something a person should see (the engine's ``notify``)."""

    def __call__(
        self,
        level: NoticeLevel,
        text: str,
        *,
        error_id: int | None = None,
        attempt_id: int | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class CommandResult:
    """The answer to a command; ``ok`` False means nothing was done, ``message`` says why.

    ``noticed`` is True when the engine has already published ``message`` as a Notice
    (a toast in the console, a line in the headless modes), so the caller shows nothing
    more: a push said twice reads as two pushes."""

    ok: bool
    message: str
    attempt_id: int | None = None
    noticed: bool = False
