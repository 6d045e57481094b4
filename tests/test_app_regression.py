"""A fixed error that came back, in the console: the header's alarm, the Revert and Mute
keys with their dialogs, and the engine's refusal when the state allows neither.

The console runs on a real SQLite store filled through the store's own API
(tests/regressed_store.py); a regression arriving live goes through the engine's own ingest
and lifecycle rules; the revert that is carried out runs in tests/engine_world.py's world
(a real fix merged on the GitHub stand-in, a real revert branch pushed to its remote).
"""

from __future__ import annotations

import time
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Static
from textual.widgets._footer import FooterKey

from agent.wire import Start, iso
from console.app import AutofixApp
from console.models import ErrorRow, State
from console.screens.confirm import ConfirmScreen
from console.screens.detail import DetailScreen
from console.screens.mute import MuteScreen
from console.widgets.errors_table import ErrorsTable
from console.widgets.header import StatusHeader
from tests.engine_world import World
from tests.regressed_store import (
    AGAIN_MESSAGE,
    FINGERPRINT,
    MERGE_SHA,
    PR_NUMBER,
    WHY,
    again,
    regressed_app,
)
from tests.snapshot_store import settle
from tests.test_app import Notifications, composed, ready_on, static_text, until
from tests.test_lifecycle_engine import occurrence, published, quick


def header_text(app: AutofixApp) -> str:
    return static_text(app.main_screen.query_one(StatusHeader))


async def error_of(app: AutofixApp, fingerprint: str = FINGERPRINT) -> ErrorRow:
    [row] = [e for e in await app.engine.store.errors(limit=100) if e.fingerprint == fingerprint]
    return row


async def select(pilot: Pilot, error_id: int) -> None:
    assert pilot.app.main_screen.query_one(ErrorsTable).select_error(error_id)
    await pilot.pause()


async def test_the_header_says_how_many_regressed_errors_wait_and_a_mute_answers_one(
    tmp_path: Path, notifications: Notifications
) -> None:
    async with regressed_app(tmp_path) as app, app.run_test(size=(160, 48)) as pilot:
        notified = notifications(app)
        await settle(pilot)
        await until(pilot, lambda: "⚠ 1 regressed" in header_text(app), 10, "the alarm")
        error_id = (await error_of(app)).id
        await select(pilot, error_id)

        await pilot.press("m")
        dialog = await until(pilot, lambda: composed(app, MuteScreen, "#mute-problem"))
        box = dialog.query_one(Input)
        box.value = "soon"
        await pilot.press("enter")
        problem = dialog.query_one("#mute-problem", Static)
        await until(pilot, lambda: "could not read" in static_text(problem), 5, "the problem")
        assert app.screen is dialog, "text it cannot read keeps the dialog open"
        box.value = "2h or 50x"
        await pilot.press("enter")

        engine = app.engine
        muted = await until(pilot, lambda: not isinstance(app.screen, MuteScreen), 5, "closed")
        assert muted
        await until(pilot, lambda: any("muted PA SyntaxError" in m for _, m in notified), 10)
        row = await engine.store.error(error_id)
        assert row is not None and row.muted_until is not None
        assert row.muted_until_count == row.count + 50
        [*_, decision] = await engine.store.decisions(error_id=error_id)
        assert (decision.action, decision.actor) == ("mute", app.actor)
        await until(pilot, lambda: "regressed" not in header_text(app), 10, "the alarm to end")

        # m again ends the mute, and the error waits for an answer once more.
        await pilot.press("m")
        await until(pilot, lambda: any("unmuted PA SyntaxError" in m for _, m in notified), 10)
        await until(pilot, lambda: "⚠ 1 regressed" in header_text(app), 10, "the alarm again")


async def test_revert_on_an_error_that_was_never_merged_says_why_and_asks_nothing(
    tmp_path: Path, notifications: Notifications
) -> None:
    async with regressed_app(tmp_path) as app, app.run_test(size=(160, 48)) as pilot:
        notified = notifications(app)
        await settle(pilot)
        waiting = await error_of(app, "fp-timeout")
        assert waiting.state is State.AWAITING_APPROVAL
        await select(pilot, waiting.id)
        await pilot.press("u")
        said = "cannot revert: PA TimeoutError: Request to billing timed out after 5000ms is "
        await until(pilot, lambda: ("warning", said + "awaiting approval") in notified, 10)
        assert not isinstance(app.screen, ConfirmScreen)
        decisions = await app.engine.store.decisions(error_id=waiting.id)
        assert all(d.action != "revert" for d in decisions)


async def test_revert_asks_first_naming_the_merge_it_undoes_and_no_keeps_the_fix(
    tmp_path: Path,
) -> None:
    async with regressed_app(tmp_path) as app, app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        error_id = (await error_of(app)).id
        await select(pilot, error_id)
        await pilot.press("u")
        confirm = await until(pilot, lambda: composed(app, ConfirmScreen, ".dialog-body Static"))
        body = static_text(confirm.query_one(".dialog-body Static", Static))
        assert f"reverts pull request #{PR_NUMBER} (merge commit {MERGE_SHA[:12]})" in body
        assert "occurrence(s) since 2027-01-15T08:25:00.000Z" in body
        assert " ".join(WHY.split()[:6]) in " ".join(body.split())
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 5, "closed")
        decisions = await app.engine.store.decisions(error_id=error_id)
        assert all(d.action != "revert" for d in decisions)


async def test_revert_and_mute_are_in_the_wide_footer_and_help(tmp_path: Path) -> None:
    async with regressed_app(tmp_path) as app, app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        keys = {k.key: k.description for k in app.screen.query(FooterKey) if k.display}
        assert keys.get("u") == "Revert" and keys.get("m") == "Mute"
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        text = static_text(app.screen.query_one(".dialog-body Static", Static))
        assert "revert a regressed error's merged fix" in text and "mute an error" in text


async def test_a_regression_arriving_live_raises_the_alarm_and_a_notice(
    tmp_path: Path, notifications: Notifications
) -> None:
    async with (
        regressed_app(tmp_path, regress=False) as app,
        app.run_test(size=(160, 48)) as pilot,
    ):
        notified = notifications(app)
        await settle(pilot)
        assert "regressed" not in header_text(app)
        error_id = (await error_of(app)).id
        merged = await app.engine.store.error(error_id)
        assert merged is not None and merged.state is State.MERGED
        # The occurrence on the merged code goes through the engine's ingest and rules.
        await app.engine.ingest("prod-1", [again(merged.hosts["prod-1"] + 4)])
        await until(pilot, lambda: "⚠ 1 regressed" in header_text(app), 10, "the alarm")
        assert any(s == "error" and m.startswith("REGRESSED: PA SyntaxError") for s, m in notified)
        row = app.main_screen.query_one(ErrorsTable).error(error_id)
        assert row is not None and row.state is State.REGRESSED


async def test_the_detail_of_a_regressed_error_shows_the_merged_diff_beside_what_came_since(
    tmp_path: Path,
) -> None:
    async with regressed_app(tmp_path) as app, app.run_test(size=(160, 60)) as pilot:
        await settle(pilot)
        await select(pilot, (await error_of(app)).id)
        await pilot.press("enter")
        detail = await until(pilot, lambda: composed(app, DetailScreen, "#detail-body"))
        body = detail.query_one("#detail-body", Static)
        text = await until(
            pilot,
            lambda: "did not hold" in (t := static_text(body, 160)) and t,
            10,
            "the after-merge section",
        )
        assert "REGRESSED: the merged fix did not hold" in text
        assert f"PR #{PR_NUMBER} merged 2027-01-15T08:20:00.000Z by octocat" in text
        assert "+  if (req.headers['content-type'] !== 'application/json') {" in text
        assert "occurrence(s) since 2027-01-15T08:25:00.000Z" in text
        assert AGAIN_MESSAGE[:60] in text


async def test_u_then_yes_opens_the_revert_pr_and_ends_the_alarm(
    world: World, notifications: Notifications
) -> None:
    """The whole way: a real fix merged on the GitHub stand-in, the start and the new
    occurrence through the engine, then u and y at the keyboard."""
    engine = await world.start(quick(world, 3600))
    error = await published(world, engine)
    [pr] = await engine.store.prs(error.current_attempt_id or 0)
    world.github.merge("acme/pa", pr.number, by="octocat")
    merged = await world.error_in(State.MERGED, timeout=30)
    app = AutofixApp(engine)
    notified = notifications(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready_on(pilot, merged.id)
        started = time.time()
        start = Start(seq=901, host="prod-1", service="PA", at=iso(started), line="listening")
        await engine.ingest("prod-1", [start, occurrence(merged, 902, started + 1)])
        await until(pilot, lambda: "⚠ 1 regressed" in header_text(app), 20, "the alarm")
        await pilot.press("u")
        await until(pilot, lambda: composed(app, ConfirmScreen), 10, "the question")
        await pilot.press("y")
        said = f"opened revert pull request #{pr.number + 1}"
        await until(pilot, lambda: any(said in m for _, m in notified), 60, "the revert PR")
        await until(pilot, lambda: "regressed" not in header_text(app), 10, "the alarm to end")
    [_, revert] = await engine.store.prs(merged.current_attempt_id or 0)
    assert revert.kind == "revert" and world.github.posts()[-1].body["head"] == revert.branch
    [*_, decision] = await engine.store.decisions(error_id=merged.id)
    assert (decision.action, decision.actor) == ("revert", app.actor)
