"""The errors panel: one row per error, live counts, sortable and filterable.

Rows are kept in a capped model keyed by error id; the engine's events update it in place
(only the cells that changed are repainted), so a flood of count updates costs a dict write
per event and a handful of cell updates per repaint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

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
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("sev", "", 1),
    ("service", "Service", 10),
    ("message", "Error", 0),  # takes what the others leave
    ("count", "Count", 6),
    ("hosts", "Hosts", 12),
    ("status", "Status", 17),
    ("age", "Age", 4),
)
_STATE_ORDER = {state: i for i, state in enumerate(State)}


@dataclass(frozen=True)
class SortMode:
    label: str
    key: Callable[[ErrorRow], Any]
    reverse: bool


SORTS: tuple[SortMode, ...] = (
    SortMode("last seen", lambda e: (e.last_seen, e.id), True),
    SortMode("count", lambda e: (e.count, e.id), True),
    SortMode("severity", lambda e: (SEVERITY_RANK.get(e.severity, -1), e.last_seen), True),
    SortMode("status", lambda e: (_STATE_ORDER.get(e.state, 99), e.last_seen), False),
    SortMode("service", lambda e: (e.service, e.error_type, e.id), False),
    SortMode("first seen", lambda e: (e.first_seen, e.id), True),
)
_SORT_BY_COLUMN = {"sev": 2, "service": 4, "message": 4, "count": 1, "status": 3, "age": 0}


class _Cell:
    """A rendered cell that remembers its row's error, so sorting can find the row's data."""

    __slots__ = ("error_id", "text")

    def __init__(self, error_id: int, text: Text) -> None:
        self.error_id = error_id
        self.text = text

    def __rich__(self) -> Text:
        return self.text


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


class ErrorsTable(DataTable[Any]):
    """One row per error; posts :class:`ErrorsTable.Selected` when the cursor's error changes."""

    BINDINGS = [
        Binding("enter", "detail", "Detail"),
        Binding("S", "cycle_sort", "Sort", tooltip="Cycle the sort column"),
    ]

    class Selected(Message):
        """The highlighted error changed, or its row did (None when the table is empty)."""

        def __init__(self, error: ErrorRow | None) -> None:
            super().__init__()
            self.error = error

    class DetailRequested(Message):
        def __init__(self, error: ErrorRow) -> None:
            super().__init__()
            self.error = error

    def __init__(self, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._clock = clock
        self._rows: dict[int, ErrorRow] = {}
        self._shown: set[int] = set()
        self._filter = ""
        self._sort = 0
        self._selected: int | None = None
        self._message_width = 30

    # --- data in ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._build_columns()

    def on_resize(self) -> None:
        width = self._fit_message_width()
        if width != self._message_width:
            self._rebuild()

    def _fit_message_width(self) -> int:
        fixed = sum(w + 2 for key, _, w in COLUMNS if key != "message")
        return max(16, self.size.width - fixed - 3)

    def _build_columns(self) -> None:
        self._message_width = self._fit_message_width()
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width or self._message_width)

    def load(self, errors: Iterable[ErrorRow]) -> None:
        """Replace the whole model (start-up, or after a store re-read)."""
        self._rows = {e.id: e for e in errors}
        self._cap()
        self._rebuild()

    def apply(self, errors: Iterable[ErrorRow]) -> None:
        """Upsert changed errors, repainting only the cells that differ."""
        changed_selected = False
        added = False
        now = self._clock()
        for error in errors:
            self._rows[error.id] = error
            visible = not self._filter or matches(error, self._filter)
            if error.id in self._shown:
                if not visible:
                    self.remove_row(str(error.id))
                    self._shown.discard(error.id)
                    continue
                for key, cell in zip(_keys(), self._cells(error, now), strict=True):
                    if self.get_cell(str(error.id), key).text != cell.text:
                        self.update_cell(str(error.id), key, cell)
            elif visible:
                self.add_row(*self._cells(error, now), key=str(error.id))
                self._shown.add(error.id)
                added = True
            if error.id == self._selected:
                changed_selected = True
        dropped = self._cap()
        for error_id in dropped:
            if error_id in self._shown:
                self.remove_row(str(error_id))
                self._shown.discard(error_id)
        self._resort()
        if added and self._selected is None:
            self._announce()
        elif changed_selected:
            self.post_message(self.Selected(self.selected_error))

    def refresh_ages(self) -> None:
        """Ages move with the clock, not with events; repaint them on a slow timer."""
        now = self._clock()
        for error_id in self._shown:
            error = self._rows[error_id]
            cell = _Cell(error.id, Text(age(error.last_seen, now), style="dim"))
            if self.get_cell(str(error_id), "age").text != cell.text:
                self.update_cell(str(error_id), "age", cell)

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

    def error(self, error_id: int) -> ErrorRow | None:
        return self._rows.get(error_id)

    def select_error(self, error_id: int) -> bool:
        """Move the cursor to an error (after a filter change, or from another view)."""
        if error_id not in self._shown:
            return False
        self.move_cursor(row=self.get_row_index(str(error_id)))
        return True

    @property
    def shown_ids(self) -> list[int]:
        """Error ids in display order, for tests and for keyboard navigation elsewhere."""
        return [int(str(row.key.value)) for row in self.ordered_rows]

    # --- internals -------------------------------------------------------------------------

    def _cells(self, error: ErrorRow, now: float) -> list[_Cell]:
        message = Text(no_wrap=True, overflow="ellipsis")
        message.append(error.error_type, style="bold")
        message.append(": " + " ".join(error.message.split()))
        texts = [
            severity_text(error.severity),
            Text(error.service, no_wrap=True, overflow="ellipsis"),
            message,
            Text(f"{error.count:,}", justify="right"),
            Text(hosts_text(error.hosts), no_wrap=True, overflow="ellipsis"),
            state_text(error.state),
            Text(age(error.last_seen, now), style="dim"),
        ]
        return [_Cell(error.id, t) for t in texts]

    def _cap(self) -> list[int]:
        if len(self._rows) <= MAX_ROWS:
            return []
        keep = sorted(self._rows.values(), key=lambda e: (e.last_seen, e.id), reverse=True)
        dropped = [e.id for e in keep[MAX_ROWS:] if e.id != self._selected]
        for error_id in dropped:
            del self._rows[error_id]
        return dropped

    def _rebuild(self) -> None:
        selected = self._selected
        self.clear(columns=True)
        self._build_columns()
        self._shown = set()
        now = self._clock()
        rows = [e for e in self._rows.values() if not self._filter or matches(e, self._filter)]
        mode = SORTS[self._sort]
        rows.sort(key=mode.key, reverse=mode.reverse)
        for error in rows:
            self.add_row(*self._cells(error, now), key=str(error.id))
            self._shown.add(error.id)
        if selected is not None and selected in self._shown:
            self.move_cursor(row=self.get_row_index(str(selected)), animate=False)
        self._announce()

    def _resort(self) -> None:
        mode = SORTS[self._sort]
        rows = self._rows
        self.sort("sev", key=lambda cell: mode.key(rows[cell.error_id]), reverse=mode.reverse)
        if self._selected is not None and self._selected in self._shown:
            index = self.get_row_index(str(self._selected))
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)

    def _announce(self) -> None:
        error = self._error_at_cursor()
        new_id = error.id if error else None
        if new_id != self._selected or error is None:
            self._selected = new_id
            self.post_message(self.Selected(error))

    def _error_at_cursor(self) -> ErrorRow | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        except CellDoesNotExist:
            return None
        return self._rows.get(int(str(key.value)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        error = self._rows.get(int(str(event.row_key.value)))
        if error is not None and error.id != self._selected:
            self._selected = error.id
            self.post_message(self.Selected(error))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column header sorts by it, as in every table people know."""
        event.stop()
        target = _SORT_BY_COLUMN.get(str(event.column_key.value))
        if target is not None:
            self._sort = target
            self._resort()
            self.notify(f"sorted by {self.sort_label}", timeout=2)

    def action_cycle_sort(self) -> None:
        self._sort = (self._sort + 1) % len(SORTS)
        self._resort()
        self.notify(f"sorted by {self.sort_label}", timeout=2)

    def action_detail(self) -> None:
        error = self.selected_error
        if error is not None:
            self.post_message(self.DetailRequested(error))


def _keys() -> list[str]:
    return [key for key, _, _ in COLUMNS]
