"""The whole product, end to end, with its real parts; every hop is asserted.

prod side:  the sample Node.js service (real `node`) throws real errors into its log;
            the real `autofix-agent run` tails it; the console reaches the agent's stream
            through a real OpenSSH sshd on loopback with a forced-command key.
dev side:   the console engine (headless) stores the settled error; the real
            python-telegram-bot approves it through the Bot API stand-in; a real git
            worktree; the real Claude Code CLI, scripted through the Messages API stand-in,
            makes a real edit; the service's own `node --test` passes in the worktree; the
            diff is approved from the keyboard in the Textual console (Pilot); the PR is
            opened on the GitHub stand-in and the branch is really on the bare remote.
after:      main is untouched, and the service started from the PR branch no longer
            throws that error.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sshd import SshServer, ssh_server_fixture  # noqa: F401  (provides ssh_server)

from console.app import AutofixApp
from console.config import TelegramConfig, parse_config
from console.engine import Engine
from console.models import State
from console.session import running
from console.store import Store
from tests.conftest import require_node_modules, require_tool
from tests.engine_world import World, fix_turns, main_state
from tests.github_api import GitHubStandIn
from tests.messages_api import MessagesApi
from tests.service_repo import git, isolate_git, make_service_repo
from tests.telegram_api import TelegramApi

OWNER = 777
TOKEN = "ghp_system-test"
TOKEN_ENV = "AUTOFIX_SYSTEM_TELEGRAM_TOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prod_agent(prod: Path) -> tuple[Path, Path]:
    """The prod host's log directory and the config of an agent that follows it (settling
    in half a second), under ``prod``."""
    logs = prod / "logs"
    logs.mkdir(parents=True)
    toml = prod / "agent.toml"
    toml.write_text(
        f'state_dir = "{prod / "agent-state"}"\nhost = "prod-1"\n'
        "[detection]\nsettle_seconds = 0.5\nmax_settle_seconds = 5\nupdate_seconds = 0.5\n"
        'min_severity = "medium"\n[stream]\nheartbeat_seconds = 1\n'
        f'[[sources]]\nservice = "PA"\npaths = ["{logs}/*.log"]\nfrom_beginning = true\n'
    )
    return logs, toml


def start_service(node: str, app_dir: Path, logs: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [node, str(app_dir / "app.js"), "--port", str(port), "--log-dir", str(logs)],
        stdout=subprocess.DEVNULL,
        stderr=(logs / "pa-error.log").open("ab"),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).raise_for_status()
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the sample service did not start")


async def test_an_error_in_prod_becomes_an_approved_pull_request_that_fixes_it(
    tmp_path: Path, ssh_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = require_tool("node")
    require_node_modules()
    isolate_git(tmp_path, monkeypatch)
    repo, bare = make_service_repo(tmp_path)
    before = main_state(repo)

    # --- prod host: the service as deployed (main), its logs, the agent -----------------
    deployed = tmp_path / "prod" / "releases" / "20261126"
    git(tmp_path, "clone", "-q", str(bare), str(deployed))
    logs, agent_toml = prod_agent(tmp_path / "prod")
    service, port = start_service(node, deployed, logs)
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(agent_toml)],
        stderr=(tmp_path / "agent.err").open("ab"),
    )
    server: SshServer = ssh_server(
        forced_command=f"{sys.executable} -m agent.cli stream --config {agent_toml}"
    )
    try:
        for user_id in (404, 405, 406):
            reply = httpx.get(f"http://127.0.0.1:{port}/api/users/{user_id}", timeout=5)
            assert reply.status_code == 500
        assert httpx.get(f"http://127.0.0.1:{port}/api/users/1", timeout=5).status_code == 200

        # --- developer machine ---------------------------------------------------------
        home = tmp_path / "home"
        home.mkdir()
        with (
            MessagesApi([]) as api,
            GitHubStandIn(token=TOKEN, repos={"acme/pa": bare}) as github,
            TelegramApi() as telegram,
        ):
            monkeypatch.setenv(TOKEN_ENV, telegram.token)
            config = parse_config(
                {
                    "state_dir": str(tmp_path / "console"),
                    "hosts": [
                        {
                            "name": "prod-1",
                            "target": "127.0.0.1",
                            "port": server.port,
                            "user": server.user,
                            "key": str(server.client_key),
                            "known_hosts": str(server.known_hosts),
                        }
                    ],
                    "services": [
                        {
                            "name": "PA",
                            "repo": str(repo),
                            "test_command": "node --test",
                            "github_repo": "acme/pa",
                        }
                    ],
                    "claude": {
                        "command": require_tool("claude"),
                        "timeout_seconds": 180,
                        "extra_env": api.env(str(home)),
                    },
                    "github": {"api_url": github.url, "token": TOKEN},
                }
            )
            config = replace(
                config,
                telegram=TelegramConfig(
                    enabled=True,
                    token_env=TOKEN_ENV,
                    allowed_user_ids=(OWNER,),
                    api_base_url=telegram.url,
                ),
            )
            engine = Engine(config, await Store.open(config.db_path))
            world = World(tmp_path, repo, bare, config, api, github, fingerprint="")
            engine.subscribe(world.events.append)
            world.engine = engine
            async with running(config, engine=engine):
                # hop: service log -> agent -> sshd -> console store, settled and classified
                rows = await world.until(
                    lambda: engine.store.errors(limit=10, state=State.AWAITING_APPROVAL),
                    60,
                    "the settled error in the console",
                )
                [error] = rows
                assert error.error_type == "TypeError" and error.hosts == {"prod-1": 3}
                assert error.route is not None and error.route.startswith("GET /api/users/")
                assert error.severity == "medium"
                world.fingerprint = error.fingerprint
                api.turns = fix_turns(world.worktree)

                # hop: Telegram card -> Approve Fix tap -> engine starts the fix
                card = await world.until(
                    lambda: next((m for m in telegram.chat(OWNER) if m.buttons()), None),
                    30,
                    "the new-error message on Telegram",
                )
                assert "Cannot read properties of undefined" in card.text
                telegram.tap(OWNER, card, card.button("Approve Fix")["callback_data"])
                review = await world.error_in(State.REVIEW, timeout=180)

                # hop: worktree, Claude's real edit, the service's own tests
                [attempt] = await engine.store.attempts(error_id=review.id)
                assert attempt.test_exit_code == 0
                assert attempt.diff and "+  if (!user) return null;" in attempt.diff
                assert attempt.branch == f"hotfix/auto-{error.fingerprint}"
                decisions = await engine.store.decisions(error_id=review.id)
                assert any(d.actor == f"telegram:{OWNER}" for d in decisions)
                assert main_state(repo) == before

                # hop: the diff approved from the keyboard in the console
                app = AutofixApp(engine)
                async with app.run_test(size=(160, 48)) as pilot:
                    await pilot.pause(0.5)
                    await pilot.press("a")
                    await pilot.pause(0.3)
                    await pilot.press("y")
                    done = await world.error_in(State.PR_OPENED, timeout=60)
                    await pilot.pause(0.3)

                # hop: PR on the GitHub stand-in, branch really on the bare remote
                [post] = github.posts()
                assert post.body["head"] == attempt.branch and post.body["base"] == "main"
                [final] = await engine.store.attempts(error_id=done.id)
                assert final.pr_url and final.pr_number == 1
                decisions = await engine.store.decisions(error_id=done.id)
                assert any(
                    d.actor == f"keyboard:{engine.store.runner}" and d.action == "open_pr"
                    for d in decisions
                )
                heads = git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads")
                assert attempt.branch in heads.splitlines()
                assert main_state(repo) == before, "main is untouched"
                assert git(bare, "rev-parse", "main") == before[0]
    finally:
        agent.terminate()
        service.terminate()
        agent.wait(10)
        service.wait(10)

    # --- after: the service from the PR branch no longer throws ---------------------------
    fixed = tmp_path / "fixed"
    git(tmp_path, "clone", "-q", "-b", attempt.branch, str(bare), str(fixed))
    fixed_logs = tmp_path / "fixed-logs"
    fixed_logs.mkdir()
    fixed_service, fixed_port = start_service(node, fixed, fixed_logs)
    try:
        reply = httpx.get(f"http://127.0.0.1:{fixed_port}/api/users/406", timeout=5)
        assert reply.status_code == 200
    finally:
        fixed_service.terminate()
        fixed_service.wait(10)
    errors_logged = b"".join(p.read_bytes() for p in fixed_logs.glob("*error*"))
    assert b"TypeError" not in errors_logged
    scan = subprocess.run(
        [sys.executable, "-m", "agent.cli", "scan", *map(str, fixed_logs.glob("*.log"))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert scan.stdout == "", f"the fixed service still logs errors: {scan.stdout}"
