"""The queue panel: fix attempts in order, with state, elapsed time, turns and cost, and who
runs each one when it is another console sharing the store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from console.models import RUNNING_STATES, AttemptRow
from console.widgets.labels import clock_duration, money, parse_time, state_text

MAX_ATTEMPTS = 200
_COLUMNS = ("id", "error", "state", "time", "turns", "cost")
_WIDTHS = {"id": 3, "state": 11, "time": 7, "turns": 5, "cost": 7}


def elapsed(attempt: AttemptRow, now: float) -> float | None:
    """Seconds the attempt ran (or has been running); Claude's own figure once it is known."""
    start = parse_time(attempt.started_at)
    end = parse_time(attempt.finished_at)
    if start is None:
        return None
    if end is None and attempt.state not in RUNNING_STATES and attempt.claude_duration_ms:
        return attempt.claude_duration_ms / 1000
    return (end if end is not None else now) - start


class QueueTable(DataTable[Any]):
    """Attempts oldest first; running ones tick every second."""

    class Selected(Message):
        def __init__(self, attempt: AttemptRow) -> None:
            super().__init__()
            self.attempt = attempt

    def __init__(
        self, clock: Callable[[], float], own_runner: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._clock = clock
        self._own_runner = own_runner
        self._rows: dict[int, AttemptRow] = {}
        self._labels: dict[int, str] = {}
        self._width = 20

    def on_mount(self) -> None:
        self._build_columns()

    def _error_width(self) -> int:
        return max(10, self.size.width - sum(w + 2 for w in _WIDTHS.values()) - 4)

    def _build_columns(self) -> None:
        self._width = self._error_width()
        for key in _COLUMNS:
            label = {"id": "#", "turns": "Turns"}.get(key, key.capitalize())
            self.add_column(label, key=key, width=_WIDTHS.get(key, self._width))

    def on_resize(self) -> None:
        if self._error_width() == self._width:
            return
        self.clear(columns=True)
        self._build_columns()
        now = self._clock()
        for attempt in self._rows.values():
            self.add_row(*self._cells(attempt, now), key=str(attempt.id))

    def label_error(self, error_id: int, label: str) -> None:
        """Remember how to name an error in this panel (type and message, shortened)."""
        self._labels[error_id] = label

    def apply(self, attempts: Iterable[AttemptRow]) -> None:
        now = self._clock()
        for attempt in attempts:
            key = str(attempt.id)
            known = attempt.id in self._rows
            self._rows[attempt.id] = attempt
            cells = self._cells(attempt, now)
            if known:
                for column, cell in zip(_COLUMNS, cells, strict=True):
                    self.update_cell(key, column, cell)
            else:
                self.add_row(*cells, key=key)
        while len(self._rows) > MAX_ATTEMPTS:
            oldest = min(self._rows)
            del self._rows[oldest]
            self.remove_row(str(oldest))

    def tick(self) -> None:
        """Repaint the elapsed time of running attempts."""
        now = self._clock()
        for attempt in self._rows.values():
            if attempt.state in RUNNING_STATES:
                self.update_cell(str(attempt.id), "time", clock_duration(elapsed(attempt, now)))

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        return self._rows.get(attempt_id)

    @property
    def latest(self) -> AttemptRow | None:
        """The newest attempt shown."""
        return self._rows[max(self._rows)] if self._rows else None

    @property
    def running(self) -> list[AttemptRow]:
        return [a for a in self._rows.values() if a.state in RUNNING_STATES]

    def _cells(self, attempt: AttemptRow, now: float) -> list[Any]:
        label = self._labels.get(attempt.error_id, f"error {attempt.error_id}")
        if attempt.runner and attempt.runner != self._own_runner:
            label = f"{attempt.runner}: {label}"
        return [
            Text(str(attempt.number or attempt.id), style="dim"),  # its error's attempt 1, 2...
            Text(label, no_wrap=True, overflow="ellipsis"),
            state_text(attempt.state),
            clock_duration(elapsed(attempt, now)),
            Text("—" if attempt.claude_turns is None else str(attempt.claude_turns),
                 justify="right"),
            Text(money(attempt.claude_cost_usd), justify="right"),
        ]  # fmt: skip

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        attempt = self._rows.get(int(str(event.row_key.value)))
        # Rows added while another panel has focus move the cursor too; only a person's
        # choice here should take over the Claude and diff panels.
        if attempt is not None and self.has_focus:
            self.post_message(self.Selected(attempt))
