"""The errors panel: one row per error, live counts, sortable and filterable.

A line-API widget rather than a DataTable: a DataTable renders every visible cell again
whenever any cell changes (its render cache is keyed by a table-wide update counter), which
costs tens of milliseconds a frame while a host floods the console, and key presses wait
behind it. Here each row is rendered once per change of that row into a cached strip; a
repaint only styles cached strips, so a flood costs a dict write per event and one small
render per changed row that is on screen. That render is itself made of cached cells: a
flood changes a row's count and age, not its service, message, hosts or status, so only
the cells that changed are turned into segments again (rich's Text rendering of a whole
row cost ~0.4 ms, a frame that repaints every visible row ~20 ms of a key press's wait).

The cursor follows the user's error, not a row index: a re-sort moves the cursor with its
error, and the selection changes synchronously with the cursor, so no repaint can undo a
key press.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.models import ErrorRow, State
from console.widgets.labels import (
    SEVERITY_RANK,
    STATE_LABEL,
    age,
    hosts_text,
    severity_text,
    state_text,
)

MAX_ROWS = 1000
MAX_CELLS = 8192  # rendered cells kept (a full table has 7 per row); dropped all at once
PADDING = 1  # blank cells either side of every column, as tables people know have


@dataclass(frozen=True)
class Column:
    """One column: its key, header label, width (0: takes what the others leave), whether
    it gives way first when the terminal is narrow, and the width it shrinks to when even
    that is not enough (``narrow``; 0: it keeps ``width``, as the status words do)."""

    key: str
    label: str
    width: int
    optional: bool = False
    right: bool = False
    narrow: int = 0


COLUMNS: tuple[Column, ...] = (
    Column("sev", "", 1),
    Column("service", "Service", 10, narrow=7),
    Column("message", "Error", 0),
    Column("count", "Count", 7, right=True, narrow=6),
    Column("hosts", "Hosts", 12, optional=True),
    Column("status", "Status", 17),
    Column("age", "Age", 5),
)
MIN_MESSAGE_WIDTH = 24  # below this the optional columns fold away, then others shrink
MIN_NARROW_MESSAGE = 8
_STATE_ORDER = {state: i for i, state in enumerate(State)}


@dataclass(frozen=True)
class SortMode:
    label: str
    key: Callable[[ErrorRow], Any]
    reverse: bool
    column: str  # the header that carries the sort indicator


SORTS: tuple[SortMode, ...] = (
    SortMode("last seen", lambda e: (e.last_seen, e.id), True, "age"),
    SortMode("count", lambda e: (e.count, e.id), True, "count"),
    SortMode("severity", lambda e: (SEVERITY_RANK.get(e.severity, -1), e.last_seen), True, "sev"),
    SortMode("status", lambda e: (_STATE_ORDER.get(e.state, 99), e.last_seen), False, "status"),
    SortMode("service", lambda e: (e.service, e.error_type, e.id), False, "service"),
    SortMode("first seen", lambda e: (e.first_seen, e.id), True, "message"),
)
_SORT_BY_COLUMN = {"sev": 2, "service": 4, "message": 4, "count": 1, "status": 3, "age": 0}


def matches(error: ErrorRow, needle: str) -> bool:
    """The `/` filter: every word must appear in the row's service, type, message, hosts,
    status or route, case-insensitively, so "pa fail" narrows to failed PA errors."""
    haystack = " ".join(
        (
            error.service,
            error.error_type,
            error.message,
            " ".join(error.hosts),
            STATE_LABEL.get(error.state, str(error.state)),
            error.state.value,
            error.severity,
            error.route or "",
        )
    ).lower()
    return all(word in haystack for word in needle.lower().split())


def layout(width: int) -> list[tuple[Column, int]]:
    """The columns that fit ``width`` and the width of each; the message takes the rest.
    Narrower, the optional columns fold away first, then service and count shrink; the
    status words and the age always stay whole (a status cut to "aw" says nothing)."""
    columns = list(COLUMNS)
    widths = {c.key: c.width for c in columns}

    def message_width() -> int:
        fixed = sum(widths[c.key] + 2 * PADDING for c in columns if c.width)
        return width - fixed - 2 * PADDING

    while message_width() < MIN_MESSAGE_WIDTH and any(c.optional for c in columns):
        columns.remove(next(c for c in reversed(columns) if c.optional))
    if message_width() < MIN_MESSAGE_WIDTH:
        widths.update({c.key: c.narrow for c in columns if c.narrow})
    rest = max(MIN_NARROW_MESSAGE, message_width())
    return [(c, widths[c.key] or rest) for c in columns]


def _cell(text: Text, width: int, right: bool = False) -> Text:
    text = text.copy()
    text.no_wrap = True
    text.truncate(width, overflow="ellipsis")
    if right:
        text.align("right", width)
    else:
        text.pad_right(width - text.cell_len)
    return text


class ErrorsTable(ScrollView, can_focus=True):
    """One row per error under a fixed header; the cursor row is the selected error.

    Posts :class:`ErrorsTable.Selected` when the cursor's error changes (or its row does)
    and :class:`ErrorsTable.DetailRequested` on enter.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "detail", "Detail"),
        Binding("S", "cycle_sort", "Sort", tooltip="Cycle the sort column"),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "errors-table--header",
        "errors-table--cursor",
        "errors-table--even-row",
    }

    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)
    """Index of the highlighted row among the shown rows."""

    class Selected(Message):
        """The highlighted error changed, or its row did (None when the table is empty)."""

        def __init__(self, error: ErrorRow | None) -> None:
            super().__init__()
            self.error = error

    class DetailRequested(Message):
        """The user asked to open the highlighted error (enter)."""

        def __init__(self, error: ErrorRow) -> None:
            super().__init__()
            self.error = error

    def __init__(self, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self._rows: dict[int, ErrorRow] = {}
        self._order: list[int] = []  # shown error ids, in display order
        self._position: dict[int, int] = {}
        self._filter = ""
        self._sort = 0
        self._selected: int | None = None
        self._ages: dict[int, str] = {}
        self._strips: dict[int, tuple[object, Strip]] = {}  # error id -> (what it shows, strip)
        self._cells: dict[tuple[object, ...], list[Segment]] = {}  # (column, shown, width)
        self._layout: list[tuple[Column, int]] = layout(80)
        self._line_styles: tuple[Style, Style, Style] | None = None  # during a render

    # --- data in ---------------------------------------------------------------------------

    def load(self, errors: Iterable[ErrorRow]) -> None:
        """Replace the whole model (start-up, or after a store re-read)."""
        self._rows = {e.id: e for e in errors}
        self._cap()
        self._rebuild()

    def apply(self, errors: Iterable[ErrorRow]) -> None:
        """Upsert changed errors; only the rows that changed are rendered again."""
        selected_changed = False
        now = self._clock()
        for error in errors:
            self._rows[error.id] = error
            self._ages[error.id] = age(error.last_seen, now)
            if error.id == self._selected:
                selected_changed = True
        self._cap()
        self._rebuild(announce=False)
        if self._selected is None or self._selected not in self._position:
            self._announce()
        elif selected_changed:
            self.post_message(self.Selected(self.selected_error))

    def refresh_ages(self) -> None:
        """Ages move with the clock, not with events; repaint them on a slow timer."""
        now = self._clock()
        changed = False
        for error_id in self._order:
            text = age(self._rows[error_id].last_seen, now)
            if self._ages.get(error_id) != text:
                self._ages[error_id] = text
                changed = True
        if changed:
            self._repaint()

    def set_filter(self, text: str) -> None:
        if text.strip() == self._filter:
            return
        self._filter = text.strip()
        self._rebuild()

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def sort_label(self) -> str:
        return SORTS[self._sort].label

    @property
    def selected_error(self) -> ErrorRow | None:
        return self._rows.get(self._selected) if self._selected is not None else None

    @property
    def row_count(self) -> int:
        """How many rows are shown (after the filter)."""
        return len(self._order)

    def error(self, error_id: int) -> ErrorRow | None:
        return self._rows.get(error_id)

    def select_error(self, error_id: int) -> bool:
        """Move the cursor to an error (after a filter change, or from another view)."""
        position = self._position.get(error_id)
        if position is None:
            return False
        self.cursor_row = position
        return True

    @property
    def shown_ids(self) -> list[int]:
        """Error ids in display order, for tests and for keyboard navigation elsewhere."""
        return list(self._order)

    # --- the cursor ------------------------------------------------------------------------

    def validate_cursor_row(self, row: int) -> int:
        return max(0, min(row, len(self._order) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        top = int(self.scroll_offset.y)
        self._scroll_to_cursor()
        if int(self.scroll_offset.y) == top:
            # Only the rows the highlight left and reached look different (line 0 is
            # the header, so row i is line i + 1).
            self.refresh_line(old + 1)
            self.refresh_line(new + 1)
        else:
            self._repaint()
        self._announce()

    def action_cursor_up(self) -> None:
        self.cursor_row -= 1

    def action_cursor_down(self) -> None:
        self.cursor_row += 1

    def action_page_up(self) -> None:
        self.cursor_row -= max(1, self._body_height() - 1)

    def action_page_down(self) -> None:
        self.cursor_row += max(1, self._body_height() - 1)

    def action_first(self) -> None:
        self.cursor_row = 0

    def action_last(self) -> None:
        self.cursor_row = len(self._order) - 1

    def action_cycle_sort(self) -> None:
        self._sort = (self._sort + 1) % len(SORTS)
        self._rebuild()
        self.notify(f"sorted by {self.sort_label}", timeout=2)

    def action_detail(self) -> None:
        error = self.selected_error
        if error is not None:
            self.post_message(self.DetailRequested(error))

    def on_click(self, event: events.Click) -> None:
        """A click on a row highlights it; on a column header it sorts by that column."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x)
            target = _SORT_BY_COLUMN.get(column) if column else None
            if target is not None:
                self._sort = target
                self._rebuild()
                self.notify(f"sorted by {self.sort_label}", timeout=2)
            return
        row = int(self.scroll_offset.y) + offset.y - 1
        if 0 <= row < len(self._order):
            self.cursor_row = row

    # --- rendering -------------------------------------------------------------------------

    def on_resize(self) -> None:
        self._layout = layout(self.size.width)
        self._strips.clear()
        self._cells.clear()
        self._update_virtual_size()

    def render_lines(self, crop: Region) -> list[Strip]:
        """Work out the row styles once per render, not once per line: ``rich_style`` walks
        the widget's ancestors and cost ~0.5 ms a call, a full repaint 20 ms."""
        base = self.rich_style
        self._line_styles = (
            base,
            base + self.get_component_rich_style("errors-table--even-row"),
            self.get_component_rich_style("errors-table--cursor"),
        )
        try:
            return super().render_lines(crop)
        finally:
            self._line_styles = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._header_strip(width)
        base, even, cursor = self._line_styles or (
            self.rich_style,
            self.rich_style + self.get_component_rich_style("errors-table--even-row"),
            self.get_component_rich_style("errors-table--cursor"),
        )
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < len(self._order):
            return Strip.blank(width, base)
        strip = self._row_strip(self._order[index], width)
        if index == self.cursor_row:
            return strip.apply_style(cursor)
        return strip.apply_style(even if index % 2 else base)

    def _header_strip(self, width: int) -> Strip:
        mode = SORTS[self._sort]
        text = Text(no_wrap=True)
        for column, column_width in self._layout:
            label = column.label
            if column.key == mode.column and label:
                label = f"{label} {'▼' if mode.reverse else '▲'}"
            text.append(" " * PADDING)
            text.append_text(_cell(Text(label), column_width, column.right))
            text.append(" " * PADDING)
        style = self.rich_style + self.get_component_rich_style("errors-table--header")
        segments = list(text.render(self.app.console))
        return Strip(segments).adjust_cell_length(width, style).apply_style(style)

    def _row_strip(self, error_id: int, width: int) -> Strip:
        error = self._rows[error_id]
        shown = (error, self._ages.get(error_id), width)
        cached = self._strips.get(error_id)
        if cached is not None and cached[0] == shown:
            return cached[1]
        pad = Segment(" " * PADDING)
        segments: list[Segment] = []
        for column, column_width in self._layout:
            segments.append(pad)
            segments.extend(self._cell_segments(error, column, column_width))
            segments.append(pad)
        strip = Strip(Segment.simplify(segments)).adjust_cell_length(width)
        self._strips[error_id] = (shown, strip)
        return strip

    def _cell_segments(self, error: ErrorRow, column: Column, width: int) -> list[Segment]:
        """One cell as segments, rendered once per distinct content and width."""
        key = (column.key, self._cell_value(error, column.key), width)
        segments = self._cells.get(key)
        if segments is None:
            if len(self._cells) >= MAX_CELLS:
                self._cells.clear()
            # Appended, the cell's own style becomes a span: rich renders a Text without
            # spans in no style at all.
            text = Text(no_wrap=True)
            text.append_text(_cell(self._cell_text(error, column.key), width, column.right))
            segments = self._cells[key] = list(text.render(self.app.console))
        return segments

    def _cell_value(self, error: ErrorRow, key: str) -> object:
        """What a cell shows, as a cache key: equal values render equal cells."""
        if key == "sev":
            return error.severity
        if key == "service":
            return error.service
        if key == "message":
            return (error.error_type, error.message)
        if key == "count":
            return error.count
        if key == "hosts":
            return hosts_text(error.hosts)
        if key == "status":
            return error.state
        return self._ages.get(error.id) or age(error.last_seen, self._clock())

    def _cell_text(self, error: ErrorRow, key: str) -> Text:
        if key == "sev":
            return severity_text(error.severity)
        if key == "service":
            return Text(error.service)
        if key == "message":
            message = Text()
            message.append(error.error_type, style="bold")
            message.append(": " + " ".join(error.message.split()))
            return message
        if key == "count":
            return Text(f"{error.count:,}")
        if key == "hosts":
            return Text(hosts_text(error.hosts))
        if key == "status":
            return state_text(error.state)
        return Text(self._ages.get(error.id) or age(error.last_seen, self._clock()), style="dim")

    def _column_at(self, x: int) -> str | None:
        left = 0
        for column, column_width in self._layout:
            right = left + column_width + 2 * PADDING
            if left <= x < right:
                return column.key
            left = right
        return None

    # --- internals -------------------------------------------------------------------------

    def _repaint(self) -> None:
        """Repaint the rows, not the scrollbar: the scrollbar is a widget of its own that is
        costly to draw and only changes when the table scrolls or grows."""
        self.refresh(self.size.region)

    def _body_height(self) -> int:
        return max(1, self.size.height - 1)

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._order) + 1)

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_offset.y)
        height = self._body_height()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + height:
            self.scroll_to(y=self.cursor_row - height + 1, animate=False, immediate=True)

    def _cap(self) -> None:
        if len(self._rows) <= MAX_ROWS:
            return
        keep = sorted(self._rows.values(), key=lambda e: (e.last_seen, e.id), reverse=True)
        for error in keep[MAX_ROWS:]:
            if error.id != self._selected:
                del self._rows[error.id]
                self._ages.pop(error.id, None)
                self._strips.pop(error.id, None)

    def _rebuild(self, announce: bool = True) -> None:
        """Filter and sort the model into display order, keeping the cursor on its error."""
        now = self._clock()
        for error_id, error in self._rows.items():
            if error_id not in self._ages:
                self._ages[error_id] = age(error.last_seen, now)
        rows = [e for e in self._rows.values() if not self._filter or matches(e, self._filter)]
        mode = SORTS[self._sort]
        rows.sort(key=mode.key, reverse=mode.reverse)
        self._order = [e.id for e in rows]
        self._position = {error_id: i for i, error_id in enumerate(self._order)}
        self._update_virtual_size()
        position = self._position.get(self._selected) if self._selected is not None else None
        cursor = position if position is not None else min(self.cursor_row, len(self._order) - 1)
        self.set_reactive(ErrorsTable.cursor_row, max(0, cursor))
        self._scroll_to_cursor()
        self._repaint()
        if announce:
            self._announce()

    def _announce(self) -> None:
        error = self._error_at_cursor()
        new_id = error.id if error else None
        if new_id != self._selected or error is None:
            self._selected = new_id
            self.post_message(self.Selected(error))

    def _error_at_cursor(self) -> ErrorRow | None:
        if not self._order:
            return None
        return self._rows.get(self._order[min(self.cursor_row, len(self._order) - 1)])
