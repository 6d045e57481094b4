"""Snapshots of the console's screens, from a real SQLite store filled deterministically
(tests/snapshot_store.py); the app runs with a frozen clock, so the pictures are stable. No
links, no Claude: only what the screens show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.app import AutofixApp
from console.engine import Engine
from console.link import LinkStatus
from console.store import Store
from console.widgets.errors_table import ErrorsTable
from console.widgets.header import StatusHeader
from tests.history_store import fill_month
from tests.regressed_store import FINGERPRINT, fill_regressed
from tests.snapshot_store import NOW, config_for, fill_store, settle

_OPEN_STORES: list[Store] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """The snapshot harness runs the app on its own loop; close its store afterwards, or
    aiosqlite's worker thread keeps the test process alive at exit."""
    yield
    while _OPEN_STORES:
        asyncio.run(_OPEN_STORES.pop().close())


def make_app(tmp_path: Path, fill=fill_store) -> AutofixApp:
    """An app on a deterministic store, its engine not started (no links, no workers)."""
    config = config_for(tmp_path / "console")
    asyncio.run(fill(config.db_path))
    store = asyncio.run(Store.open(config.db_path))
    _OPEN_STORES.append(store)
    return AutofixApp(Engine(config, store), clock=lambda: NOW)


def test_main_screen_80x24(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=settle)


def test_main_screen_160x48(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(160, 48), run_before=settle)


def test_main_screen_100x30(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(100, 30), run_before=settle)


def test_main_screen_80x24_with_the_diff_panel(snap_compare, tmp_path: Path) -> None:
    """At 80x24 the side column holds one panel; `v` swaps Claude's for the diff's."""

    async def swapped(pilot) -> None:
        await settle(pilot)
        await pilot.press("v")
        await pilot.pause(0.2)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=swapped)


def test_main_screen_80x24_with_two_hosts_down(snap_compare, tmp_path: Path) -> None:
    """Two hosts failing with long reasons share the first header line, each cut at a word;
    the Claude and Telegram line stays below them."""

    async def down(pilot) -> None:
        await settle(pilot)
        header = pilot.app.main_screen.query_one(StatusHeader)
        header.set_links(
            [
                LinkStatus("prod-1", "reconnecting", attempt=4, last_seq=74,
                           next_retry_seconds=8.0,
                           error="[Errno -2] Name or service not known: prod-1.example.com"),
                LinkStatus("prod-2", "error", attempt=1, last_seq=73,
                           error="agent exited with status 127: autofix-agent: command not "
                                 "found"),
            ]
        )  # fmt: skip
        await pilot.pause(0.2)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=down)


def test_help_at_80x24_scrolls_and_says_how_to_close(snap_compare, tmp_path: Path) -> None:
    async def help_shown(pilot) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=help_shown)


def test_review_screen(snap_compare, tmp_path: Path) -> None:
    async def review(pilot) -> None:
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause(0.2)

    assert snap_compare(make_app(tmp_path), terminal_size=(120, 36), run_before=review)


def test_detail_screen(snap_compare, tmp_path: Path) -> None:
    async def detail(pilot) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await pilot.pause(0.2)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=(120, 48), run_before=detail)


def test_detail_screen_of_a_regressed_error(snap_compare, tmp_path: Path) -> None:
    """The merged diff beside the occurrences since the merged code ran, and the keys."""

    async def detail(pilot) -> None:
        await settle(pilot)
        app = pilot.app
        [row] = [e for e in await app.engine.store.errors() if e.fingerprint == FINGERPRINT]
        assert app.main_screen.query_one(ErrorsTable).select_error(row.id)
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        await pilot.pause()

    app = make_app(tmp_path, fill_regressed)
    assert snap_compare(app, terminal_size=(140, 60), run_before=detail)


async def open_history(pilot) -> None:
    """Open the History screen and wait until its first read is painted."""
    await settle(pilot)
    await pilot.press("h")
    for _ in range(200):
        if getattr(pilot.app.screen, "history", None) is not None:
            break
        await pilot.pause(0.02)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


def test_history_screen_after_a_month(snap_compare, tmp_path: Path) -> None:
    """A month of varied history on three services: the figures, both charts, the rates by
    service and severity and the recurring errors, for the default period (30 days)."""
    app = make_app(tmp_path, fill_month)
    assert snap_compare(app, terminal_size=(160, 48), run_before=open_history)


def test_history_screen_80x24_stacks_its_panels(snap_compare, tmp_path: Path) -> None:
    app = make_app(tmp_path, fill_month)
    assert snap_compare(app, terminal_size=(80, 24), run_before=open_history)


@pytest.fixture(autouse=True)
def _no_color_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
