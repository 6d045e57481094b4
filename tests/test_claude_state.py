"""Telling, offline and without running it, whether the configured Claude Code CLI is there
and logged in, and what a person is told when it is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.fix.claude_state import discover, is_logged_in
from tests.conftest import require_tool


@pytest.fixture
def cli() -> str:
    return require_tool("claude")


def test_a_command_that_is_not_installed_is_missing_with_the_install_hint(tmp_path: Path) -> None:
    state = discover("claude-nowhere-to-be-found", {}, {"PATH": str(tmp_path)})
    assert state.kind == "missing"
    assert state.text == (
        "Claude: 'claude-nowhere-to-be-found' not found; npm i -g @anthropic-ai/claude-code"
    )


def test_an_installed_cli_without_credentials_is_not_logged_in(tmp_path: Path, cli: str) -> None:
    state = discover(cli, {}, {"HOME": str(tmp_path), "PATH": "/usr/bin"})
    assert state.kind == "not_logged_in" and state.command == cli
    assert state.text == (
        "Claude: not logged in; run `claude` once and log in (or set ANTHROPIC_API_KEY)"
    )


def test_the_credentials_file_claude_writes_on_login_is_a_login(tmp_path: Path, cli: str) -> None:
    credentials = tmp_path / ".claude" / ".credentials.json"
    credentials.parent.mkdir()
    credentials.write_text("")
    env = {"HOME": str(tmp_path)}
    assert discover(cli, {}, env).kind == "not_logged_in"  # an empty file is no login
    credentials.write_text('{"claudeAiOauth": {"accessToken": "x"}}')
    assert discover(cli, {}, env).kind == "ready"
    # CLAUDE_CONFIG_DIR moves it, as it moves it for the CLI.
    elsewhere = tmp_path / "elsewhere"
    assert discover(cli, {}, {**env, "CLAUDE_CONFIG_DIR": str(elsewhere)}).kind == "not_logged_in"


@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
def test_a_key_in_the_environment_or_in_extra_env_is_a_login(
    tmp_path: Path, cli: str, name: str
) -> None:
    home = {"HOME": str(tmp_path)}
    assert discover(cli, {}, {**home, name: "sk-1"}).kind == "ready"
    assert discover(cli, {name: "sk-1"}, home).kind == "ready"
    assert discover(cli, {}, {**home, name: "  "}).kind == "not_logged_in"


def test_only_what_reaches_the_cli_counts(tmp_path: Path, cli: str) -> None:
    # The console hands the CLI an allow-listed environment (console/fix/sandbox/childenv.py):
    # a cloud provider switch in the console's own environment never reaches it; in
    # claude.extra_env it does.
    home = {"HOME": str(tmp_path)}
    assert discover(cli, {}, {**home, "CLAUDE_CODE_USE_BEDROCK": "1"}).kind == "not_logged_in"
    assert discover(cli, {"CLAUDE_CODE_USE_BEDROCK": "1"}, home).kind == "ready"
    assert not is_logged_in({**home, "GITHUB_TOKEN": "ghp_x"})


@settings(max_examples=200, deadline=None)
@given(command=st.text(max_size=60), key=st.text(max_size=20))
def test_any_configured_command_gets_a_state_and_never_an_exception(command: str, key: str) -> None:
    env = {"HOME": "/nonexistent-home", "PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": key}
    state = discover(command, {}, env)
    assert state.kind in ("missing", "not_logged_in", "ready")
    assert state.text.startswith("Claude: ")
    if state.kind == "missing":
        assert state.text.endswith("not found; npm i -g @anthropic-ai/claude-code")
    else:
        assert state.kind == ("ready" if key.strip() else "not_logged_in")


def test_check_warns_when_the_cli_is_there_but_not_logged_in(tmp_path: Path, cli: str) -> None:
    config = tmp_path / "console.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[claude]\ncommand = "{cli}"\n')
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "autofix"), "check", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env={**env, "HOME": str(home)},
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert any(line.startswith(f"ok   claude: {cli} (") for line in lines), lines
    assert (
        "warn claude: not logged in; run `claude` once and log in (or set ANTHROPIC_API_KEY)"
        in (lines)
    )
