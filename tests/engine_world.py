"""The console engine's world for tests: a real agent stream carrying errors that the real
Node.js sample service wrote, a real service repository with a bare remote, the real Claude
Code CLI against the scripted Messages API stand-in and the GitHub stand-in.

The ``world`` fixture in conftest.py builds one per test through :func:`open_world`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.config import DetectionConfig
from agent.occurrence import occurrence_of
from agent.outbox import Outbox
from agent.parse import Assembler
from agent.redact import Redactor
from console.config import ConsoleConfig, parse_config
from console.engine import Engine
from console.events import EngineEvent, Notice
from console.models import State
from tests.conftest import eventually, require_tool, stopped
from tests.github_api import GitHubStandIn
from tests.messages_api import MessagesApi, Text, ToolCall, verdict_call
from tests.service_repo import BUGGY_LINE, FIXED_LINE, SERVICE, git, isolate_git, make_service_repo

TOKEN = "ghp_engine-test"
T0 = 1_800_000_000.0


def node_error_log(tmp: Path, scenario: str = "users", payload: str = "999") -> bytes:
    """Run the real sample service once and return what it wrote to its error log."""
    node = require_tool("node")
    logs = tmp / f"logs-{scenario}-{payload}"
    logs.mkdir()
    subprocess.run(
        [node, str(SERVICE / "app.js"), "--once", scenario, "--payload", payload,
         "--logger", "console", "--log-dir", str(logs)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return b"".join(p.read_bytes() for p in sorted(logs.glob("*-error.log")))


def seed_agent(state_dir: Path, log: bytes, host: str, times: int = 3) -> str:
    """Put the log's errors through the agent's own pipeline into its outbox."""
    assembler = Assembler()
    records = assembler.feed(log, 0) + assembler.flush(eof=True)
    assert records, "the sample service logged no error"
    occurrences = [occurrence_of("PA", r, Redactor()) for r in records] * times
    box = Outbox.open(state_dir / "agent.db", host)
    box.ingest(occurrences, now=T0)
    events = box.settle(DetectionConfig(min_severity="low"), now=T0 + 400)
    box.close()
    assert events
    return events[0].fingerprint


def agent_toml(path: Path, state: Path, host: str) -> Path:
    path.write_text(
        f'state_dir = "{state}"\nhost = "{host}"\n[stream]\nheartbeat_seconds = 0.5\n'
        f'[[sources]]\nservice = "PA"\npaths = ["{state}/none/*.log"]\n'
    )
    return path


def agent_stream_command(root: Path, host: str = "prod-1") -> str:
    """The command a host runs for the console: an empty agent's stream, under ``root``."""
    state = root / "agent-state"
    state.mkdir(exist_ok=True)
    toml = agent_toml(root / "agent.toml", state, host)
    return f"{sys.executable} -m agent.cli stream --config {toml}"


def fix_turns(worktree: Path) -> list:
    users = str(worktree / "lib" / "users.js")
    return [
        [Text("Reading the handler."), ToolCall("Read", {"file_path": users})],
        [ToolCall("Edit", {"file_path": users, "old_string": BUGGY_LINE,
                           "new_string": FIXED_LINE})],
        [ToolCall("Bash", {"command": "node --test", "description": "run the tests"})],
        [Text("getUserProfile now returns null for unknown ids instead of throwing."),
         verdict_call(summary="getUserProfile now returns null for unknown ids.",
                      files=[{"path": "lib/users.js", "why": "the null check"}])],
    ]  # fmt: skip


REGRESSION_TEST_ANCHOR = "test('unrouted paths answer 404"
REGRESSION_TEST = (
    "test('getUserProfile returns null for an unknown id', () => {\n"
    "  assert.equal(getUserProfile('999'), null);\n"
    "});\n\n"
)


def fix_with_test_turns(worktree: Path, risk: str = "low") -> list:
    """The fix of :func:`fix_turns` plus a regression test in the service's test file."""
    users = str(worktree / "lib" / "users.js")
    tests = str(worktree / "test" / "users.test.js")
    return [
        [ToolCall("Edit", {"file_path": users, "old_string": BUGGY_LINE,
                           "new_string": FIXED_LINE})],
        [ToolCall("Edit", {"file_path": tests, "old_string": REGRESSION_TEST_ANCHOR,
                           "new_string": REGRESSION_TEST + REGRESSION_TEST_ANCHOR})],
        [ToolCall("Bash", {"command": "node --test", "description": "run the tests"})],
        [Text("getUserProfile returns null for unknown ids; a test pins it."),
         verdict_call(risk=risk, files=[{"path": "lib/users.js", "why": "the null check"}])],
    ]  # fmt: skip


def breaking_turns(worktree: Path, note: str = "Changed the field.") -> list:
    """A first round whose edit breaks the service's own test (a renamed field)."""
    users = str(worktree / "lib" / "users.js")
    return [
        [ToolCall("Read", {"file_path": users})],
        [ToolCall("Edit", {"file_path": users, "old_string": "name: user.name",
                           "new_string": "name: user.nickname"})],
        [Text(note), verdict_call()],
    ]  # fmt: skip


@dataclass
class World:
    tmp: Path
    repo: Path
    bare: Path
    config: ConsoleConfig
    api: MessagesApi
    github: GitHubStandIn
    fingerprint: str
    events: list[EngineEvent] = field(default_factory=list)
    engine: Engine | None = None
    # The tables ``config`` was parsed from, for tests that write the config file out.
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def worktree(self) -> Path:
        return self.repo / ".worktrees" / "hotfix" / f"auto-{self.fingerprint}"

    async def start(self, config: ConsoleConfig | None = None, links: bool = True) -> Engine:
        cfg = config or self.config
        engine = await Engine.open(cfg)
        engine.subscribe(self.events.append)
        await engine.start(links=links)
        self.engine = engine
        return engine

    async def until(self, predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
        def notices() -> str:
            return f"notices: {[e.text for e in self.events if isinstance(e, Notice)]}"

        return await eventually(predicate, timeout, what, context=notices)

    async def error_in(self, state: State, timeout: float = 60):
        assert self.engine is not None

        async def find():
            for row in await self.engine.store.errors(limit=100):  # type: ignore[union-attr]
                if row.fingerprint == self.fingerprint and row.state is state:
                    return row
            return None

        return await self.until(find, timeout, f"error in state {state.value}")


def console_config(
    tmp: Path, repo: Path, api: MessagesApi, github: GitHubStandIn, hosts: list[dict], **extra
) -> ConsoleConfig:
    return parse_config(console_document(tmp, repo, api, github, hosts, **extra))


def console_document(
    tmp: Path, repo: Path, api: MessagesApi, github: GitHubStandIn, hosts: list[dict], **extra
) -> dict[str, Any]:
    """The world's console config as a TOML document's tables (a test can write it out)."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "state_dir": str(tmp / "console"),
        "hosts": hosts,
        "services": [
            {
                "name": "PA",
                "repo": str(repo),
                "test_command": "node --test",
                "test_timeout_seconds": 120,
                "github_repo": "acme/pa",
            }
        ],
        "claude": {
            "command": require_tool("claude"),
            "max_turns": 8,
            "timeout_seconds": 120,
            "extra_env": api.env(str(home)),
        },
        "github": {"api_url": github.url, "token": TOKEN},
    }
    data.update(extra)
    return data


def write_serve_config(
    path: Path, config: ConsoleConfig, tmp: Path, api: MessagesApi, store: str | None = None
) -> None:
    """A console config file for ``autofix serve`` in a subprocess: the world's first host
    and service, every severity auto-approved, and ``store`` (a DSN) when given."""
    host = config.hosts[0]
    service = config.services[0]
    env = "\n".join(f'{k} = "{v}"' for k, v in api.env(str(tmp / "home")).items())
    shared = f'store = "{store}"\n' if store else ""
    path.write_text(
        f'state_dir = "{config.state_dir}"\n{shared}'
        'auto_approve = ["low", "medium", "high", "critical"]\n'
        f'[[hosts]]\nname = "{host.name}"\nlocal = true\nagent_command = "{host.agent_command}"\n'
        f'agent_config = "{host.agent_config}"\n'
        f'[[services]]\nname = "PA"\nrepo = "{service.repo}"\ntest_command = "node --test"\n'
        f'[claude]\ncommand = "{config.claude.command}"\ntimeout_seconds = 300\n'
        f"[claude.extra_env]\n{env}\n"
    )


def local_host(tmp: Path, name: str) -> tuple[dict, Path]:
    state = tmp / f"agent-{name}"
    state.mkdir()
    toml = agent_toml(tmp / f"agent-{name}.toml", state, name)
    host = {
        "name": name,
        "local": True,
        "agent_command": f"{sys.executable} -m agent.cli stream",
        "agent_config": str(toml),
    }
    return host, state


@asynccontextmanager
async def open_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    """A world in ``tmp_path``; its engine (if started) is stopped on the way out."""
    isolate_git(tmp_path, monkeypatch)
    repo, bare = make_service_repo(tmp_path)
    host, state = local_host(tmp_path, "prod-1")
    fingerprint = seed_agent(state, node_error_log(tmp_path), "prod-1")
    api = MessagesApi([])
    api.start()
    with GitHubStandIn(token=TOKEN, repos={"acme/pa": bare}) as github:
        document = console_document(tmp_path, repo, api, github, [host])
        config = parse_config(document)
        w = World(tmp_path, repo, bare, config, api, github, fingerprint, document=document)
        api.turns = fix_turns(w.worktree)
        try:
            yield w
        finally:
            if w.engine is not None:
                await stopped(w.engine.stop(), "stopping the engine")
            api.close()


def main_state(repo: Path) -> tuple[str, str, str, str]:
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "branch", "--show-current"),
        git(repo, "status", "--porcelain"),
        (repo / "lib" / "users.js").read_text(),
    )
