"""The screens' reads (:class:`~console.screens.data.ScreenData`) answered from the engine.

This is the one place the terminal UI reaches the store: screens ask for rows through it and
for the possible decisions through the engine's flow rule, and never hold either themselves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.automerge.plan import MergePlan
from console.engine import Engine
from console.fix.claude_state import ClaudeState
from console.fix.frames import FramePosition, locate_frames
from console.history import History, HistoryQuery
from console.models import Action, AttemptRow, ErrorRow
from console.regression import after_merge
from console.screens.data import ErrorDetail, Overview


class EngineData:
    """:class:`~console.screens.data.ScreenData` for a running engine."""

    def __init__(self, engine: Engine, claude: ClaudeState | None = None) -> None:
        self._engine = engine
        self._claude = claude

    @property
    def telegram_state(self) -> tuple[str, str | None]:
        """The bot's state for the header, or why there is none."""
        control = self._engine.telegram
        if control is None:
            configured = self._engine.config.telegram.enabled
            return ("off", None if configured else "not configured")
        return (str(control.state), None)

    async def overview(self, max_errors: int, max_attempts: int) -> Overview:
        engine, store = self._engine, self._engine.store
        errors = await store.errors(limit=max_errors)
        attempts = (await store.attempts())[-max_attempts:]
        listed = {e.id for e in errors}
        older: list[ErrorRow] = []
        for error_id in dict.fromkeys(a.error_id for a in attempts if a.error_id not in listed):
            row = await store.error(error_id)
            if row is not None:
                older.append(row)
        return Overview(
            hosts=[h.name for h in engine.config.hosts],
            seqs={h.name: h.last_seq for h in await store.hosts()},
            links=engine.link_statuses(),
            telegram=self.telegram_state,
            errors=errors,
            attempts=attempts,
            attempt_errors=older,
            claude=self._claude,
            hold=engine.gate.hold,
        )

    async def attempt(self, attempt_id: int) -> AttemptRow | None:
        return await self._engine.store.attempt(attempt_id)

    async def transcript(self, attempt_id: int) -> list[str]:
        return await self._engine.store.transcript(attempt_id)

    async def occurrences_per_minute(self, error_id: int, now: float) -> list[int]:
        return await self._engine.store.occurrences_per_minute(error_id, now)

    async def detail(self, error_id: int, samples: int) -> ErrorDetail:
        store = self._engine.store
        error = await store.error(error_id)
        attempts = await store.attempts(error_id=error_id)
        return ErrorDetail(
            error=error,
            samples=await store.samples(error_id, samples),
            attempts=attempts,
            decisions=await store.decisions(error_id=error_id),
            sources=await asyncio.to_thread(self._sources, error, attempts) if error else [],
            after_merge=await after_merge(store, error) if error else None,
        )

    async def history(self, query: HistoryQuery, now: float) -> History:
        return await self._engine.store.history(query, now)

    async def unanswered_regressions(self) -> list[ErrorRow]:
        return await self._engine.unanswered_regressions()

    def _sources(self, error: ErrorRow, attempts: list[AttemptRow]) -> list[FramePosition]:
        """Where the stack points in the code: the latest attempt's worktree holds the
        build's source maps when it is still there, else the service's own checkout."""
        service = self._engine.config.service(error.service)
        if service is None:
            return []
        checkouts = [Path(a.worktree) for a in reversed(attempts) if a.worktree]
        checkout = next((p for p in checkouts if p.is_dir()), service.repo)
        return locate_frames(error.stack, checkout, service.app_root)

    @property
    def runner(self) -> str:
        return self._engine.store.runner

    def sensitive_paths(self, service: str) -> tuple[str, ...]:
        found = self._engine.config.service(service)
        return found.sensitive_paths if found else ()

    def actions(self, error: ErrorRow, attempt: AttemptRow | None = None) -> frozenset[Action]:
        return self._engine.actions(error, attempt)

    def merge_plan(self, attempt_id: int) -> MergePlan | None:
        return self._engine.auto_merge.plan(attempt_id)
