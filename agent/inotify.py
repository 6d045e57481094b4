"""Directory change notices from Linux inotify, waited for in the kernel.

watchfiles' watcher thread wakes every ``step`` milliseconds whether or not anything changed,
so its latency is paid for in idle CPU: a 4 ms step costs a quiet agent close to 1% of a
core. An inotify file descriptor costs nothing while nothing happens and is readable the
moment a file in a watched directory changes, so where the kernel offers it (Linux, through
the C library via ctypes: the agent depends on the standard library and watchfiles only),
the daemon and ``stream`` wait on it instead. Elsewhere, or when the kernel refuses (out of
watches, an unreadable directory), :class:`Unavailable` is raised and callers use watchfiles.

Only the fact *that* something changed is reported: the callers look at their files again
anyway, which is the one correct answer to an overflowing event queue too.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import select
from collections.abc import AsyncIterator, Iterable
from functools import cache

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
READ_SIZE = 64 * 1024


class Unavailable(OSError):
    """inotify cannot watch these directories here; the message says why."""


@cache
def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    if name is None:
        raise Unavailable("no C library to ask for inotify")
    libc = ctypes.CDLL(name, use_errno=True)
    if not hasattr(libc, "inotify_init1"):
        raise Unavailable("this system has no inotify")
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


class DirWatch:
    """Becomes readable when anything in one of ``dirs`` (not their subdirectories)
    changes, or when a watched directory itself is removed or moved."""

    def __init__(self, dirs: Iterable[str | os.PathLike[str]]) -> None:
        libc = _libc()
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            errno = ctypes.get_errno()
            raise Unavailable(errno, f"inotify_init1: {os.strerror(errno)}")
        self._fd = fd
        for directory in dirs:
            if libc.inotify_add_watch(fd, os.fsencode(directory), MASK | IN_ONLYDIR) < 0:
                errno = ctypes.get_errno()
                self.close()
                raise Unavailable(errno, f"inotify cannot watch {directory}: {os.strerror(errno)}")

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> bool:
        """Read every pending notice; True if there was any."""
        seen = False
        while True:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return seen
            if not data:
                return seen
            seen = True

    def wait(self, seconds: float) -> bool:
        """Block until something changes or ``seconds`` pass; True if something changed."""
        readable, _, _ = select.select([self._fd], [], [], max(0.0, seconds))
        return bool(readable) and self.drain()

    async def changes(self, stop: asyncio.Event) -> AsyncIterator[None]:
        """Yield once per burst of changes until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(self._fd, ready.set)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                readable = asyncio.ensure_future(ready.wait())
                await asyncio.wait({readable, stopping}, return_when=asyncio.FIRST_COMPLETED)
                readable.cancel()
                if stop.is_set():
                    return
                ready.clear()
                if self.drain():
                    yield
        finally:
            stopping.cancel()
            loop.remove_reader(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
