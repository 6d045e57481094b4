"""One console per state directory: a second console, ``serve`` or demo on the same store
says which process holds it instead of running beside it (both would read the same
streams, show the same error twice and race on the same worktrees).

The lock is an ``fcntl`` lock on ``console.lock`` in the state directory, so the kernel
drops it when its process dies, however it dies: a stale file never blocks a new start.
The file names the holder's pid and command line for the message the next one prints.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from pathlib import Path

LOCK_NAME = "console.lock"


class StateBusy(RuntimeError):
    """Another process holds the state directory; the message names it."""


def this_command() -> str:
    """How the person started this process, as they would type it again."""
    return shlex.join(["autofix", *sys.argv[1:]])


def _holder(path: Path) -> str:
    try:
        pid, _, command = path.read_text(encoding="utf-8", errors="replace").partition("\n")
    except OSError:
        return "another process"
    pid, command = pid.strip(), command.strip()
    if not pid.isdigit():
        return "another process"
    return f"process {pid} ({command})" if command else f"process {pid}"


class HeldLock:
    """The lock of one state directory, held until :meth:`release` or the ``with`` ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold(state_dir: Path, command: str | None = None) -> HeldLock:
    """Take the state directory's lock now, or raise :class:`StateBusy` naming the pid and
    command of the process that has it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateBusy(
            f"{state_dir} is in use by {_holder(path)}; quit that one first, or give "
            "this one another state_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n{command or this_command()}\n".encode())
    return HeldLock(path, fd)
