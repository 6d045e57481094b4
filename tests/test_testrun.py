"""Service test runs: real /bin/sh, real process groups, real signals."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.fix.sandbox.cage import CAGE_HOME, Cage, CageUnavailable, cage_env, cage_for
from console.fix.testrun import TAIL_BYTES, TestRunError, clean_output, run_tests
from tests.conftest import require_tool
from tests.planted import (
    HOOK_MARKER,
    SECRETS,
    Listener,
    Targets,
    developer_home,
    planted_report,
    planted_test,
    tree_digest,
)
from tests.service_repo import git, isolate_git

# The run gets exactly this environment, nothing of the test process's own.
ENV = {"PATH": os.environ["PATH"]}


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


def read_pid(path: Path) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


async def test_passing_command_reports_exit_zero_and_output(tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("from cwd\n")
    result = await run_tests(
        "cat marker.txt; echo to-stderr >&2; echo $EXTRA",
        tmp_path,
        10,
        env={**ENV, "EXTRA": "layered"},
    )

    assert result.passed and result.exit_code == 0 and not result.timed_out
    assert result.output_tail.splitlines() == ["from cwd", "to-stderr", "layered"]
    assert 0 < result.duration_s < 10


async def test_failing_command_is_not_passed_and_keeps_its_exit_code(tmp_path: Path) -> None:
    result = await run_tests("echo '1 failing'; exit 3", tmp_path, 10, env=ENV)

    assert not result.passed
    assert result.exit_code == 3
    assert result.output_tail == "1 failing"


async def test_missing_test_runner_is_a_failed_run_with_the_shell_message(tmp_path: Path) -> None:
    result = await run_tests("no-such-runner-xyz --ci", tmp_path, 10, env=ENV)

    assert not result.passed and result.exit_code == 127
    assert "no-such-runner-xyz" in result.output_tail


async def test_stdin_is_closed_so_prompts_do_not_hang(tmp_path: Path) -> None:
    result = await run_tests('read answer; echo "got [$answer] rc=$?"', tmp_path, 10, env=ENV)

    assert result.output_tail == "got [] rc=1"


async def test_timeout_kills_the_whole_group_including_grandchildren(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = f"sh -c 'sleep 300 & echo $! > {pidfile}; wait' ; echo never"

    result = await run_tests(script, tmp_path, 0.5, kill_grace=1, env=ENV)
    grandchild = read_pid(pidfile)

    assert result.timed_out and not result.passed and result.exit_code is None
    assert "timed out" in result.output_tail and "never" not in result.output_tail
    assert result.duration_s < 5
    await asyncio.sleep(0.2)
    assert gone(grandchild)


async def test_grandchild_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "stubborn.pid"
    script = f"(trap '' TERM; exec sleep 300) & echo $! > {pidfile}; wait"

    started = time.monotonic()
    result = await run_tests(script, tmp_path, 0.3, kill_grace=0.5, env=ENV)
    stubborn = read_pid(pidfile)

    assert result.timed_out
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.2)
    assert gone(stubborn)


async def test_background_server_left_by_a_passing_suite_is_stopped(tmp_path: Path) -> None:
    pidfile = tmp_path / "server.pid"
    script = f"sleep 300 & echo $! > {pidfile}; echo suite done"

    result = await run_tests(script, tmp_path, 10, kill_grace=3, env=ENV)
    server = read_pid(pidfile)

    assert result.passed and result.output_tail == "suite done"
    assert result.duration_s < 2, "a leftover that obeys SIGTERM must not cost the grace"
    await asyncio.sleep(0.2)
    assert gone(server)


async def test_cancelling_the_run_stops_the_suite(tmp_path: Path) -> None:
    pidfile = tmp_path / "suite.pid"
    task = asyncio.create_task(
        run_tests(f"sleep 300 & echo $! > {pidfile}; wait", tmp_path, 60, kill_grace=1, env=ENV)
    )
    suite = await asyncio.to_thread(read_pid, pidfile)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert gone(suite)


async def test_huge_output_keeps_only_a_bounded_tail(tmp_path: Path) -> None:
    # ~60 MB of output: the tail must be the real end, and memory must stay small.
    script = (
        f'{sys.executable} -c "import sys\n'
        "for i in range(600000): sys.stdout.write(f'line {i:07d} ' + 'x' * 90 + chr(10))\n"
        "print('LAST LINE')\""
    )
    result = await run_tests(script, tmp_path, 60, env=ENV)

    lines = result.output_tail.splitlines()
    assert result.passed
    assert lines[-1] == "LAST LINE"
    assert lines[-2].startswith("line 0599999 ")
    assert len(lines) <= 200
    assert len(result.output_tail.encode()) <= TAIL_BYTES
    assert all(line.startswith("line ") for line in lines[:-1]), "no partial first line"


async def test_output_tail_has_no_terminal_escapes(tmp_path: Path) -> None:
    script = (
        r"printf '\033[31mFAIL\033[0m src/a.test.js\n'; "
        r"printf 'progress 10%%\rprogress 100%%\n'; "
        r"printf '\033]8;;http://x\033\\link\033]8;;\033\\\n'"
    )
    result = await run_tests(script, tmp_path, 10, env=ENV)

    assert result.output_tail.splitlines() == ["FAIL src/a.test.js", "progress 100%", "link"]
    assert "\x1b" not in result.output_tail


def test_clean_output_survives_invalid_utf8() -> None:
    assert clean_output(b"ok \xff\xfe done\n") == "ok \ufffd\ufffd done\n"


async def test_missing_worktree_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TestRunError, match="does not exist"):
        await run_tests("true", tmp_path / "gone", 10, env=ENV)
    with pytest.raises(TestRunError, match="empty"):
        await run_tests("   ", tmp_path, 10, env=ENV)


async def test_no_process_of_ours_outlives_the_run(tmp_path: Path) -> None:
    before = set(os.listdir("/proc"))
    await run_tests("sleep 30 & sleep 30 & exit 1", tmp_path, 10, kill_grace=1, env=ENV)
    await asyncio.sleep(0.2)
    new = [p for p in set(os.listdir("/proc")) - before if p.isdigit()]
    ours = [p for p in new if not gone(int(p)) and _cmdline(p).startswith("sleep 30")]
    assert ours == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- the cage (real bubblewrap) ---------------------------------------------------------


@dataclass
class CagedWorktree:
    repo: Path
    worktree: Path
    home: Path
    outside: Path


@pytest.fixture
def caged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CagedWorktree:
    """A real repository with a linked worktree, a home with the files an attacker wants,
    and the console's secrets in the environment of the test process."""
    require_tool("bwrap")
    require_tool("node")
    isolate_git(tmp_path, monkeypatch)
    home = developer_home(tmp_path, monkeypatch)
    repo = tmp_path / "repo"
    (repo / "lib").mkdir(parents=True)
    (repo / "lib" / "a.js").write_text("module.exports = 1;\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    worktree = repo / ".worktrees" / "attempt"
    git(repo, "worktree", "add", "-q", "-b", "attempt", str(worktree))
    # Not under /tmp nor the home: the one place where read-only, not hidden, is the guard.
    outside = Path("/var/tmp") / f"autofix-planted-{os.getpid()}-{tmp_path.name}.txt"
    return CagedWorktree(repo, worktree, home, outside)


def plant(caged: CagedWorktree, listener: Listener) -> Path:
    test_file = caged.worktree / "test" / "zz-planted.test.js"
    test_file.parent.mkdir()
    targets = Targets(
        port=listener.port,
        home=caged.home,
        outside=caged.outside,
        tracked="lib/a.js",
        hook_marker=caged.home / HOOK_MARKER,
    )
    test_file.write_text(planted_test(targets))
    return test_file


async def test_caged_run_of_a_planted_test_reaches_no_network_secret_or_file_outside(
    caged: CagedWorktree,
) -> None:
    home_before = tree_digest(caged.home)
    repo_before = tree_digest(caged.repo, skip=(".worktrees",))
    with Listener() as listener:
        test_file = plant(caged, listener)
        result = await run_tests(
            f"node {test_file.relative_to(caged.worktree)}",
            caged.worktree,
            60,
            env=cage_env(ENV),
            cage=cage_for(caged.worktree),
        )
        await asyncio.sleep(0.2)
        assert listener.connections == 0, "the cage reached the developer's loopback"

    assert result.passed, result.output_tail
    report = planted_report(result.output_tail)
    tries = report["results"]
    assert tries["connect"] != "connected"
    for blocked in ("git_hook", "git_config", "gitfile", "outside", "authorized_keys"):
        assert tries[blocked] != "done", f"{blocked} got through: {tries}"
    assert tries["outside"] == "EROFS" and tries["gitfile"] == "EROFS"
    # Inside the worktree and the private home the test may write; none of it leaves.
    assert tries["tracked"] == "done" and tries["env_dump"] == "done"
    assert sorted(report["env"]) == ["HOME", "PATH", "PWD", "TMPDIR"]  # PWD: set by sh
    assert report["env"]["HOME"] == CAGE_HOME
    assert not any(secret in result.output_tail for secret in SECRETS.values())
    assert tree_digest(caged.home) == home_before
    assert tree_digest(caged.repo, skip=(".worktrees",)) == repo_before
    assert not caged.outside.exists()
    assert (caged.worktree / ".git").read_text().startswith("gitdir: ")
    assert (caged.worktree / "env-dump.txt").exists()


async def test_caged_timeout_ends_processes_that_left_the_process_group(
    caged: CagedWorktree,
) -> None:
    script = "setsid sh -c 'trap \"\" TERM; exec sleep 301' & sleep 302 & wait"

    result = await run_tests(
        script, caged.worktree, 0.5, env=cage_env(ENV), cage=cage_for(caged.worktree), kill_grace=1
    )

    assert result.timed_out and not result.passed
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive_with_prefix(("sleep 301", "sleep 302")):
        await asyncio.sleep(0.05)
    assert _alive_with_prefix(("sleep 301", "sleep 302")) == []


def _alive_with_prefix(prefixes: tuple[str, ...]) -> list[str]:
    return [
        p
        for p in os.listdir("/proc")
        if p.isdigit() and not gone(int(p)) and _cmdline(p).startswith(prefixes)
    ]


async def test_missing_bubblewrap_refuses_to_run_and_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    with pytest.raises(CageUnavailable, match="apt-get install bubblewrap"):
        cage_for(tmp_path)


async def test_a_sandbox_bubblewrap_cannot_build_is_refused_with_its_own_words(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    cage = Cage(require_tool("bwrap"), tmp_path, hidden=(Path("/nonexistent-autofix-cage"),))

    with pytest.raises(CageUnavailable, match="Can't mkdir /nonexistent-autofix-cage"):
        await run_tests(f"touch {marker}", tmp_path, 10, env=ENV, cage=cage)
    assert not marker.exists()


def test_cage_hides_the_real_home_but_never_the_worktree_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("bwrap")
    home = tmp_path / "home"
    worktree = home / "src" / "app" / ".worktrees" / "a"
    worktree.mkdir(parents=True)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("HOME", str(home))

    assert cage_for(worktree, hidden=[state, worktree, tmp_path / "gone"]).hidden == (
        home,
        state,
    )
    monkeypatch.setenv("HOME", str(worktree))
    assert cage_for(worktree).hidden == ()
