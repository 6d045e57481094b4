"""`autofix check` and `autofix fix` as a developer runs them, against real parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sshd import SshServer, ssh_server_fixture  # noqa: F401  (provides ssh_server)

from tests.conftest import require_tool
from tests.engine_world import agent_stream_command, fix_turns, node_error_log, seed_agent
from tests.github_api import GitHubStandIn
from tests.messages_api import MessagesApi, ToolCall
from tests.service_repo import isolate_git, make_service_repo

AUTOFIX = [sys.executable, "-m", "console.cli"]


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(tmp_path, monkeypatch)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUTOFIX, *args], capture_output=True, text=True, timeout=180, env=env)


def host_toml(name: str, server: SshServer, known_hosts: Path | None = None) -> str:
    """A ``[[hosts]]`` entry reaching ``server`` with its client key."""
    return (
        f'[[hosts]]\nname = "{name}"\ntarget = "127.0.0.1"\nport = {server.port}\n'
        f'user = "{server.user}"\nkey = "{server.client_key}"\n'
        f'known_hosts = "{known_hosts or server.known_hosts}"\n'
    )


def test_check_reports_each_part_with_a_line_and_fails_on_what_is_broken(
    tmp_path: Path, ssh_server
) -> None:
    server: SshServer = ssh_server()
    repo, _ = make_service_repo(tmp_path)
    agent = agent_stream_command(tmp_path)
    stranger = tmp_path / "empty_known_hosts"
    stranger.write_text("")
    config = tmp_path / "console.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "console"}"\n'
        + host_toml("prod-1", server)
        + f'agent_command = "{agent}"\n'
        + host_toml("stranger", server, stranger)
        + f'[[services]]\nname = "PA"\nrepo = "{repo}"\n'
        f'[[services]]\nname = "ghost"\nrepo = "{tmp_path / "nowhere"}"\n'
        f'[claude]\ncommand = "{require_tool("claude")}"\n'
    )
    proc = run("check", "--config", str(config))
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert any(line.startswith("ok   host prod-1") and "host key known" in line for line in lines)
    assert any(
        line.startswith("FAIL host stranger") and "not in" in line and "known_hosts" in line
        for line in lines
    ), lines
    assert any(line.startswith("ok   service PA") for line in lines), lines
    assert any(line.startswith("FAIL service ghost") for line in lines), lines
    assert any(line.startswith("ok   claude") for line in lines), lines
    assert any(line.startswith("ok   sandbox") and "bwrap" in line for line in lines), lines


def test_check_fails_without_bubblewrap_and_says_how_to_install_it(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "console"}"\n[claude]\ncommand = "{require_tool("claude")}"\n'
    )
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    proc = run("check", "--config", str(config), env={**os.environ, "PATH": str(empty_path)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [sandbox] = [line for line in proc.stdout.splitlines() if "sandbox" in line]
    assert sandbox.startswith("FAIL sandbox") and "apt-get install bubblewrap" in sandbox, sandbox


def test_a_config_with_wrong_types_names_the_key_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    config.write_text('concurrency = "two"\n')
    proc = run("check", "--config", str(config))
    assert proc.returncode == 2
    assert "concurrency" in proc.stderr and "Traceback" not in proc.stderr


def test_config_before_or_after_the_command_is_the_file_read(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    config.write_text('concurrency = "two"\n')
    home = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    before = run("--config", str(config), "check", env=home)
    after = run("check", "--config", str(config), env=home)
    for proc in (before, after):
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"autofix: config error: {config}: ")
        assert "concurrency" in proc.stderr


def test_no_config_at_all_points_to_the_demo_and_to_init(tmp_path: Path) -> None:
    home = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    proc = run("check", env=home)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"autofix: no config file at {tmp_path / 'xdg' / 'autofix' / 'config.toml'}\n"
        "  To try the whole loop on this machine without one: autofix demo\n"
        "  To write one for your own service from a few questions: autofix init\n"
        "  (or write it by hand, README: Console config reference, and pass it with "
        "--config FILE, before or after the command)\n"
    )


def test_an_agent_only_install_says_to_install_the_console_extra(tmp_path: Path) -> None:
    """``pip install levautofix`` (no extra) as on a prod host: ``autofix`` explains itself."""
    venv = tmp_path / "agent-only"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    proc = subprocess.run(
        [str(venv / "bin" / "autofix"), "check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "autofix: the console's dependencies are not installed (missing: textual, asyncssh, "
        "aiosqlite, orjson, telegram, httpx, textual_plotext, textual_serve); this looks like "
        "an agent-only install. "
        "Install `levautofix[console]`: pip install 'levautofix[console]'\n"
    )
    agent = subprocess.run(
        [str(venv / "bin" / "autofix-agent"), "--help"], capture_output=True, text=True
    )
    assert agent.returncode == 0 and "Traceback" not in agent.stderr


def _fix_once(
    tmp_path: Path, first_turns: Callable[[Path], list], *, yes: bool = True
) -> tuple[subprocess.CompletedProcess[str], Path, str]:
    """`autofix fix --yes` (or without ``yes``) on the sample error, with
    `first_turns(home)` before the real fix; the config is ``tmp_path / "console.toml"``."""
    repo, bare = make_service_repo(tmp_path)
    state = tmp_path / "agent-state"
    state.mkdir()
    fingerprint = seed_agent(state, node_error_log(tmp_path), "prod-1")
    scan = subprocess.run(
        [sys.executable, "-m", "agent.cli", "scan", "--service", "PA", "-"],
        input=node_error_log(tmp_path, payload="4242"),
        capture_output=True,
        check=True,
    )
    [result] = [json.loads(line) for line in scan.stdout.splitlines()]
    assert result["fingerprint"] == fingerprint
    error_json = tmp_path / "error.json"
    error_json.write_text(json.dumps(result))
    worktree = repo / ".worktrees" / "hotfix" / f"auto-{fingerprint}"
    home = tmp_path / "home"
    home.mkdir()
    with MessagesApi(first_turns(home) + fix_turns(worktree)) as api:
        env_lines = "\n".join(f'{k} = "{v}"' for k, v in api.env(str(home)).items())
        config = tmp_path / "console.toml"
        config.write_text(
            f'state_dir = "{tmp_path / "console"}"\n'
            f'[[services]]\nname = "PA"\nrepo = "{repo}"\ntest_command = "node --test"\n'
            f'[claude]\ncommand = "{require_tool("claude")}"\ntimeout_seconds = 120\n'
            f"[claude.extra_env]\n{env_lines}\n"
        )
        proc = run("fix", "--config", str(config), "--service", "PA",
                   "--error-json", str(error_json), *(["--yes"] if yes else []))  # fmt: skip
    return proc, bare, fingerprint


def test_fix_from_the_command_line_runs_one_attempt_and_prints_the_diff(tmp_path: Path) -> None:
    proc, bare, fingerprint = _fix_once(tmp_path, lambda home: [])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Claude Code was refused no calls" in proc.stdout
    assert "fix ready for review: 1 file(s), tests passed" in proc.stdout
    assert "+  if (!user) return null;" in proc.stdout
    [pushed] = [line for line in proc.stdout.splitlines() if "pushed branch" in line]
    assert pushed.startswith(f"pushed branch hotfix/auto-{fingerprint} to origin")
    assert "no pull request" in pushed
    heads = subprocess.run(
        ["git", "branch", "--list"], cwd=bare, capture_output=True, text=True, check=True
    ).stdout
    assert f"hotfix/auto-{fingerprint}" in heads


def test_fix_prints_each_refused_call_with_its_rule_and_never_as_done(tmp_path: Path) -> None:
    def steal_key(home: Path) -> list:
        key = home / ".ssh" / "id_rsa"
        key.parent.mkdir()
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
        return [[ToolCall("Read", {"file_path": str(key)})]]

    proc, _, _ = _fix_once(tmp_path, steal_key)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Claude Code was refused 1 call(s):" in out
    [refusal] = [line for line in out.splitlines() if line.startswith("  ") and "id_rsa" in line
                 and "claude:" not in line]  # fmt: skip
    assert "Read" in refusal and ".ssh" in refusal
    shown = [line for line in out.splitlines() if "claude:" in line and "id_rsa" in line]
    assert shown and all("refused" in line for line in shown), shown
    assert "secret" not in out
    # The real fix the same model makes afterwards still reaches review and is pushed.
    assert "fix ready for review: 1 file(s), tests passed" in out
    assert "pushed branch" in out


def test_fix_refuses_an_error_json_that_is_not_an_error(tmp_path: Path) -> None:
    repo, _ = make_service_repo(tmp_path)
    config = tmp_path / "console.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "console"}"\n[[services]]\nname = "PA"\nrepo = "{repo}"\n'
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"message": "no fingerprint here"}')
    proc = run("fix", "--config", str(config), "--service", "PA", "--error-json", str(bad))
    assert proc.returncode == 2 and "fingerprint" in proc.stderr


def _check_lines(proc: subprocess.CompletedProcess[str], prefix: str) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line[5:].startswith(prefix)]


def test_check_asks_github_whether_the_token_may_push_and_open_prs(tmp_path: Path) -> None:
    repo, _ = make_service_repo(tmp_path)
    with GitHubStandIn(
        repos={"octo/service": None, "octo/readonly": None}, read_only=("octo/readonly",)
    ) as github:
        config = tmp_path / "console.toml"
        config.write_text(
            f'state_dir = "{tmp_path / "console"}"\n'
            f'[[services]]\nname = "PA"\nrepo = "{repo}"\ngithub_repo = "octo/service"\n'
            f'[[services]]\nname = "RO"\nrepo = "{repo}"\ngithub_repo = "octo/readonly"\n'
            f'[[services]]\nname = "gone"\nrepo = "{repo}"\ngithub_repo = "octo/gone"\n'
            f'[github]\napi_url = "{github.url}"\n'
        )
        good = run("check", "--config", str(config),
                   env={**os.environ, "GITHUB_TOKEN": github.token})  # fmt: skip
        bad = run("check", "--config", str(config),
                  env={**os.environ, "GITHUB_TOKEN": "ghp_revoked"})  # fmt: skip
    assert good.returncode == 1, good.stdout + good.stderr
    assert _check_lines(good, "service PA: the") == [
        "ok   service PA: the GitHub token can push to octo/service and open PRs into main"
    ]
    assert _check_lines(good, "service RO: the") == [
        "FAIL service RO: the GitHub token cannot push to octo/readonly (permissions.push is "
        'false); it needs "Contents: write" and "Pull requests: write" on that repository'
    ]
    assert _check_lines(good, "service gone: octo") == [
        "FAIL service gone: octo/gone was not found on GitHub while trying to read the "
        "repository (404: Not Found); check the repository name, or the token cannot see "
        "this repository"
    ]
    assert _check_lines(bad, "service PA: GitHub") == [
        "FAIL service PA: GitHub rejected the token while trying to read the repository "
        "(401: Bad credentials); check github.token, GITHUB_TOKEN or `gh auth status`"
    ]


def test_check_quotes_what_the_host_said_when_it_is_not_a_hello(tmp_path: Path, ssh_server) -> None:
    """A user whose login shell is nologin answers with a sentence, not the agent's hello."""
    server: SshServer = ssh_server(
        forced_command="echo 'This account is currently not available.'; exit 1"
    )
    config = tmp_path / "console.toml"
    config.write_text(f'state_dir = "{tmp_path / "console"}"\n' + host_toml("prod-1", server))
    proc = run("check", "--config", str(config))
    assert _check_lines(proc, "host prod-1") == [
        f"FAIL host prod-1 ({server.user}@127.0.0.1:{server.port}): the host answered "
        "'This account is currently not available.' instead of the agent's hello; check the "
        "forced command and the login shell of the user"
    ]


def test_a_second_console_on_one_store_names_the_process_that_holds_it(tmp_path: Path) -> None:
    require_tool("node")  # the demo's service; without it the demo stops before the store
    state = tmp_path / "console"
    config = tmp_path / "console.toml"
    config.write_text(f'state_dir = "{state}"\n')
    first = subprocess.Popen(
        [*AUTOFIX, "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = state / "console.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().endswith("\n")):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "serve never took the store's lock"
            time.sleep(0.1)
        held = (
            f"{state} is in use by process {first.pid} (autofix serve --config {config}); "
            "quit that one first, or give this one another state_dir\n"
        )
        console = run("--config", str(config))
        serve = run("serve", "--config", str(config))
        demo = run("demo", "--config", str(config), "--workspace", str(tmp_path / "ws"))
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert (console.returncode, console.stderr) == (1, f"autofix: {held}")
    assert (serve.returncode, serve.stderr) == (1, f"autofix: {held}")
    assert (demo.returncode, demo.stderr) == (1, f"autofix demo: {held}")
    assert not (tmp_path / "ws").exists(), "the refused demo must not touch its workspace"
    # Once the holder is gone, the store is free again (the kernel dropped the lock).
    again = subprocess.Popen(
        [*AUTOFIX, "serve", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )
    time.sleep(3)
    alive = again.poll() is None
    again.terminate()
    again.wait(timeout=60)
    assert alive, again.stderr.read() if again.stderr else ""


def test_fix_without_yes_keeps_the_attempt_and_publish_pushes_it_without_claude(
    tmp_path: Path,
) -> None:
    proc, bare, fingerprint = _fix_once(tmp_path, lambda home: [], yes=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = tmp_path / "console.toml"
    worktree = tmp_path / "pa" / ".worktrees" / "hotfix" / f"auto-{fingerprint}"
    last = proc.stdout.splitlines()[-1]
    named, _, how = last.partition(" waits in review with its worktree; ")
    assert named.startswith("attempt 1 of PA TypeError: "), last
    prefix = f"to publish it without running Claude again: autofix fix --config {config} --publish "
    assert how.startswith(prefix) and how.removeprefix(prefix).isdigit(), last
    attempt = how.removeprefix(prefix)
    assert "pushed branch" not in proc.stdout
    assert worktree.is_dir()
    # The Messages API stand-in is gone: publishing must not need Claude.
    published = run("fix", "--config", str(config), "--publish", attempt)
    assert published.returncode == 0, published.stdout + published.stderr
    [line] = published.stdout.splitlines()
    assert line.startswith(f"pushed branch hotfix/auto-{fingerprint} to origin"), line
    heads = subprocess.run(
        ["git", "branch", "--list"], cwd=bare, capture_output=True, text=True, check=True
    ).stdout
    assert f"hotfix/auto-{fingerprint}" in heads
    assert not worktree.exists(), "the published attempt's worktree is removed, not left behind"
    again = run("fix", "--config", str(config), "--publish", attempt)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == f"already decided: {named} is pushed\n"


def test_fix_needs_an_error_or_an_attempt_to_publish(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    config.write_text(f'state_dir = "{tmp_path / "console"}"\n')
    proc = run("fix", "--config", str(config), "--service", "PA")
    assert (proc.returncode, proc.stderr) == (
        2,
        "autofix fix: --service and --error-json are required (or --publish ATTEMPT)\n",
    )
