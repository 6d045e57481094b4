"""Child processes that a cancellation never leaves half-born or unreaped.

asyncio starts a child in two steps: the fork/exec, then connecting its pipes. A task
cancelled between the two (the console stopping while a git call starts) makes asyncio
close the transport, and that close polls the child; if the child has already exited,
the poll reaps it before asyncio's child watcher does, and the watcher then logs
"Unknown child process pid N, will report returncode 255" on the user's terminal. The
same watcher logs "Loop ... that handles pid ... is closed" when a child killed on
cancellation is left to die after the loop has gone. :func:`spawn` lets the birth finish
and :func:`end` waits for the death, so neither happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any


async def spawn(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec(*argv, **kwargs)``, shielded from cancellation.

    A cancellation that arrives while the child is being born waits for the birth, ends
    the child (:func:`end`) and is then raised: the caller never sees the child, so
    nothing else would stop it.
    """
    birth = asyncio.ensure_future(asyncio.create_subprocess_exec(*argv, **kwargs))
    try:
        return await asyncio.shield(birth)
    except asyncio.CancelledError:
        while not birth.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({birth})
        if not birth.cancelled() and birth.exception() is None:
            await end(birth.result(), group=bool(kwargs.get("start_new_session")))
        raise


async def end(proc: asyncio.subprocess.Process, *, group: bool, timeout: float = 5.0) -> None:
    """SIGKILL ``proc`` (its whole process group when it leads one) and wait until asyncio
    has reaped it; a second cancellation does not cut the wait short, it is raised after.

    The wait is bounded: asyncio's own pipes also wait for any other holder of them, and a
    stray grandchild outside the group must not hang the console's stop.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    waited = asyncio.ensure_future(proc.wait())
    cancelled = False
    while not waited.done() and (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait({waited}, timeout=left)
        except asyncio.CancelledError:
            cancelled = True
    if not waited.done():
        waited.cancel()
    if cancelled:
        raise asyncio.CancelledError
