"""Child processes that a cancellation never leaves half-born or unreaped.

asyncio starts a child in two steps: the fork/exec, then connecting its pipes. A task
cancelled between the two (the console stopping while a git call starts) makes asyncio
close the transport, and that close polls the child; if the child has already exited,
the poll reaps it before asyncio's child watcher does, and the watcher then logs
"Unknown child process pid N, will report returncode 255" on the user's terminal. The
same watcher logs "Loop ... that handles pid ... is closed" when a child killed on
cancellation is left to die after the loop has gone. :func:`spawn` lets the birth finish
and :func:`end` waits for the death, so neither happens; :func:`release` closes a dead
child's pipes while the loop still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

# How often :func:`exited` looks at the exit status: short beside a stop's grace period.
_EXIT_POLL_SECONDS = 0.02


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
    """SIGKILL ``proc`` (its whole process group when it leads one), wait until asyncio
    has reaped it and close its pipes (:func:`release`); a second cancellation does not
    cut the wait short, it is raised after. The wait is bounded, for a child that is not
    ours to kill (PermissionError) or a watcher that never reports it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
    waiting = asyncio.ensure_future(exited(proc, timeout))
    cancelled = False
    while not waiting.done():
        try:
            await asyncio.wait({waiting})
        except asyncio.CancelledError:
            cancelled = True
    release(proc)
    if cancelled:
        raise asyncio.CancelledError


async def exited(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the child's death; True once asyncio reaped it.

    Not ``proc.wait()``: on Python 3.11 that also waits until every pipe of the child has
    closed, which a grandchild holding one (a server the child started in a session of
    its own) puts off for as long as it lives. The exit status is set the moment the
    child watcher reaps the child, so a short poll of it is enough on a stop path.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.returncode is None and (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(_EXIT_POLL_SECONDS, left))
    return proc.returncode is not None


def release(proc: asyncio.subprocess.Process) -> None:
    """Close asyncio's transport of a child that has been reaped.

    asyncio closes it by itself only once every pipe has seen its end, which for a pipe
    nobody reads any more (a link stopped mid-stream) comes some loop steps after the
    death; a console quitting at once closes its loop first, and the transport, collected
    later, then fails on the closed loop ("Event loop is closed"). Closing it here ends
    the pipes while the loop still runs. A child still running is left alone.
    """
    transport = getattr(proc, "_transport", None)  # asyncio keeps it private
    if proc.returncode is not None and transport is not None:
        transport.close()
