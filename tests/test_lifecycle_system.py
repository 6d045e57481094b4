"""After the PR, end to end with a real service that restarts: the real sample Node.js
service logs the fault, the real ``autofix-agent run`` follows its logs (its start lines
too) and the console reads the agent's stream; the fix (the real Claude Code CLI against
the Messages API stand-in, the service's own ``node --test``) is auto-merged through the
GitHub stand-in onto a real bare remote after a soak of a second; the service is deployed
again from the merged main and restarts, stays quiet for ``resolve_after`` (seconds here)
and the error is resolved; then an old release is deployed again, the fault comes back,
the error regresses, auto-merge for the service pauses and the revert PR is opened.
Every step awaits what the product records; nothing sleeps for a fixed time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from console.automerge.plan import FINAL_STEPS, MergePlan, MergeStep
from console.config import parse_config
from console.engine import Engine
from console.models import State
from tests.conftest import eventually, node_env, require_node_modules, require_tool, stopped
from tests.engine_world import TOKEN, World, console_document, fix_with_test_turns
from tests.github_api import GitHubStandIn
from tests.messages_api import MessagesApi
from tests.service_repo import git, isolate_git, make_service_repo
from tests.test_system import free_port, prod_agent

RESOLVE_AFTER_S = 2.0


class Service:
    """The sample service as deployed on the prod host: one release at a time, started
    with its logs in one directory the agent follows."""

    def __init__(self, node: str, logs: Path) -> None:
        self.node, self.logs = node, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    async def deploy(self, release: Path) -> None:
        """Stop the running release (if any), start ``release``, wait until it answers."""
        self.stop()
        self.port = free_port()
        self.proc = subprocess.Popen(
            [self.node, str(release / "app.js"), "--port", str(self.port),
             "--log-dir", str(self.logs)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=node_env(),
        )  # fmt: skip
        await eventually(self._healthy, 30, f"the service from {release.name} answering")

    async def _healthy(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                reply = await client.get(f"http://127.0.0.1:{self.port}/api/health")
            return reply.status_code == 200
        except httpx.HTTPError:
            return False

    async def get(self, path: str) -> int:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{self.port}{path}")).status_code

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def running_agent(toml: Path, err: Path) -> Iterator[subprocess.Popen[bytes]]:
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(toml)],
        stderr=err.open("ab"),
    )
    try:
        yield agent
    finally:
        agent.terminate()
        agent.wait(10)


async def test_an_auto_merged_fix_resolves_after_the_restart_then_regresses_and_is_reverted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = require_tool("node")
    require_node_modules()
    isolate_git(tmp_path, monkeypatch)
    repo, bare = make_service_repo(tmp_path)

    # --- prod host: the buggy release running, its logs followed by the real agent -----
    releases = tmp_path / "prod" / "releases"
    old = releases / "1-buggy"
    git(tmp_path, "clone", "-q", str(bare), str(old))
    logs, toml = prod_agent(tmp_path / "prod")
    service = Service(node, logs)
    host = {
        "name": "prod-1",
        "local": True,
        "agent_command": f"{sys.executable} -m agent.cli stream",
        "agent_config": str(toml),
    }
    api = MessagesApi([])
    api.start()
    try:
        with (
            running_agent(toml, tmp_path / "agent.err"),
            GitHubStandIn(token=TOKEN, repos={"acme/pa": bare}) as github,
        ):
            await service.deploy(old)
            for user_id in (404, 405, 406):
                assert await service.get(f"/api/users/{user_id}") == 500

            document = console_document(tmp_path, repo, api, github, [host])
            document["github"]["poll_seconds"] = 3600  # the merge is auto-merge's own news
            [pa] = document["services"]
            pa["resolve_after_minutes"] = RESOLVE_AFTER_S / 60
            pa["auto_merge"] = {
                "enabled": True,
                "require_checks": False,
                "soak_minutes": 1 / 60,
                "revert_on_regression": True,
            }
            engine = await Engine.open(parse_config(document))
            world = World(tmp_path, repo, bare, engine.config, api, github, fingerprint="")
            engine.subscribe(world.events.append)
            world.engine = engine
            try:
                await engine.start()
                await _carry_through(world, engine, service, releases)
            finally:
                await stopped(engine.stop(), "stopping the engine")
    finally:
        service.stop()
        api.close()


async def _carry_through(world: World, engine: Engine, service: Service, releases: Path) -> None:
    # hop: the service's log -> the agent -> the console, settled
    [error] = await world.until(
        lambda: engine.store.errors(limit=10, state=State.AWAITING_APPROVAL),
        60,
        "the settled error in the console",
    )
    assert error.error_type == "TypeError" and error.service == "PA"
    world.fingerprint = error.fingerprint
    world.api.turns = fix_with_test_turns(world.worktree)

    # hop: approved, fixed with a regression test, published, auto-merged after the soak
    assert (await engine.approve(error.id, actor="keyboard")).ok
    review = await world.error_in(State.REVIEW, timeout=180)
    assert review.current_attempt_id is not None
    assert (await engine.publish(review.current_attempt_id, actor="keyboard")).ok

    def final() -> MergePlan | None:
        plan = engine.auto_merge.plan(review.current_attempt_id)
        return plan if plan is not None and plan.step in FINAL_STEPS else None

    plan = await world.until(final, 60, "the automatic merge")
    assert plan.step is MergeStep.MERGED, plan.line()
    merged = await world.error_in(State.MERGED, timeout=10)
    tip = git(world.bare, "rev-parse", "refs/heads/main")
    assert "if (!user) return null;" in git(world.bare, "show", "main:lib/users.js")

    # hop: the merged main deployed; the agent relays the start; quiet -> resolved
    fixed = releases / "2-fixed"
    git(releases, "clone", "-q", str(world.bare), str(fixed))
    assert git(fixed, "rev-parse", "HEAD") == tip
    await service.deploy(fixed)
    assert await service.get("/api/users/404") == 200
    resolved = await world.error_in(State.RESOLVED, timeout=60)
    why = (await engine.store.decisions(error_id=resolved.id))[-1]
    assert why.actor == "console" and "prod-1 started again" in (why.reason or "")
    assert engine.auto_merge.paused("PA") is None

    # hop: the old release deployed again; the fault is back -> regressed, paused, reverted
    await service.deploy(releases / "1-buggy")
    assert await service.get("/api/users/404") == 500
    regressed = await world.error_in(State.REGRESSED, timeout=60)
    assert regressed.id == merged.id
    paused = await world.until(lambda: engine.auto_merge.paused("PA"), 30, "the pause")
    assert paused.startswith("auto-merged PR #1 regressed: occurred again at ")

    async def revert_pr():
        prs = await engine.store.prs(regressed.current_attempt_id or 0)
        return next((p for p in prs if p.kind == "revert"), None)

    revert = await world.until(revert_pr, 60, "the revert PR")
    post = world.github.posts()[-1]
    assert post.body["head"] == revert.branch and post.body["base"] == "main"
    assert "Reverts #1" in post.body["body"]
    reverted = git(world.bare, "show", f"{revert.branch}:lib/users.js")
    assert "if (!user) return null;" not in reverted
    decided = [(d.action, d.actor) for d in await engine.store.decisions(error_id=merged.id)]
    for step in (
        ("auto_merge", "auto-merge"),
        ("merged", "auto-merge"),
        ("resolved", "console"),
        ("regressed", "console"),
        ("pause_auto_merge", "auto-merge"),
        ("revert", "auto-merge"),
    ):
        assert step in decided, (step, decided)
    assert await engine.unanswered_regressions() == []
