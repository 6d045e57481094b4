"""The errors table on its own, in a real Textual app: the cursor belongs to the user."""

from __future__ import annotations

import dataclasses

from textual.app import App, ComposeResult

from console.widgets.errors_table import ErrorsTable
from tests.rows import row


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ErrorsTable(clock=lambda: 1_800_003_600.0)


async def test_a_key_press_is_not_undone_by_a_repaint_that_lands_before_its_highlight() -> None:
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(ErrorsTable)
        rows = [
            dataclasses.replace(row(i), last_seen=f"2027-01-15T09:00:{i:02d}Z") for i in range(10)
        ]
        table.load(rows)
        await pilot.pause()
        first = table.selected_error
        assert first is not None
        table.action_cursor_down()  # what the down key does; the highlight message is queued
        # A repaint of changed counts arrives before the highlight message is handled.
        table.apply([dataclasses.replace(r, count=r.count + 1) for r in rows])
        await pilot.pause()
        assert table.selected_error is not None
        assert table.selected_error.id != first.id
        assert table.shown_ids.index(table.selected_error.id) == 1
