"""The errors table on its own, in a real Textual app: the cursor belongs to the user."""

from __future__ import annotations

import dataclasses

from textual.app import App, ComposeResult

from console.models import ErrorRow, State
from console.widgets.errors_table import ErrorsTable
from tests.rows import row


def rows(n: int) -> list[ErrorRow]:
    """n errors, the higher the id the more often and the more recently seen."""
    return [
        dataclasses.replace(row(i), count=10 + i, last_seen=f"2027-01-15T08:59:{i:02d}Z")
        for i in range(n)
    ]


class TableApp(App[None]):
    def __init__(self, errors: list[ErrorRow]) -> None:
        super().__init__()
        self.errors = errors

    def compose(self) -> ComposeResult:
        yield ErrorsTable(clock=lambda: 1_800_003_600.0)

    def on_mount(self) -> None:
        self.table.load(self.errors)

    @property
    def table(self) -> ErrorsTable:
        return self.query_one(ErrorsTable)

    def lines(self) -> list[str]:
        return [self.table.render_line(y).text for y in range(self.table.size.height)]


async def test_a_key_press_is_not_undone_by_a_repaint_that_lands_before_its_highlight() -> None:
    app = TableApp(rows(10))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.table
        first = table.selected_error
        assert first is not None
        table.action_cursor_down()  # what the down key does
        # A repaint of changed counts arrives before anything else runs.
        table.apply([dataclasses.replace(r, count=r.count + 1) for r in app.errors])
        await pilot.pause()
        assert table.selected_error is not None
        assert table.selected_error.id != first.id
        assert table.shown_ids.index(table.selected_error.id) == 1


async def test_the_sorted_column_shows_an_indicator_and_a_header_click_sorts_by_it() -> None:
    app = TableApp(rows(5))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        header = app.lines()[0]
        assert "Age ▼" in header
        assert app.table.shown_ids == [4, 3, 2, 1, 0]  # last seen, newest first
        await pilot.click(ErrorsTable, offset=(header.index("Count") + 1, 0))
        await pilot.pause()
        assert app.table.sort_label == "count"
        assert "Count ▼" in app.lines()[0] and "Age ▼" not in app.lines()[0]
        await pilot.click(ErrorsTable, offset=(header.index("Service") + 1, 0))
        await pilot.pause()
        assert "Service ▲" in app.lines()[0]


async def test_the_cursor_stays_on_its_error_when_new_counts_reorder_the_rows() -> None:
    app = TableApp(rows(5))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down")
        table = app.table
        assert table.selected_error is not None and table.selected_error.id == 2
        # error 0 occurs again and moves to the top; the cursor moves with error 2.
        table.apply([dataclasses.replace(app.errors[0], last_seen="2027-01-15T09:00:00Z")])
        await pilot.pause()
        assert table.shown_ids[0] == 0
        assert table.selected_error is not None and table.selected_error.id == 2
        assert table.cursor_row == table.shown_ids.index(2)


async def test_a_narrow_table_folds_the_hosts_column_before_the_message_gets_unreadable() -> None:
    for width, hosts_shown in ((80, False), (140, True)):
        app = TableApp(rows(3))
        async with app.run_test(size=(width, 20)) as pilot:
            await pilot.pause()
            header = app.lines()[0]
            assert ("Hosts" in header) is hosts_shown
            assert "Status" in header and "Age" in header


async def test_paging_keys_move_the_cursor_and_keep_it_in_view() -> None:
    app = TableApp(rows(40))
    async with app.run_test(size=(120, 12)) as pilot:
        await pilot.pause()
        table = app.table
        await pilot.press("end")
        assert table.cursor_row == 39
        assert table.selected_error is not None and table.selected_error.id == 0
        assert any("boom 0" in line for line in app.lines()[1:])  # the cursor's row is shown
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("pagedown")
        assert table.cursor_row == table.size.height - 2


async def test_the_filter_shows_only_matching_rows_and_keeps_the_cursor_on_a_shown_one() -> None:
    app = TableApp(rows(12))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.table
        table.set_filter("boom 11")
        await pilot.pause()
        assert table.shown_ids == [11]
        assert table.selected_error is not None and table.selected_error.id == 11
        table.set_filter("")
        await pilot.pause()
        assert table.row_count == 12


async def test_a_row_drawn_from_cached_cells_shows_new_counts_and_states_in_their_colours() -> None:
    app = TableApp(rows(3))
    async with app.run_test(size=(120, 10)) as pilot:
        await pilot.pause()
        table = app.table
        error = app.errors[1]

        def line_of(error_id: int) -> list[tuple[str, str]]:
            strip = table.render_line(table.shown_ids.index(error_id) + 1)
            return [(seg.text.strip(), str(seg.style)) for seg in strip if seg.text.strip()]

        assert any(text == "new" and "cyan" in style for text, style in line_of(1))
        table.apply([dataclasses.replace(error, count=12_345, state=State.FAILED)])
        await pilot.pause()
        shown = line_of(1)
        assert any("12,345" in text for text, _ in shown)
        assert any(text == "failed" and "bold" in style and "red" in style for text, style in shown)
        assert not any(text == "new" for text, _ in shown)
        # Another row with the old count and state still draws them from the same cells.
        assert any(text == "new" and "cyan" in style for text, style in line_of(0))
