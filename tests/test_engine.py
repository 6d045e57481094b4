"""The console engine end to end with real parts.

A real agent stream (local subprocess) delivers errors that a real Node.js service wrote;
fix attempts run in real git worktrees with the real Claude Code CLI against the scripted
Messages API stand-in; tests run with real `node --test`; PRs go to the GitHub stand-in
and branches to a real bare remote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import DetectionConfig
from agent.occurrence import occurrence_of
from agent.outbox import Outbox
from agent.parse import Assembler
from agent.redact import Redactor
from console.config import ConsoleConfig, parse_config
from console.engine import AttemptChanged, ClaudeActivity, Engine, EngineEvent, Notice
from console.models import State
from console.store import Store
from tests.conftest import eventually, require_tool
from tests.github_api import GitHubStandIn
from tests.messages_api import ApiError, MessagesApi, Stall, Text, ToolCall
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


def fix_turns(worktree: Path) -> list:
    users = str(worktree / "lib" / "users.js")
    return [
        [Text("Reading the handler."), ToolCall("Read", {"file_path": users})],
        [ToolCall("Edit", {"file_path": users, "old_string": BUGGY_LINE,
                           "new_string": FIXED_LINE})],
        [ToolCall("Bash", {"command": "node --test", "description": "run the tests"})],
        [Text("getUserProfile now returns null for unknown ids instead of throwing.")],
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

    @property
    def worktree(self) -> Path:
        return self.repo / ".worktrees" / "hotfix" / f"auto-{self.fingerprint}"

    async def start(self, config: ConsoleConfig | None = None, links: bool = True) -> Engine:
        cfg = config or self.config
        engine = Engine(cfg, await Store.open(cfg.db_path))
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
    return parse_config(data)


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


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    isolate_git(tmp_path, monkeypatch)
    repo, bare = make_service_repo(tmp_path)
    host, state = local_host(tmp_path, "prod-1")
    fingerprint = seed_agent(state, node_error_log(tmp_path), "prod-1")
    api = MessagesApi([])
    api.start()
    with GitHubStandIn(token=TOKEN, repos={"acme/pa": bare}) as github:
        config = console_config(tmp_path, repo, api, github, [host])
        w = World(tmp_path, repo, bare, config, api, github, fingerprint)
        api.turns = fix_turns(w.worktree)
        yield w
        if w.engine is not None:
            await w.engine.stop()
    api.close()


async def test_a_fix_starts_from_the_spare_checkout_and_stopping_leaves_no_spare(
    world: World,
) -> None:
    spare = world.repo / ".worktrees" / "ready"
    engine = await world.start()
    await engine.wait_ready_worktrees()
    inode = spare.stat().st_ino
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok

    await world.error_in(State.REVIEW, timeout=120)
    assert world.worktree.stat().st_ino == inode, "the attempt's worktree is the spare, renamed"
    await engine.wait_idle()
    await engine.wait_ready_worktrees()
    assert spare.stat().st_ino != inode, "the attempt's run over, a new spare is made"
    assert git(spare, "rev-parse", "HEAD") == git(world.bare, "rev-parse", "main")

    await engine.stop()
    world.engine = None
    assert not spare.exists()
    listed = git(world.repo, "worktree", "list", "--porcelain").splitlines()
    assert f"worktree {spare}" not in listed and f"worktree {world.worktree}" in listed


def main_state(repo: Path) -> tuple[str, str, str, str]:
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "branch", "--show-current"),
        git(repo, "status", "--porcelain"),
        (repo / "lib" / "users.js").read_text(),
    )


async def test_approved_error_is_fixed_tested_reviewed_and_opened_as_one_pr(world: World) -> None:
    before = main_state(world.repo)
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert error.hosts == {"prod-1": 3} and error.error_type == "TypeError"

    # The keyboard and Telegram approve at the same moment: one attempt.
    results = await asyncio.gather(
        engine.approve(error.id, actor="keyboard"), engine.approve(error.id, actor="telegram:7")
    )
    assert sorted(r.ok for r in results) == [False, True]
    assert "already decided" in next(r.message for r in results if not r.ok)

    review = await world.error_in(State.REVIEW, timeout=120)
    [attempt] = await engine.store.attempts(error_id=review.id)
    assert attempt.test_exit_code == 0
    assert attempt.diff and "+  if (!user) return null;" in attempt.diff
    assert attempt.claude_turns and attempt.claude_summary and "null" in attempt.claude_summary
    assert any(isinstance(e, ClaudeActivity) for e in world.events)
    transcript = await engine.store.transcript(attempt.id)
    assert any('"type":"result"' in line.replace(" ", "") for line in transcript)
    # The prompt carried the error as delimited data.
    prompt = world.api.conversation[0]["messages"][0]
    assert "Cannot read properties of undefined" in str(prompt)
    assert main_state(world.repo) == before, "the main checkout must not change"

    published = await asyncio.gather(
        engine.approve(review.id, actor="keyboard"), engine.approve(review.id, actor="telegram:7")
    )
    assert sorted(r.ok for r in published) == [False, True]
    done = await world.error_in(State.PR_OPENED)
    [final] = await engine.store.attempts(error_id=done.id)
    assert final.pr_number == 1 and final.pr_url
    [post] = world.github.posts()
    assert post.body["head"] == f"hotfix/auto-{world.fingerprint}" and post.body["base"] == "main"
    remote_heads = git(world.bare, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    assert f"hotfix/auto-{world.fingerprint}" in remote_heads.splitlines()
    pushed = git(world.bare, "show", f"hotfix/auto-{world.fingerprint}:lib/users.js")
    assert "if (!user) return null;" in pushed
    assert not world.worktree.exists(), "the worktree is removed once the PR is open"
    assert main_state(world.repo) == before
    decisions = await engine.store.decisions(error_id=done.id)
    assert len([d for d in decisions if d.action == "approve"]) == 1
    assert len([d for d in decisions if d.action == "open_pr"]) == 1


async def test_a_fix_whose_tests_fail_is_a_failed_attempt_with_the_test_output(
    world: World,
) -> None:
    users = str(world.worktree / "lib" / "users.js")
    world.api.turns = [
        [ToolCall("Read", {"file_path": users})],
        [ToolCall("Edit", {"file_path": users, "old_string": "name: user.name",
                           "new_string": "name: user.nickname"})],
        [Text("Changed the field.")],
    ]  # fmt: skip
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok
    failed = await world.error_in(State.FAILED, timeout=120)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and attempt.reason.startswith("tests failed (exit 1)")
    assert attempt.test_exit_code == 1 and "fail" in (attempt.test_output_tail or "")
    assert attempt.diff and "user.nickname" in attempt.diff, "the diff is kept for reading"
    assert not world.worktree.exists()
    assert any(isinstance(e, Notice) and e.level == "error" for e in world.events)


async def test_a_claude_api_error_fails_the_attempt_with_the_clis_own_message(
    world: World,
) -> None:
    world.api.turns = [ApiError(401, "authentication_error", "invalid x-api-key")]
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    failed = await world.error_in(State.FAILED, timeout=120)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and attempt.reason.startswith("Claude Code:")
    assert "401" in attempt.reason or "api" in attempt.reason.lower()
    assert not world.worktree.exists()


async def test_retry_with_an_instruction_reaches_the_prompt_and_skip_shelves_it(
    world: World,
) -> None:
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    await world.error_in(State.REVIEW, timeout=120)
    requests_before = len(world.api.conversation)
    result = await engine.retry(error.id, actor="keyboard", instruction="Also log the bad id.")
    assert result.ok
    await world.error_in(State.REVIEW, timeout=120)
    first_new = world.api.conversation[requests_before]
    assert "Also log the bad id." in str(first_new["messages"][0])
    attempts = await engine.store.attempts(error_id=error.id)
    assert [a.state for a in attempts] == [State.SKIPPED, State.REVIEW]
    assert attempts[1].extra_instruction == "Also log the bad id."

    skipped = await engine.skip(error.id, actor="keyboard")
    assert skipped.ok
    assert (await engine.skip(error.id, actor="telegram:7")).message.startswith("already")
    row = await world.error_in(State.SKIPPED)
    assert row.current_attempt_id == attempts[1].id
    assert not world.worktree.exists()
    assert world.github.posts() == []


async def test_a_repo_path_that_is_not_a_repo_fails_the_attempt_clearly(world: World) -> None:
    not_repo = world.tmp / "not-a-repo"
    not_repo.mkdir()
    service = replace(world.config.services[0], repo=not_repo)
    config = replace(world.config, services=(service,))
    engine = await world.start(config)
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    failed = await world.error_in(State.FAILED)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and "not a git repository" in attempt.reason


async def test_a_missing_claude_fails_with_an_install_hint(world: World) -> None:
    config = replace(
        world.config, claude=replace(world.config.claude, command=str(world.tmp / "no-claude"))
    )
    engine = await world.start(config)
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    failed = await world.error_in(State.FAILED)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and "install Claude Code" in attempt.reason
    assert not world.worktree.exists()


async def test_the_same_fault_on_two_hosts_is_one_error_with_summed_counts(
    world: World,
) -> None:
    host2, state2 = local_host(world.tmp, "prod-2")
    seed_agent(state2, node_error_log(world.tmp, payload="1234"), "prod-2", times=2)
    config = replace(
        world.config, hosts=(*world.config.hosts, parse_config({"hosts": [host2]}).hosts[0])
    )
    engine = await world.start(config)

    async def both():
        rows = await engine.store.errors(limit=10)
        return [r for r in rows if r.hosts == {"prod-1": 3, "prod-2": 2}]

    [row] = await world.until(both, 30, "both hosts counted")
    assert row.count == 5 and row.fingerprint == world.fingerprint


async def test_auto_approve_starts_a_fix_for_configured_severities(world: World) -> None:
    config = replace(world.config, auto_approve=("low", "medium", "high", "critical"))
    engine = await world.start(config)
    await world.error_in(State.REVIEW, timeout=120)
    decisions = await engine.store.decisions()
    assert any(d.actor == "auto" and d.action == "approve" for d in decisions)


def _write_toml(path: Path, config: ConsoleConfig, tmp: Path, api: MessagesApi) -> None:
    host = config.hosts[0]
    service = config.services[0]
    env = "\n".join(f'{k} = "{v}"' for k, v in api.env(str(tmp / "home")).items())
    path.write_text(
        f'state_dir = "{config.state_dir}"\nauto_approve = ["low", "medium", "high", "critical"]\n'
        f'[[hosts]]\nname = "{host.name}"\nlocal = true\nagent_command = "{host.agent_command}"\n'
        f'agent_config = "{host.agent_config}"\n'
        f'[[services]]\nname = "PA"\nrepo = "{service.repo}"\ntest_command = "node --test"\n'
        f'[claude]\ncommand = "{config.claude.command}"\ntimeout_seconds = 300\n'
        f"[claude.extra_env]\n{env}\n"
    )


async def test_a_console_killed_during_a_fix_recovers_the_attempt_as_interrupted(
    world: World,
) -> None:
    world.api.turns = [Stall()]
    toml = world.tmp / "console.toml"
    _write_toml(toml, world.config, world.tmp, world.api)
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--config", str(toml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    db = world.config.db_path
    try:

        def fixing() -> bool:
            if not db.exists() or not world.worktree.exists():
                return False
            conn = sqlite3.connect(db)
            try:
                rows = conn.execute("SELECT state FROM attempts").fetchall()
            except sqlite3.OperationalError:
                return False
            finally:
                conn.close()
            return rows == [("fixing",)] and bool(world.api.conversation)

        await world.until(fixing, 90, "the serve process to start a fix")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout:
            proc.stdout.close()

    engine = await world.start(links=False)
    [attempt] = await engine.store.attempts()
    assert attempt.state is State.INTERRUPTED
    error = await engine.store.error(attempt.error_id)
    assert error is not None and error.state is State.INTERRUPTED and error.count == 3
    assert not world.worktree.exists(), "the half-done worktree is cleaned up"
    assert any(isinstance(e, Notice) and "interrupted" in e.text for e in world.events)
    # A person can retry it.
    world.api.turns = fix_turns(world.worktree)
    assert (await engine.retry(error.id, actor="keyboard")).ok
    await world.error_in(State.REVIEW, timeout=120)
    changes = [e for e in world.events if isinstance(e, AttemptChanged)]
    assert changes
