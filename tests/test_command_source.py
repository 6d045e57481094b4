"""CommandSource against real processes: exits, restarts with backoff, missing binaries, stop."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time

import pytest

from agent.command import CommandSource

pytestmark = pytest.mark.timeout(30)


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_exiting_command_is_restarted_with_growing_backoff_and_each_exit_reported():
    source = CommandSource(
        "pa",
        ["sh", "-c", "echo out line; echo 'boom: disk on fire' >&2; exit 3"],
        min_backoff=0.05,
        max_backoff=0.4,
    )
    received: list[bytes] = []
    starts: list[float] = []

    def on_data(data: bytes) -> None:
        received.append(data)
        if data == b"out line\n":
            starts.append(time.monotonic())

    task = asyncio.create_task(source.run(on_data))
    await _until(lambda: len(starts) >= 5)
    source.stop()
    await asyncio.wait_for(task, 5)

    assert b"out line\n" in received
    assert b"boom: disk on fire\n" in received
    problems = source.problems()
    assert len(problems) >= 4
    assert "exited with code 3" in problems[0]
    assert "'boom: disk on fire'" in problems[0]
    assert "restarting in 0.05s" in problems[0]
    assert "restarting in 0.1s" in problems[1]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 0.05, 0.1, 0.2, 0.4: each wait at least its backoff, and the later ones longer.
    assert gaps[0] >= 0.05
    assert gaps[2] >= 0.2
    assert gaps[3] >= 0.4
    assert gaps[3] > gaps[0]
    assert source.problems() == []


async def test_backoff_resets_after_the_command_stayed_up():
    source = CommandSource(
        "pa",
        ["sh", "-c", "sleep 0.3; exit 1"],
        min_backoff=0.05,
        max_backoff=10.0,
        stable_after=0.2,
    )
    task = asyncio.create_task(source.run(lambda data: None))
    await _until(lambda: source.starts >= 3, timeout=10)
    source.stop()
    await asyncio.wait_for(task, 5)
    problems = source.problems()
    assert len(problems) >= 2
    assert all("restarting in 0.05s" in p for p in problems), problems


async def test_missing_executable_is_reported_and_retried_not_fatal():
    source = CommandSource("pa", ["/nonexistent/journalctl", "-f"], min_backoff=0.02)
    task = asyncio.create_task(source.run(lambda data: None))
    seen: list[str] = []
    await _until(lambda: len(seen.extend(source.problems()) or seen) >= 3)
    assert not task.done()
    source.stop()
    await asyncio.wait_for(task, 5)
    assert "/nonexistent/journalctl not found" in seen[0]
    assert "for pa" in seen[0]
    assert "restarting in 0.02s" in seen[0]
    assert "restarting in 0.04s" in seen[1]
    assert source.starts == 0


async def test_non_executable_file_is_reported(tmp_path):
    script = tmp_path / "logs.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    source = CommandSource("pa", [str(script)], min_backoff=0.02)
    task = asyncio.create_task(source.run(lambda data: None))
    seen: list[str] = []
    await _until(lambda: len(seen.extend(source.problems()) or seen) >= 1)
    source.stop()
    await asyncio.wait_for(task, 5)
    assert "permission denied" in seen[0]


async def test_long_running_writer_streams_live_and_stop_kills_its_whole_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = (
        f"sleep 300 & echo $! > {pidfile}; "
        "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.01; done"
    )
    source = CommandSource("pa", ["sh", "-c", script], min_backoff=0.05)
    received = bytearray()
    task = asyncio.create_task(source.run(received.extend))
    await _until(lambda: received.count(b"\n") >= 10 and pidfile.exists())
    # Delivered while the command is still running, in whole lines.
    assert not task.done()
    assert source.pid is not None
    leader = source.pid
    grandchild = int(pidfile.read_text())
    assert _alive(grandchild)
    lines = bytes(received).splitlines()
    assert lines[:3] == [b"line 0", b"line 1", b"line 2"]

    source.stop()
    await asyncio.wait_for(task, 5)
    await _until(lambda: not _alive(grandchild) and not _alive(leader), timeout=5)
    assert source.problems() == []
    assert source.pid is None


async def test_stdin_is_devnull_so_a_reader_of_stdin_ends_at_once():
    source = CommandSource("pa", ["sh", "-c", "cat; echo cat-done"], min_backoff=5.0)
    received = bytearray()
    task = asyncio.create_task(source.run(received.extend))
    await _until(lambda: b"cat-done" in received)
    await _until(lambda: source.starts == 1 and source.pid is None)
    problems = source.problems()
    assert problems and "exited with code 0" in problems[0] and "no stderr" in problems[0]
    source.stop()
    await asyncio.wait_for(task, 5)


async def test_command_ignoring_sigterm_is_killed_after_the_grace():
    script = "trap '' TERM; echo ready; while :; do sleep 0.05; done"
    source = CommandSource("pa", ["sh", "-c", script], kill_grace=0.3)
    received = bytearray()
    task = asyncio.create_task(source.run(received.extend))
    await _until(lambda: b"ready" in received)
    started = time.monotonic()
    source.stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started >= 0.25


async def test_streams_are_not_interleaved_inside_a_line():
    # Many small writes to both streams; every delivered piece must consist of whole lines.
    code = (
        "import sys\n"
        "for i in range(300):\n"
        "    sys.stdout.write('out-%d-' % i); sys.stdout.flush()\n"
        "    sys.stderr.write('err-%d\\n' % i); sys.stderr.flush()\n"
        "    sys.stdout.write('end\\n'); sys.stdout.flush()\n"
    )
    source = CommandSource("pa", [sys.executable, "-c", code], min_backoff=5.0)
    pieces: list[bytes] = []
    task = asyncio.create_task(source.run(pieces.append))
    await _until(lambda: source.starts == 1 and source.pid is None)
    source.stop()
    await asyncio.wait_for(task, 5)
    assert all(p.endswith(b"\n") for p in pieces)
    lines = b"".join(pieces).splitlines()
    assert [x for x in lines if x.startswith(b"out")] == [b"out-%d-end" % i for i in range(300)]
    assert [x for x in lines if x.startswith(b"err")] == [b"err-%d" % i for i in range(300)]


async def test_failing_consumer_ends_the_run_and_the_command():
    source = CommandSource("pa", ["sh", "-c", "while :; do echo x; sleep 0.01; done"])

    def on_data(data: bytes) -> None:
        raise RuntimeError("consumer broke")

    task = asyncio.create_task(source.run(on_data))
    with pytest.raises(RuntimeError, match="consumer broke"):
        await asyncio.wait_for(task, 5)
    assert source.pid is None


def test_empty_command_is_refused():
    with pytest.raises(ValueError, match="empty"):
        CommandSource("pa", [])


async def test_problems_go_to_the_callback_as_they_happen_when_one_is_given():
    reported: list[str] = []
    source = CommandSource(
        "pa",
        ["/nonexistent/docker", "logs", "-f", "pa"],
        min_backoff=0.02,
        on_problem=reported.append,
    )
    task = asyncio.create_task(source.run(lambda data: None))
    await _until(lambda: len(reported) >= 2)
    source.stop()
    await asyncio.wait_for(task, 5)
    assert "`/nonexistent/docker logs -f pa` for pa" in reported[0]
    assert source.problems() == []
