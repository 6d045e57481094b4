"""What the README tells a newcomer to run works as written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.config import parse_config as parse_agent_config
from agent.configschema import ReferenceRow, reference_markdown, reference_rows
from console.config import ConsoleConfig
from console.config import parse_config as parse_console_config
from tests.conftest import ROOT, require_tool

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_every_toml_example_in_the_readme_is_a_valid_config() -> None:
    blocks = fenced("toml")
    assert len(blocks) >= 2
    for block in blocks:
        data = tomllib.loads(block)
        if "sources" in data:
            config = parse_agent_config(data)
            assert config.sources
        else:
            config = parse_console_config(data)
            assert config.services


def readme_reference(heading: str) -> list[ReferenceRow]:
    """The rows of the first table under ``heading``, cells unescaped and key unquoted."""
    section = README.split(f"### {heading}\n", 1)[1]
    table = re.search(r"^\| key \|.*?(?=^[^|])", section, flags=re.S | re.M)
    assert table, f"no table under {heading}"
    rows = []
    for line in table.group(0).splitlines()[2:]:
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 3, line
        rows.append(ReferenceRow(cells[0].strip("`"), cells[1], cells[2]))
    return rows


@pytest.mark.parametrize(
    ("heading", "config"),
    [("Agent config reference", AgentConfig), ("Console config reference", ConsoleConfig)],
)
def test_the_config_reference_tables_list_every_declared_key_with_its_default(
    heading: str, config: type
) -> None:
    documented = readme_reference(heading)
    declared = reference_rows(config)
    expected = f"the table under '### {heading}' should read:\n{reference_markdown(config)}"
    missing = [r.key for r in declared if r.key not in {d.key for d in documented}]
    stale = [d.key for d in documented if d.key not in {r.key for r in declared}]
    assert not missing, f"keys not in the README: {missing}\n{expected}"
    assert not stale, f"README keys the config does not have: {stale}\n{expected}"
    assert documented == declared, expected


def test_the_readme_quick_start_commands_exist_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^make ([a-z-]+)", "\n".join(fenced("sh")), flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} is missing"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_documented_command_is_in_the_cli_help() -> None:
    agent_help = subprocess.run(
        [str(BIN / "autofix-agent"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    console_help = subprocess.run(
        [str(BIN / "autofix"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in re.findall(r"`autofix-agent (\w+)", README):
        assert command in agent_help, command
    for command in set(re.findall(r"`autofix (\w+)", README)):
        assert command in console_help, command


def test_scan_of_the_shipped_sample_as_make_scan_sample_runs_it() -> None:
    proc = subprocess.run(
        [str(BIN / "autofix-agent"), "scan", "agent/samples/pa-error.log"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    groups = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {g["type"] for g in groups}
    assert {"TypeError", "SyntaxError"} <= kinds, kinds


@pytest.mark.slow
def test_autofix_demo_shows_errors_and_stops_everything_it_started(tmp_path: Path) -> None:
    require_tool("node")
    require_tool("git")
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(BIN / "autofix"), "demo", "--headless", "--workspace", str(tmp_path / "ws"),
         "--settle-seconds", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "(awaiting approval)" not in seen:
        seen += (proc.stdout.read() or b"").decode()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    os.set_blocking(proc.stdout.fileno(), True)
    seen += proc.stdout.read().decode()
    assert "(awaiting approval)" in seen, seen
    assert "stopped" in seen and proc.returncode == 0, seen
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "ws")], capture_output=True, text=True
    ).stdout.split()
    assert leftovers == [], "the demo left processes running"
    # The workspace is reused by the next run.
    assert (tmp_path / "ws" / "pa" / ".git").is_dir()
    assert (tmp_path / "ws" / "origin.git").is_dir()
