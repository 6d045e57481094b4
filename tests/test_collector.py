"""Full garbage collections run between key presses, never on one, and never stop."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.app import AutofixApp
from console.collector import EVERY_SECONDS, LONGEST_SECONDS, QUIET_SECONDS, CollectionPacing
from console.engine import Engine
from console.store import Store
from console.widgets.errors_table import ErrorsTable
from tests.snapshot_store import NOW, config_for, fill_store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def full_collections() -> Iterator[list[int]]:
    """The generation-2 collections that ran, automatic or asked for."""
    seen: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.collect()  # nothing due from before
    gc.callbacks.append(callback)
    before = gc.get_threshold()
    yield seen
    gc.callbacks.remove(callback)
    gc.set_threshold(*before)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pacing(clock: Clock) -> Iterator[CollectionPacing]:
    """Pacing started on the fake clock, stopped whatever the test did."""
    paced = CollectionPacing(clock)
    paced.start()
    yield paced
    paced.stop()


def make_due() -> None:
    """As many middle-generation collections as CPython waits for before a full one (its
    default threshold; the pacing keeps the one it found)."""
    for _ in range(10):
        gc.collect(1)


def test_pacing_turns_automatic_full_collections_off_and_gives_the_thresholds_back(
    full_collections: list[int],
) -> None:
    before = gc.get_threshold()
    pacing = CollectionPacing(Clock())
    pacing.start()
    assert gc.get_threshold()[:2] == before[:2]
    assert gc.get_threshold()[2] > 1_000_000
    for _ in range(3 * before[2]):
        gc.collect(1)
    assert full_collections == [], "CPython ran a full collection while paced"
    pacing.stop()
    assert gc.get_threshold() == before


def test_an_answered_key_runs_a_due_collection_and_a_stale_one_does_not(
    full_collections: list[int], clock: Clock, pacing: CollectionPacing
) -> None:
    clock.now += EVERY_SECONDS
    pacing.key_pressed()
    first = pacing.latest_key
    pacing.key_answered(first)
    assert full_collections == [], "nothing was due yet"
    make_due()
    pacing.key_pressed()
    second = pacing.latest_key
    pacing.key_answered(first)  # the answer to a press that is no longer the latest
    assert full_collections == []
    pacing.key_answered(second)
    assert len(full_collections) == 1 and pacing.full_collections == 1
    make_due()
    pacing.key_pressed()
    pacing.key_answered(pacing.latest_key)
    assert len(full_collections) == 1, "not again within EVERY_SECONDS"


def test_a_quiet_keyboard_or_the_longest_interval_runs_a_due_collection(
    full_collections: list[int], clock: Clock, pacing: CollectionPacing
) -> None:
    make_due()
    clock.now += EVERY_SECONDS
    pacing.key_pressed()
    pacing.tick()
    assert full_collections == [], "a key was pressed a moment ago"
    clock.now += QUIET_SECONDS
    pacing.tick()
    assert len(full_collections) == 1
    # Keys that never stop (one held down) still let a collection through.
    make_due()
    for _ in range(int(LONGEST_SECONDS / 0.1) + 1):
        clock.now += 0.1
        pacing.key_pressed()
        pacing.tick()
    assert len(full_collections) == 2


async def test_the_console_collects_after_a_key_is_answered_and_restores_the_collector(
    tmp_path: Path, full_collections: list[int]
) -> None:
    before = gc.get_threshold()
    config = config_for(tmp_path / "console")
    await fill_store(config.db_path)
    store = await Store.open(config.db_path)
    try:
        app = AutofixApp(Engine(config, store), clock=lambda: NOW)
        async with app.run_test(size=(160, 48)) as pilot:
            while not app.main_screen.ready:
                await pilot.pause(0.02)
            assert app.collection.running
            table = app.main_screen.query_one(ErrorsTable)
            first = table.selected_error
            make_due()
            app.collection._last_full -= EVERY_SECONDS  # as if the last one ran a while ago
            await pilot.press("down")
            await pilot.pause()
            assert table.selected_error != first
            for _ in range(250):  # the answer's frames, or the quiet keyboard after it
                if app.collection.full_collections:
                    break
                await pilot.pause(0.02)
            assert app.collection.full_collections == 1
        assert gc.get_threshold() == before, "the app gave the collector back as it was"
    finally:
        await store.close()
