"""The queue names who runs an attempt when it is another console sharing the store."""

from __future__ import annotations

from console.models import AttemptRow, State
from console.widgets.queue import QueueTable


def _error_cell(table: QueueTable, attempt: AttemptRow) -> str:
    return table._cells(attempt, now=0.0)[1].plain


def test_an_attempt_of_another_console_shows_its_runner_and_our_own_does_not() -> None:
    table = QueueTable(lambda: 0.0, own_runner="alice@laptop")
    table.label_error(1, "TypeError: boom")
    ours = AttemptRow(id=1, error_id=1, state=State.FIXING, runner="alice@laptop")
    theirs = AttemptRow(id=2, error_id=1, state=State.FIXING, runner="bob@desk")
    older = AttemptRow(id=3, error_id=1, state=State.REVIEW)  # from before runners were kept
    assert _error_cell(table, ours) == "TypeError: boom"
    assert _error_cell(table, theirs) == "bob@desk: TypeError: boom"
    assert _error_cell(table, older) == "TypeError: boom"
