"""The panes beside the errors table follow the selection where it comes to rest."""

from __future__ import annotations

from pathlib import Path

from console.widgets.claude_log import ClaudeLog
from console.widgets.errors_table import ErrorsTable
from tests.snapshot_store import filled_app, settle


async def test_a_burst_of_arrow_keys_loads_the_panes_once_for_the_error_it_stops_on(
    tmp_path: Path,
) -> None:
    async with filled_app(tmp_path) as app, app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        data = app.main_screen._data
        reads: list[int] = []
        read = data.occurrences_per_minute

        async def counted(error_id: int, now: float) -> list[int]:
            reads.append(error_id)
            return await read(error_id, now)

        data.occurrences_per_minute = counted  # type: ignore[method-assign]
        table = app.main_screen.query_one(ErrorsTable)
        # Each press is handled and painted before the next (the pilot waits for it); the
        # rest the panes wait for is set far longer than that takes.
        app.main_screen.settle_seconds = 2.0
        await pilot.press("down", "down", "down", "up")
        assert table.cursor_row == 2
        await app.workers.wait_for_complete()  # the panes' load, after its rest
        await pilot.pause()
        stopped_on = table.selected_error
        assert stopped_on is not None and stopped_on.id == table.shown_ids[2]
        assert reads == [stopped_on.id], "one read, for the error the keys stopped on"
        claude = app.main_screen.query_one(ClaudeLog)
        assert claude.attempt_id == stopped_on.current_attempt_id
