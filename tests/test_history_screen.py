"""The History screen's filters and keys, on a month of history: the service select and
the period (select or ``p``) each read the figures again for what they name, and the
screen opens from the main screen's key and from the command palette."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select

from console.app import AutofixApp
from console.automerge.plan import MERGED_ACTION, PAUSED_ACTION
from console.engine import Engine
from console.history import HistoryQuery
from console.regression import regressed_by
from console.screens.history import HistoryScreen
from console.screens.main import MainScreen
from console.store import Store
from tests.history_store import fill_month
from tests.snapshot_store import NOW, config_for
from tests.test_app import composed, until


async def _app(tmp_path: Path) -> tuple[AutofixApp, Store]:
    config = config_for(tmp_path / "console")
    await fill_month(config.db_path)
    store = await Store.open(config.db_path)
    return AutofixApp(Engine(config, store), clock=lambda: NOW), store


async def _shown(pilot, screen: HistoryScreen, period: str, service: str | None) -> None:
    for _ in range(300):
        history = screen.history
        if history is not None and (history.query.period, history.query.service) == (
            period,
            service,
        ):
            return
        await pilot.pause(0.05)
    raise AssertionError(f"the screen never showed {period} {service}: {screen.history}")


async def test_filters_read_the_history_of_the_service_and_period_picked(tmp_path) -> None:
    app, store = await _app(tmp_path)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("h")
            screen = await until(pilot, lambda: composed(app, HistoryScreen), 10, "the history")
            await _shown(pilot, screen, "30d", None)
            assert screen.history is not None
            everything = screen.history
            assert {r.name for r in everything.by_service} == {"PA", "billing", "worker"}

            screen.query_one("#history-service", Select).value = "billing"
            await _shown(pilot, screen, "30d", "billing")
            billing = screen.history
            assert billing is not None
            assert [r.name for r in billing.by_service] == ["billing"]
            assert billing.attempts == next(
                r.attempts for r in everything.by_service if r.name == "billing"
            )
            assert all(r.service == "billing" for r in billing.recurring)

            await pilot.press("p")  # the period after 30d: 90d, then around to 24h
            await _shown(pilot, screen, "90d", "billing")
            await pilot.press("p")
            await _shown(pilot, screen, "24h", "billing")
            assert screen.history is not None and len(screen.history.buckets) == 24

            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.main_screen, 10, "the main screen")
    finally:
        await store.close()


async def test_the_palette_opens_the_history(tmp_path) -> None:
    app, store = await _app(tmp_path)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: composed(app, MainScreen), 10, "the main screen")
            commands = [c.title for c in app.get_system_commands(app.screen)]
            assert "History" in commands
            command = next(c for c in app.get_system_commands(app.screen) if c.title == "History")
            command.callback()
            await until(pilot, lambda: composed(app, HistoryScreen), 10, "the history")
    finally:
        await store.close()


async def test_the_month_holds_merges_auto_merges_regressions_and_reverts(tmp_path) -> None:
    """What the History screen is snapshotted on: every way a PR goes after it opens."""
    config = config_for(tmp_path / "console")
    await fill_month(config.db_path)
    async with await Store.open(config.db_path) as store:
        decided = await store.decisions(limit=1_000_000)
        history = await store.history(HistoryQuery("30d"), NOW)
    by = {(d.action, d.actor) for d in decided}
    for wanted in (
        ("merged", "github:octocat"),
        ("merged", "auto-merge"),
        (MERGED_ACTION, "auto-merge"),
        ("resolved", "console"),
        ("regressed", "console"),
        (PAUSED_ACTION, "auto-merge"),
        ("revert", "auto-merge"),
        ("revert", "keyboard"),
    ):
        assert wanted in by, wanted
    entered = [d for d in decided if regressed_by(d)]
    assert history.merges > 0 and 0 < history.regressions <= len(entered)
    assert 0 < history.auto_merges < history.merges
    reverts = {(d.error_id, d.reason) for d in decided if d.action == "revert"}
    assert 0 < history.reverts <= len(reverts)
    assert any(r.regressions for r in history.recurring)
