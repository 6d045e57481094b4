"""The console driven by keys, on the real engine with real parts.

The engine is tests/engine_world.py's world: a real agent stream carrying errors
the real Node service wrote, real git worktrees, the real Claude Code CLI against the
scripted Messages API, real `node --test`, and the GitHub stand-in for pull requests.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Input, Static
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from agent.wire import ErrorEvent
from console.app import AutofixApp
from console.config import parse_config
from console.events import Notice
from console.models import State
from console.screens import requests
from console.screens.confirm import ConfirmScreen
from console.screens.detail import DetailScreen
from console.screens.main import MainScreen
from console.screens.retry import RetryScreen
from console.screens.review import ReviewScreen
from console.widgets.claude_log import ClaudeLog
from console.widgets.diff_view import DiffView
from console.widgets.errors_table import ErrorsTable
from console.widgets.queue import QueueTable
from tests.engine_world import World, fix_turns
from tests.messages_api import ApiError, Stall
from tests.service_repo import git

Notifications = Callable[[AutofixApp], list[tuple[str, str]]]

SIZE = (160, 48)


async def until(pilot: Pilot, predicate: Callable[[], Any], timeout: float = 60, what: str = ""):
    """Wait for the app to show something, letting it run meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    screen = type(pilot.app.screen).__name__
    raise AssertionError(f"timed out waiting for {what}; the app shows {screen}")


def composed(app: AutofixApp, kind: type, part: str | None = None) -> Any:
    """The screen on top once it is ``kind``, mounted with everything it composes and, if
    ``part`` is given, holding a widget that matches it (``:focus`` included). Pushing a
    screen and composing it are two steps; a busy machine shows the gap, and a key pressed
    in it goes to whatever had focus before."""
    screen = app.screen
    if not isinstance(screen, kind) or not screen.is_mounted:
        return None
    return screen if part is None or screen.query(part) else None


def retry_dialog(app: AutofixApp) -> Any:
    """The retry dialog once its instruction box has focus, so typed keys land in it."""
    return composed(app, RetryScreen, "#instruction:focus")


def table(app: AutofixApp) -> ErrorsTable:
    return app.main_screen.query_one(ErrorsTable)


def shown_state(app: AutofixApp, error_id: int) -> State | None:
    row = table(app).error(error_id)
    return row.state if row else None


def log_text(log: ClaudeLog) -> str:
    return "\n".join(strip.text for strip in log.lines)


def static_text(widget: Static, width: int = 160) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


async def ready_on(pilot: Pilot, error_id: int) -> None:
    """Wait for the error to be listed and put the cursor on it."""
    app = pilot.app
    await until(pilot, lambda: table(app).error(error_id) is not None, 30, "the error row")
    assert table(app).select_error(error_id)
    await pilot.pause()


def post_number(world: World) -> int:
    """The number the GitHub stand-in gave the only pull request it holds."""
    [pulls] = [p for p in world.github.pulls.values() if p]
    return int(pulls[0]["number"])


async def test_approve_fix_review_and_confirmed_approve_open_one_pr(
    world: World, notifications: Notifications
) -> None:
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    opened: list[str] = []
    app = AutofixApp(engine, open_url=opened.append)
    notified = notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await ready_on(pilot, error.id)
        assert shown_state(app, error.id) is State.AWAITING_APPROVAL
        await pilot.press("a")
        await until(pilot, lambda: shown_state(app, error.id) is State.REVIEW, 120, "review")

        # The Claude panel followed the attempt live, one readable line per tool call.
        log = app.main_screen.query_one(ClaudeLog)
        await until(pilot, lambda: "✓ done" in log_text(log), 10, "the final result line")
        text = log_text(log)
        assert "→ Read lib/users.js" in text
        assert "→ Edit lib/users.js (+1 -0)" in text
        assert "→ Bash node --test" in text and "exit 0" in text
        assert any("ready for review" in m for _, m in notified)
        # The picture of this moment (real error, real fix) is the README's screenshot;
        # AUTOFIX_SCREENSHOT=docs/screenshot.svg writes it there.
        await pilot.pause(1.0)
        target = Path(os.environ.get("AUTOFIX_SCREENSHOT") or world.tmp / "screen.svg")
        app.save_screenshot(filename=target.name, path=str(target.parent.resolve()))
        svg = target.read_text()
        assert "Claude" in svg and "review" in svg

        await pilot.press("d")
        review = await until(pilot, lambda: composed(app, ReviewScreen), 60, "the review")
        files = review.query_one(DiffView).files
        assert [f.path for f in files] == ["lib/users.js"] and files[0].added == 1

        # Approving a reviewed diff asks first and shows what will be pushed; "n" pushes nothing.
        await pilot.press("a")
        confirm = await until(pilot, lambda: composed(app, ConfirmScreen), 60, "the confirmation")
        body = static_text(confirm.query_one(".dialog-body Static", Static))
        assert f"hotfix/auto-{world.fingerprint}" in body and "lib/users.js +1 -0" in body
        assert "tests passed" in body
        await pilot.press("n")
        await until(pilot, lambda: composed(app, ReviewScreen), 5, "back to review")
        assert world.github.posts() == []

        await pilot.press("a")  # the dialog reads the attempt and the remote again first
        await until(pilot, lambda: composed(app, ConfirmScreen), 60, "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: shown_state(app, error.id) is State.PR_OPENED, 60, "PR opened")
        [post] = world.github.posts()
        assert post.body["head"] == f"hotfix/auto-{world.fingerprint}"
        # The review screen saw the change as it happened.
        assert review.attempt.state is State.PR_OPENED
        # The PR is announced once (the engine's notice, not the command's answer again).
        await pilot.pause(0.5)
        said = [text for _, text in notified if f"pull request #{post_number(world)}" in text]
        assert len(said) == 1, said

        await pilot.press("escape")
        await until(pilot, lambda: composed(app, MainScreen), 5, "main screen")
        await until(pilot, lambda: app.main_screen.selected_attempt() is not None
                    and app.main_screen.selected_attempt().pr_url, 10, "the PR url")  # fmt: skip
        await pilot.press("o")
        await until(pilot, lambda: opened, 10, "the browser call")
        assert opened == [app.main_screen.selected_attempt().pr_url]
    decisions = await engine.store.decisions(error_id=error.id)
    assert [(d.action, d.actor) for d in decisions if d.action in ("approve", "open_pr")] == [
        ("approve", f"keyboard:{engine.store.runner}"),
        ("open_pr", f"keyboard:{engine.store.runner}"),
    ]


async def test_without_a_github_token_publishing_says_push_only_and_ends_pushed(
    world: World, notifications: Notifications, monkeypatch: Any
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin")
    document = {**world.document, "github": {"api_url": world.github.url}}
    engine = await world.start(parse_config(document))
    error = await world.error_in(State.AWAITING_APPROVAL)
    opened: list[str] = []
    app = AutofixApp(engine, open_url=opened.append)
    notified = notifications(app)
    branch = f"hotfix/auto-{world.fingerprint}"
    async with app.run_test(size=SIZE) as pilot:
        await ready_on(pilot, error.id)
        await pilot.press("a")
        await until(pilot, lambda: shown_state(app, error.id) is State.REVIEW, 120, "review")
        await pilot.press("a")
        confirm = await until(pilot, lambda: composed(app, ConfirmScreen), 60, "the confirmation")
        body = static_text(confirm.query_one(".dialog-body Static", Static))
        assert (
            f"branch {branch} → origin (push only: no PR, a GitHub token is not configured)" in body
        )
        assert "PR into" not in body
        assert confirm.query_one(".dialog").border_title == "Push the branch?"
        await pilot.press("y")
        await until(pilot, lambda: shown_state(app, error.id) is State.PUSHED, 60, "pushed")
        assert world.github.posts() == []
        # The push is said once: the engine's notice, not the command's answer again.
        await until(pilot, lambda: any("pushed branch" in text for _, text in notified), 10)
        await pilot.pause(0.5)
        pushes = [text for _, text in notified if "pushed branch" in text]
        assert len(pushes) == 1 and pushes[0].startswith(f"pushed branch {branch} to origin")
        await until(pilot, lambda: app.main_screen.selected_attempt() is not None
                    and app.main_screen.selected_attempt().state is State.PUSHED, 10)  # fmt: skip
        attempt_id = app.main_screen.selected_attempt().id
        queue = app.main_screen.query_one(QueueTable)
        assert queue.get_cell(str(attempt_id), "state").plain == "pushed"

        # The remote is a local path: there is no page to open, and the message says why.
        await pilot.press("o")
        message = (
            f"no pull request was opened for branch {branch}, and its remote origin "
            f"({world.bare}) is not on github.com, so there is no page to open for it"
        )
        await until(pilot, lambda: ("warning", message) in notified, 10, "the reason")
        assert opened == []

        # On github.com, `o` opens GitHub's page for opening the PR from the pushed branch.
        git(world.repo, "remote", "set-url", "origin", "https://github.com/acme/pa.git")
        await pilot.press("o")
        await until(pilot, lambda: opened, 10, "the browser call")
        assert opened == [f"https://github.com/acme/pa/compare/main...{branch}?expand=1"]
    attempt = await engine.store.attempt(attempt_id)
    done = await engine.store.error(error.id)
    assert done is not None and done.state is State.PUSHED
    decisions = await engine.store.decisions(error_id=error.id)
    assert decisions[-1].action == "push" and decisions[-1].to_state == "pushed"
    assert attempt is not None and attempt.pr_url is None and attempt.branch == branch


async def test_skip_by_key_and_telegram_decisions_show_at_once(
    world: World, notifications: Notifications
) -> None:
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    app = AutofixApp(engine)
    notified = notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await ready_on(pilot, error.id)
        await pilot.press("s")
        await until(pilot, lambda: shown_state(app, error.id) is State.SKIPPED, 10, "skipped")
        # The answer names the error as a person knows it, not by its id.
        skipped = ("information", f"skipped PA {error.error_type}: {error.message}")
        await until(pilot, lambda: skipped in notified, 5, "the skip answer")
        # A Telegram user reopens it, then skips it: both show here without a key press.
        assert (await engine.reopen(error.id, actor="telegram:7")).ok
        await until(pilot, lambda: shown_state(app, error.id) is State.AWAITING_APPROVAL, 5)
        assert (await engine.skip(error.id, actor="telegram:7")).ok
        await until(pilot, lambda: shown_state(app, error.id) is State.SKIPPED, 5, "skipped")
        # Skipping is not possible any more: the key is greyed out and does nothing.
        assert app.main_screen.check_action("skip", ()) is None
        await pilot.press("s")
        # A request that was on its way with the row as it was is refused by the engine,
        # and the console shows why.
        app.main_screen.post_message(requests.Skip(error))
        await until(
            pilot,
            lambda: any(s == "warning" and "already decided" in m for s, m in notified),
            5,
            "the already-decided warning",
        )
    decisions = await engine.store.decisions(error_id=error.id)
    assert [(d.action, d.actor) for d in decisions] == [
        ("skip", f"keyboard:{engine.store.runner}"),
        ("reopen", "telegram:7"),
        ("skip", "telegram:7"),
    ]


async def test_a_failed_fix_is_shown_and_retry_carries_the_typed_instruction(
    world: World, notifications: Notifications
) -> None:
    world.api.turns = [ApiError(401, "authentication_error", "invalid x-api-key")]
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    app = AutofixApp(engine)
    notified = notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await ready_on(pilot, error.id)
        await pilot.press("a")
        await until(pilot, lambda: shown_state(app, error.id) is State.FAILED, 120, "failed")
        # Errors are never silent: an error notification and the reason in the diff panel.
        await until(
            pilot,
            lambda: any(s == "error" and "failed" in m for s, m in notified),
            5,
            "an error notification",
        )
        diff = app.main_screen.query_one(DiffView)
        await until(pilot, lambda: diff.attempt and diff.attempt.state is State.FAILED, 5)
        assert "Claude Code" in (diff.attempt.reason or "")

        world.api.turns = fix_turns(world.worktree)
        before = len(world.api.conversation)
        await pilot.press("r")
        await until(pilot, lambda: retry_dialog(app), 5, "the retry dialog")
        await pilot.press(*"Also log the bad id.")
        await pilot.press("enter")
        await until(pilot, lambda: shown_state(app, error.id) is State.REVIEW, 120, "review")
        assert "Also log the bad id." in str(world.api.conversation[before]["messages"][0])
    attempts = await engine.store.attempts(error_id=error.id)
    assert [a.state for a in attempts] == [State.FAILED, State.REVIEW]
    assert attempts[1].extra_instruction == "Also log the bad id."


async def test_escape_cancels_a_retry_without_touching_the_engine(world: World) -> None:
    engine = await world.start(links=False)
    await engine.ingest("prod-9", [_event(1, "fp-cancel", "PA", "Error", "boom")])
    [row] = await engine.store.errors(limit=5)
    failed = await engine.store.create_attempt(row.id, actor="keyboard")
    assert failed is not None
    await engine.store.transition_attempt(failed.id, State.FIXING, State.FAILED, reason="boom")
    app = AutofixApp(engine)  # it reads the failed attempt from the store as it opens
    async with app.run_test(size=SIZE) as pilot:
        await ready_on(pilot, row.id)
        await until(pilot, lambda: shown_state(app, row.id) is State.FAILED, 5, "failed")
        await pilot.press("r")
        await until(pilot, lambda: retry_dialog(app), 5, "the retry dialog")
        await pilot.press("x", "escape")
        await until(pilot, lambda: composed(app, MainScreen), 5, "main screen")
    assert [a.id for a in await engine.store.attempts()] == [failed.id]


async def test_keys_the_engine_does_not_allow_are_greyed_out_and_do_nothing(
    world: World,
) -> None:
    engine = await world.start(links=False)
    app = AutofixApp(engine)
    await engine.ingest(
        "prod-9",
        [
            _event(1, "fp-fixable", "PA", "Error", "boom"),
            _event(2, "fp-unknown", "billing", "Error", "no entry in [[services]]"),
        ],
    )
    rows = {r.service: r for r in await engine.store.errors(limit=5)}
    main = app.main_screen
    async with app.run_test(size=SIZE) as pilot:
        # Awaiting approval: approve and skip are live, retry is not.
        await ready_on(pilot, rows["PA"].id)
        assert main.check_action("approve", ()) and main.check_action("skip", ())
        assert main.check_action("retry", ()) is None
        await pilot.press("r")
        await pilot.pause(0.2)
        assert isinstance(app.screen, MainScreen)
        keys = footer_keys(app)
        assert not keys["approve"].has_class("-disabled") and keys["retry"].has_class("-disabled")
        # A service the config does not name can be skipped but not fixed.
        await ready_on(pilot, rows["billing"].id)
        assert main.check_action("approve", ()) is None and main.check_action("skip", ())
        await until(pilot, lambda: keys["approve"].has_class("-disabled"), 5, "approve greyed")
        await pilot.press("a")
        await pilot.pause(0.2)
        # The footer greys its keys in place rather than building them again.
        await ready_on(pilot, rows["PA"].id)
        await until(pilot, lambda: not keys["approve"].has_class("-disabled"), 5, "approve live")
        assert footer_keys(app) == keys
    assert await engine.store.attempts() == []


def footer_keys(app: AutofixApp) -> dict[str, FooterKey]:
    return {key.action: key for key in app.main_screen.query(FooterKey)}


class BrokenTelegram:
    """A Telegram control whose switch raises, as a bot with a bug would."""

    state = "on"

    async def set_enabled(self, enabled: bool) -> None:
        raise RuntimeError("the bot fell over")


async def test_an_exception_in_background_work_is_a_notice_and_the_console_runs_on(
    world: World, notifications: Notifications
) -> None:
    engine = await world.start(links=False)
    engine.telegram = BrokenTelegram()
    app = AutofixApp(engine)
    notified = notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main_screen.ready, 10, "load")
        await pilot.press("t")
        await until(
            pilot,
            lambda: ("error", "Telegram failed: the bot fell over") in notified,
            5,
            "the failure as a notice",
        )
        assert app.is_running
        await pilot.press("question_mark")
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", 5, "help")


# Text from configs and logs that Rich/Textual markup would eat, restyle or choke on.
HOSTILE = (
    "Telegram is not configured ([telegram] in the config)",
    "TypeError: [/] closes nothing",
    "[bold red]not bold[/bold red] and [link=https://evil.test]no link[/link]",
    "[@click=app.quit]quit[/] \\[escaped\\]",
    "unbalanced [b]open",
)


def toast_texts(app: AutofixApp) -> list[str]:
    """What each current notification's toast shows, rendered by Textual's own Toast."""
    return [str(Toast(n).render()) for n in app._notifications]


async def test_notices_show_config_and_log_text_exactly_as_written(
    world: World, notifications: Notifications
) -> None:
    engine = await world.start(links=False)
    app = AutofixApp(engine)
    notified = notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main_screen.ready, 10, "load")
        # No [telegram] table in this config: `t` says so, the brackets included.
        await pilot.press("t")
        expected = "Telegram is not configured ([telegram] in the config)"
        await until(pilot, lambda: expected in toast_texts(app), 10, "the Telegram notice")
        assert ("warning", expected) in notified
        for text in HOSTILE[1:]:
            app.show_notice(Notice("error", text))
        await until(pilot, lambda: all(t in toast_texts(app) for t in HOSTILE), 10, "toasts")
        assert app.is_running


def _event(seq: int, fp: str, service: str, kind: str, message: str) -> ErrorEvent:
    return ErrorEvent(
        type="error", seq=seq, host="prod-9", service=service, fingerprint=fp, count=1,
        severity="high", message=message, error_type=kind,
        stack=[f"{kind}: {message}", "    at handler (/srv/app/lib/x.js:1:1)"], route=None,
        first_seen="2026-01-01T00:00:00.000Z", last_seen="2026-01-01T00:00:00.000Z",
    )  # fmt: skip


async def test_filter_narrows_the_errors_and_escape_brings_them_back(world: World) -> None:
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.ingest(
        "prod-9",
        [
            _event(1, "fp-billing", "billing", "RangeError", "Invalid invoice total"),
            _event(2, "fp-mailer", "mailer", "Error", "SMTP connection refused"),
        ],
    )
    app = AutofixApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await ready_on(pilot, error.id)
        await until(pilot, lambda: len(table(app).shown_ids) == 3, 10, "three rows")
        await pilot.press("slash")
        assert app.focused is app.main_screen.query_one("#filter", Input)
        await pilot.press(*"smtp")
        await until(pilot, lambda: len(table(app).shown_ids) == 1, 5, "one row")
        [only] = table(app).shown_ids
        assert table(app).error(only).service == "mailer"
        await pilot.press("enter")  # back to the table, filter kept
        assert isinstance(app.focused, ErrorsTable) and len(table(app).shown_ids) == 1
        await pilot.press("slash", "escape")
        await until(pilot, lambda: len(table(app).shown_ids) == 3, 5, "all rows again")


async def test_detail_shows_the_stack_hosts_and_redacted_samples(world: World) -> None:
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    app = AutofixApp(engine)
    async with app.run_test(size=(140, 60)) as pilot:
        await ready_on(pilot, error.id)
        await pilot.press("enter")
        screen = await until(pilot, lambda: composed(app, DetailScreen), 60, "the detail")
        body = screen.query_one("#detail-body", Static)
        await until(pilot, lambda: "Latest samples (" in static_text(body, 140), 10, "samples")
        text = static_text(body, 140)
        assert "TypeError" in text and "prod-1 3" in text
        # The service's own frame is marked; runtime frames are not.
        marked = [line for line in text.splitlines() if "▶ at" in line]
        assert marked and all("node:internal" not in line for line in marked)
        assert any("users.js" in line for line in marked)
        # Where the frames are in the service's checkout (its own JavaScript: no map).
        code = text.split("In the code", 1)[1].split("Latest samples", 1)[0]
        assert any(line.strip().startswith("▶ lib/users.js:") for line in code.splitlines())
        assert '"fingerprint": "' + world.fingerprint + '"' in text
        await pilot.press("escape")
        await until(pilot, lambda: composed(app, MainScreen), 5, "main screen")


async def test_quit_while_fixing_asks_first(world: World) -> None:
    world.api.turns = [Stall()]
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    app = AutofixApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await ready_on(pilot, error.id)
        await pilot.press("a")
        await until(pilot, lambda: engine.busy and world.api.conversation, 60, "a running fix")
        await pilot.press("q")
        confirm = await until(pilot, lambda: composed(app, ConfirmScreen), 60, "the confirmation")
        assert "running" in static_text(confirm.query_one(".dialog-body Static", Static))
        await pilot.press("n")
        await until(pilot, lambda: composed(app, MainScreen), 5, "main screen")
        assert app.is_running
        await pilot.press("q")
        await until(pilot, lambda: composed(app, ConfirmScreen), 5, "the question")
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, 5, "the app to exit")
    assert engine.busy, "quitting the view leaves stopping the engine to its owner"


async def test_quit_when_idle_exits_at_once(world: World) -> None:
    engine = await world.start(links=False)
    app = AutofixApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main_screen.ready, 10, "load")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, 5, "the app to exit")


async def test_once_loaded_the_collector_leaves_the_consoles_own_objects_alone(
    world: World,
) -> None:
    engine = await world.start(links=False)
    app = AutofixApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main_screen.ready, 10, "load")
        # Widgets, styles and modules: tens of thousands of objects no collection walks.
        await until(pilot, lambda: gc.get_freeze_count() > 10_000, 5, "the freeze")
    assert gc.get_freeze_count() == 0, "they go back to the collector when the console quits"
