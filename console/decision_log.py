"""Recording what the console decides about an error, and saying it, in one step.

The engine, the lifecycle watch (resolved, regressed, escalating) and auto-merge (merged,
stopped, paused, resumed, a revert opened) all decide things about errors. Each decision
is written to the store (the History screen and a restarted console read it there), the
error is published again (its row, keys and Telegram message follow) and a notice says it
in the words a person reads. Doing the three in one place means no decision is recorded
without being shown, and none is shown that was not recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from console.events import NoticeLevel, Notify
from console.models import ErrorRow, State, error_name
from console.store import Store

# Publishes an error again (the engine's ErrorChanged) and returns its fresh row.
PublishError = Callable[[int], Awaitable[ErrorRow | None]]


@dataclass(frozen=True)
class DecisionLog:
    """The store's decision log with the views told of every entry."""

    store: Store
    publish: PublishError
    notify: Notify

    async def note(
        self,
        error: ErrorRow,
        action: str,
        actor: str,
        reason: str,
        *,
        attempt_id: int | None = None,
        said: str | None = None,
        level: NoticeLevel = "info",
        title: str = "",
        marks: dict[str, Any] | None = None,
    ) -> ErrorRow | None:
        """Record a decision that leaves the error's state as it is, publish the error and
        say it: ``[title: ]<error's name>: <said>``, ``said`` being ``reason`` when None
        ("" says nothing, for a caller whose own answer says it)."""
        await self.store.note_decision(
            error.id, action, actor, reason, attempt_id=attempt_id, marks=marks
        )
        fresh = await self.publish(error.id)
        self._say(error, level, title, reason if said is None else said, attempt_id)
        return fresh

    async def move(
        self,
        error: ErrorRow,
        new: State,
        actor: str,
        reason: str,
        *,
        expected: State | None = None,
        said: str | None = None,
        level: NoticeLevel = "info",
        title: str = "",
        marks: dict[str, Any] | None = None,
    ) -> ErrorRow | None:
        """Move the error from ``expected`` (its state in ``error`` when None) to ``new`` as
        a compare-and-set recorded with ``actor`` and ``reason``; when it moved, publish it
        and say ``said`` (as :meth:`note` does). None when someone else moved it first."""
        moved = await self.store.transition(
            error.id,
            error.state if expected is None else expected,
            new,
            actor=actor,
            reason=reason,
            marks=marks,
        )
        if not moved:
            return None
        fresh = await self.publish(error.id)
        self._say(error, level, title, reason if said is None else said, None)
        return fresh

    def _say(
        self, error: ErrorRow, level: NoticeLevel, title: str, text: str, attempt_id: int | None
    ) -> None:
        if not text:
            return
        name = error_name(error.service, error.error_type, error.message)
        self.notify(
            level,
            f"{title}: {name}: {text}" if title else f"{name}: {text}",
            error_id=error.id,
            attempt_id=attempt_id,
        )
