"""The coalescer between the engine and the screen: constant-time filing, paced error rows."""

from __future__ import annotations

from console.events import ErrorChanged, Notice
from console.pending import PendingUpdates
from tests.rows import row


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_change_is_handed_over_at_the_next_drain() -> None:
    pending = PendingUpdates(flood_rows=5, flood_seconds=1.0, clock=Clock())
    pending.add(ErrorChanged(row(1)))
    drained = pending.drain()
    assert drained is not None and [e.id for e in drained.errors] == [1]
    pending.add(ErrorChanged(row(1, count=2)))
    drained = pending.drain()
    assert drained is not None and [e.count for e in drained.errors] == [2]


def test_after_a_flood_error_rows_wait_and_keep_only_their_newest_state() -> None:
    clock = Clock()
    pending = PendingUpdates(flood_rows=5, flood_seconds=1.0, clock=clock)
    for i in range(10):
        pending.add(ErrorChanged(row(i)))
    first = pending.drain()
    assert first is not None and len(first.errors) == 10
    for count in range(2, 50):
        pending.add(ErrorChanged(row(3, count=count)))
    clock.now += 0.5
    assert pending.drain() is None  # held back, nothing else changed
    clock.now += 0.6
    later = pending.drain()
    assert later is not None and [(e.id, e.count) for e in later.errors] == [(3, 49)]


def test_other_events_are_not_held_back_by_a_flood_of_error_rows() -> None:
    clock = Clock()
    pending = PendingUpdates(flood_rows=5, flood_seconds=1.0, clock=clock)
    for i in range(10):
        pending.add(ErrorChanged(row(i)))
    assert pending.drain() is not None
    pending.add(ErrorChanged(row(1, count=7)))
    pending.add(Notice("info", "pushed"))
    clock.now += 0.1
    drained = pending.drain()
    assert drained is not None
    assert drained.errors == [] and [n.text for n in drained.notices] == ["pushed"]
    clock.now += 1.0
    drained = pending.drain()
    assert drained is not None and [(e.id, e.count) for e in drained.errors] == [(1, 7)]
