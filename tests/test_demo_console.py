"""Claude's state inside the full-screen console: the header and the Claude panel say when
attempts run against the demo's scripted model, when no CLI is there, and why the latest
attempt failed, before and after anyone approves a fix."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from agent.wire import ErrorEvent
from console.app import AutofixApp
from console.config import parse_config
from console.demo.claude_cli import use_claude
from console.engine import Engine
from console.fix.claude_state import ClaudeState, discover, scripted
from console.models import AttemptRow, State
from console.widgets.claude_log import ClaudeLog
from console.widgets.errors_table import ErrorsTable
from console.widgets.header import StatusHeader, claude_text
from tests.conftest import ROOT, require_demo_claude, require_tool
from tests.service_repo import make_service_repo

SIZE = (160, 48)
SCRIPTED = "Claude: scripted demo model; log in to `claude` for real fixes"


def header_text(app: AutofixApp) -> str:
    header = app.main_screen.query_one(StatusHeader)
    console = Console(width=SIZE[0], record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(header.content)
    return " ".join(console.export_text().split())


def panel_lines(app: AutofixApp) -> list[str]:
    return [strip.text for strip in app.main_screen.query_one(ClaudeLog).lines]


def panel_text(app: AutofixApp) -> str:
    """The panel's words, however its width wrapped them."""
    return " ".join(" ".join(panel_lines(app)).split())


async def until(pilot: Pilot, predicate: Callable[[], Any], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home


async def test_the_header_and_the_claude_panel_say_the_demo_runs_the_scripted_model(
    tmp_path: Path, no_login: Path
) -> None:
    require_demo_claude()
    config = parse_config(
        {"state_dir": str(tmp_path / "state"), "claude": {"command": "claude-not-installed"}}
    )
    async with use_claude(config) as (demo_config, claude):
        assert claude.kind == "scripted"
        assert demo_config.claude.extra_env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
        engine = await Engine.open(demo_config)
        app = AutofixApp(engine, claude=claude)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: SCRIPTED in header_text(app), "the header line")
                await until(pilot, lambda: SCRIPTED in panel_text(app), "the panel line")
                assert "Claude idle" not in header_text(app)
        finally:
            await engine.stop()


def sample_error(seq: int) -> ErrorEvent:
    return ErrorEvent(
        type="error",
        seq=seq,
        host="prod-1",
        service="PA",
        fingerprint="7a9f825862bcdad8",
        count=3,
        severity="high",
        message="Cannot read properties of undefined (reading 'id')",
        error_type="TypeError",
        stack=[
            "TypeError: Cannot read properties of undefined (reading 'id')",
            "    at getUserProfile (/srv/pa/lib/users.js:16:21)",
        ],
        route="GET /api/users/42",
        first_seen="2026-12-01T10:00:00.000Z",
        last_seen="2026-12-01T10:00:05.000Z",
    )


async def test_a_missing_cli_and_the_failed_attempt_it_causes_show_with_their_reason(
    tmp_path: Path, no_login: Path, isolated_git_config: None
) -> None:
    require_tool("git")
    repo, _ = make_service_repo(tmp_path)
    missing = "claude-not-installed"
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "services": [{"name": "PA", "repo": str(repo), "test_command": "node --test"}],
            "claude": {"command": missing},
        }
    )
    engine = await Engine.open(config)
    app = AutofixApp(engine, claude=discover(missing, {}))
    missing_line = f"Claude: {missing!r} not found; npm i -g @anthropic-ai/claude-code"
    try:
        await engine.start(links=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: missing_line in header_text(app), "the missing line")
            await until(pilot, lambda: missing_line in panel_text(app), "the panel line")
            await engine.ingest("prod-1", [sample_error(1)])
            [error] = await engine.store.errors(limit=10)
            assert (await engine.approve(error.id, actor="test")).ok
            reason = (
                "Claude Code: claude not found: install Claude Code "
                "(npm i -g @anthropic-ai/claude-code) and log in"
            )
            # The header keeps the reason's start, cut at a word; the panel has it whole.
            head = f"{missing_line} · attempt 1 failed: "

            def failure_in_header() -> bool:
                shown, cut, _ = header_text(app).partition(head)[2].partition("…")
                return bool(cut) and len(shown) > 10 and reason.startswith(shown)

            await until(pilot, failure_in_header, "the failure in the header")
            # The Claude panel of the failed attempt says why, under what it says about Claude.
            table = app.main_screen.query_one(ErrorsTable)
            await until(pilot, lambda: table.select_error(error.id), "the error row")
            await until(
                pilot,
                lambda: f"✗ attempt failed: {reason}" in panel_text(app),
                "the failure in the Claude panel",
            )
            assert panel_text(app).startswith(missing_line)
    finally:
        await engine.stop()


async def test_with_a_logged_in_claude_the_demo_uses_it_and_starts_no_scripted_model(
    tmp_path: Path, no_login: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = require_tool("claude")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-of-the-developer")
    config = parse_config({"state_dir": str(tmp_path / "state"), "claude": {"command": cli}})
    async with use_claude(config) as (demo_config, claude):
        assert demo_config == config
        assert claude.kind == "ready" and claude.text == "Claude: ready"


def test_the_demos_cli_is_the_version_the_tests_pin() -> None:
    cli = require_demo_claude()
    pins = json.loads((ROOT / "tests" / "package.json").read_text())["dependencies"]
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split()[0] == pins["@anthropic-ai/claude-code"]


STARTED = "2027-01-15T09:00:00Z"
NOW = 1_800_003_612.0  # 12 s after STARTED


@pytest.mark.parametrize(
    ("state", "running", "latest", "expected"),
    [
        (None, [], None, "Claude idle"),
        (scripted("claude", SCRIPTED), [], None, SCRIPTED),
        (
            scripted("claude", SCRIPTED),
            [AttemptRow(3, 1, State.FIXING, started_at=STARTED, number=2)],
            None,
            "Claude (scripted demo model) fixing attempt 2 0:12",
        ),
        (
            ClaudeState("ready", "claude", "Claude: ready"),
            [AttemptRow(3, 1, State.TESTING, started_at=STARTED, claude_cost_usd=0.0, number=2)],
            None,
            "Claude testing attempt 2 0:12 $0.0000",
        ),
        (
            scripted("claude", SCRIPTED),
            [],
            AttemptRow(
                4, 2, State.FAILED, reason="Claude Code: API error 529: overloaded", number=1
            ),
            f"{SCRIPTED} · attempt 1 failed: Claude Code: API error 529: overloaded",
        ),
        (
            None,
            [],
            AttemptRow(4, 2, State.FAILED, reason="tests failed (exit 1):\n# fail 1", number=3),
            "Claude attempt 3 failed: tests failed (exit 1): # fail 1",
        ),
        (None, [], AttemptRow(5, 2, State.REVIEW), "Claude idle"),
    ],
)
def test_the_header_says_what_claude_is_doing_or_why_it_cannot(
    state: ClaudeState | None,
    running: list[AttemptRow],
    latest: AttemptRow | None,
    expected: str,
) -> None:
    assert claude_text(running, NOW, state, latest).plain.strip() == expected
