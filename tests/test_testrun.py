"""Service test runs: real /bin/sh, real process groups, real signals."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from console.testrun import TAIL_BYTES, TestRunError, clean_output, run_tests

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
