"""Directory change notices from the kernel: a change wakes the waiter, silence costs nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.inotify import DirWatch, Unavailable


def test_an_append_to_a_file_in_a_watched_directory_wakes_the_waiter(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("start\n")
    with DirWatch([tmp_path]) as watch:
        assert watch.wait(0.05) is False  # nothing happened yet
        with log.open("a") as f:
            f.write("TypeError: boom\n")
        started = time.monotonic()
        assert watch.wait(5.0) is True
        assert time.monotonic() - started < 5.0
        assert watch.wait(0.05) is False  # the notices were all read


def test_a_directory_that_cannot_be_watched_is_named_in_the_refusal(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    with pytest.raises(Unavailable, match="not-there"):
        DirWatch([missing])
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    with pytest.raises(Unavailable, match=r"plain\.txt"):
        DirWatch([a_file])


async def test_changes_yields_for_a_new_file_and_ends_when_asked_to_stop(tmp_path: Path) -> None:
    stop = asyncio.Event()
    seen: list[float] = []

    async def follow() -> None:
        with DirWatch([tmp_path]) as watch:
            async for _ in watch.changes(stop):
                seen.append(time.monotonic())

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    (tmp_path / "rotated.log.1").write_text("moved\n")
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert seen, "no change notice for a new file"
    stop.set()
    await asyncio.wait_for(task, 5)
