"""Children the console starts are reaped by asyncio's watcher alone, whenever the task
that starts them is cancelled (the console stopping while a git call is being born)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from console.children import end, spawn
from console.fix.git import run_git

# A cancellation at each of the first steps of a start: before the fork, while asyncio
# connects the pipes, and after the child is running.
STEPS = range(8)


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The children asyncio's transport polls: that poll, outside the child watcher, reaps
    a child the watcher then cannot find ("Unknown child process pid" under load)."""
    seen: list[int] = []
    original = subprocess.Popen.poll

    def poll(self: subprocess.Popen[bytes]) -> int | None:
        if sys._getframe(1).f_code.co_filename.endswith("base_subprocess.py"):
            seen.append(self.pid)
        return original(self)

    monkeypatch.setattr(subprocess.Popen, "poll", poll)
    return seen


async def _cancel_after(steps: int, coro: Coroutine[Any, Any, object]) -> None:
    task = asyncio.ensure_future(coro)
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("steps", STEPS)
async def test_a_start_cancelled_at_any_step_is_raised_and_its_child_reaped_by_the_watcher(
    steps: int, polls: list[int]
) -> None:
    born: list[asyncio.subprocess.Process] = []

    async def start() -> None:
        proc = await spawn(
            "sleep",
            "30",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        born.append(proc)
        await end(proc, group=True)

    task = asyncio.ensure_future(start())
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert polls == [], "a child was polled (and maybe reaped) outside the child watcher"
    for proc in born:
        assert proc.returncode is not None


@pytest.mark.parametrize("steps", STEPS)
async def test_a_git_call_cancelled_at_any_step_leaves_no_warning_and_no_child(
    steps: int, tmp_path: Path, polls: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        await _cancel_after(steps, run_git(tmp_path, "status", "--porcelain"))
    assert polls == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_end_waits_for_the_child_even_when_cancelled_again() -> None:
    proc = await spawn("sleep", "30", start_new_session=True)
    ending = asyncio.ensure_future(end(proc, group=True))
    await asyncio.sleep(0)
    ending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ending
    assert proc.returncode == -9


async def test_a_git_call_cancelled_as_its_answer_arrives_is_still_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's stop cancels the PR poller while its git call answers: the poller
    must stop, not carry on to its next wait with the cancellation lost (Python 3.11's
    wait_for returned the answer then, and the engine's stop waited forever)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    communicate = asyncio.subprocess.Process.communicate
    caller: list[asyncio.Task[Any]] = []

    async def answered_then_cancelled(
        self: asyncio.subprocess.Process, input: bytes | None = None
    ) -> tuple[bytes, bytes]:
        out = await communicate(self, input)
        caller[0].cancel()  # the stop arrives in the same loop step as the answer
        return out

    monkeypatch.setattr(asyncio.subprocess.Process, "communicate", answered_then_cancelled)
    carried_on: list[str] = []

    async def poll() -> None:
        await run_git(tmp_path, "status", "--porcelain")
        carried_on.append("after the git call")
        await asyncio.sleep(0)
        carried_on.append("after the next wait")

    task = asyncio.ensure_future(poll())
    caller.append(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "after the next wait" not in carried_on


async def test_end_returns_once_the_child_is_dead_though_a_grandchild_holds_its_pipes(
    tmp_path: Path,
) -> None:
    """A child that started a server in a session of its own (out of reach of the group's
    kill) leaves that server holding its pipes: the stop must not wait for the server."""
    stray = tmp_path / "stray.pid"
    proc = await spawn(
        "sh", "-c", f"setsid sleep 60 & echo $! > {stray}; exec sleep 60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        while not stray.exists() or not stray.read_text().strip():
            await asyncio.sleep(0.01)
        # A hang detector, not a timing target: the wait below is bounded by 60 s, which
        # the code before (it waited for the pipes) used up in full.
        async with asyncio.timeout(30):
            await end(proc, group=True, timeout=60)
        assert proc.returncode == -9
        assert await proc.wait() == -9, "the pipes were closed, so wait() answers too"
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(stray.read_text()), signal.SIGKILL)
