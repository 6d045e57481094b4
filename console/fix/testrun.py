"""Running a service's own test command inside a fix attempt's worktree.

The command is the service's shell line (``npm test`` by default), so it runs through
``/bin/sh -c`` in its own process group with stdin closed and exactly the environment the
caller gives (never the console's own). On Claude's edits it runs in a :class:`Cage`
(no network, read-only outside the worktree, its own PID namespace). Test suites start servers,
watchers and workers; when the run ends (normally, by timeout, or because the caller was
cancelled) everything left in that group is terminated, first politely, then with SIGKILL.
Uncaged, processes that deliberately detach into a new session escape any process-group
based cleanup; caged, they die with the cage's PID namespace.

Output is merged (stdout and stderr in the order written) and only a bounded tail is kept,
so a suite that prints gigabytes cannot exhaust the console's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from console.children import spawn
from console.fix.sandbox.cage import Cage, check_cage

TAIL_LINES = 200
TAIL_BYTES = 16 * 1024
# Raw bytes kept while reading: more than the tail needs, so escape sequences and the
# carriage-return rewriting that precede the last lines are still intact when cleaned.
_BUFFER_BYTES = 4 * TAIL_BYTES
_READ_CHUNK = 64 * 1024
_AFTER_EXIT_DRAIN_S = 2.0

_ANSI = re.compile(
    r"""
    \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)     # OSC ... BEL/ST (titles, hyperlinks)
    | \x1b\[[0-?]*[ -/]*[@-~]             # CSI (colours, cursor movement)
    | \x1b[PX^_][^\x1b]*\x1b\\            # DCS/SOS/PM/APC strings
    | \x1b[@-Z\\-_]                       # other two-byte escapes
    | \x9b[0-?]*[ -/]*[@-~]               # 8-bit CSI
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TestRunError(RuntimeError):
    """The test command could not be started at all (as opposed to failing)."""

    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class TestResult:
    """Outcome of one test run.

    ``exit_code`` is ``None`` when the run timed out; a negative value means the shell was
    killed by that signal number. ``output_tail`` holds at most the last 200 lines and
    16 KB of merged output with terminal escapes removed.
    """

    __test__ = False

    exit_code: int | None
    passed: bool
    timed_out: bool
    duration_s: float
    output_tail: str


def clean_output(raw: bytes) -> str:
    """Terminal output as a person would have seen it: escapes removed, progress lines
    rewritten by carriage returns reduced to their final state."""
    text = raw.decode("utf-8", "replace")
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    return _CONTROL.sub("", "\n".join(lines))


def _tail(text: str) -> str:
    lines = text.splitlines()[-TAIL_LINES:]
    out = "\n".join(lines)
    encoded = out.encode("utf-8")
    if len(encoded) > TAIL_BYTES:
        out = encoded[-TAIL_BYTES:].decode("utf-8", "ignore")
        # Drop the partial first line left by cutting in the middle of it.
        out = out.split("\n", 1)[1] if "\n" in out else out
    return out


async def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs; exited processes waiting to be reaped
    by init (which can take a while in containers) do not count."""
    proc_root = Path("/proc")
    if proc_root.is_dir():
        for entry in os.scandir(proc_root):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ")".
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _terminate_group(pgid: int, proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the whole group, SIGKILL whatever is still there after ``grace`` seconds."""
    if not await _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await proc.wait()
        else:
            await asyncio.sleep(0.05)
        if not await _group_alive(pgid):
            return
    await _signal_group(pgid, signal.SIGKILL)


async def run_tests(
    command: str,
    cwd: Path,
    timeout: float,
    *,
    env: Mapping[str, str],
    cage: Cage | None = None,
    kill_grace: float = 5.0,
) -> TestResult:
    """Run the service's tests and report pass/fail with the end of their output.

    ``env`` is the run's whole environment. With ``cage`` the command runs inside it, and a
    bubblewrap that cannot build the sandbox raises
    :class:`~console.fix.sandbox.cage.CageUnavailable` before anything runs. A run that outlives
    ``timeout`` seconds is stopped (the whole process group) and reported as timed out;
    cancelling the awaiting task stops it the same way before the cancellation propagates.
    """
    cwd = Path(cwd)
    if not command.strip():
        raise TestRunError("test command is empty")
    if not cwd.is_dir():
        raise TestRunError(f"cannot run tests: directory {cwd} does not exist")
    argv = ["/bin/sh", "-c", command]
    if cage is not None:
        await check_cage(cage)
        argv = cage.argv(argv)
    started = time.monotonic()
    # Our own pipe rather than asyncio's: Process.wait() on an asyncio pipe also waits for
    # every holder of the pipe (a stray server) to exit, and the pipe must be closable.
    read_fd, write_fd = os.pipe()
    try:
        proc = await spawn(
            *argv,
            cwd=str(cwd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_fd)
        raise TestRunError(f"cannot start {argv[0]} for {command!r}: {exc}") from exc
    finally:
        os.close(write_fd)
    pgid = proc.pid  # start_new_session makes the shell (or bwrap) the group leader
    stream = asyncio.StreamReader(limit=2 * _READ_CHUNK)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(read_fd, "rb", buffering=0)
    )
    buffer = bytearray()
    trimmed = False
    timed_out = False

    async def read_all() -> None:
        nonlocal trimmed
        while chunk := await stream.read(_READ_CHUNK):
            buffer.extend(chunk)
            if len(buffer) > _BUFFER_BYTES:
                del buffer[: len(buffer) - _BUFFER_BYTES]
                trimmed = True

    reader = asyncio.create_task(read_all())
    try:
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
        # Whatever is still in the group (the whole suite on timeout, stray servers
        # otherwise) is an orphan of this run.
        await _terminate_group(pgid, proc, kill_grace)
        await proc.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_AFTER_EXIT_DRAIN_S):
                await asyncio.shield(reader)
    except asyncio.CancelledError:
        await asyncio.shield(_terminate_group(pgid, proc, min(kill_grace, 1.0)))
        raise
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        transport.close()
    duration = time.monotonic() - started
    exit_code = None if timed_out else proc.returncode
    raw = bytes(buffer)
    if trimmed:  # the first kept line was cut somewhere in the middle
        raw = raw.split(b"\n", 1)[-1]
    tail = _tail(clean_output(raw))
    if timed_out:
        tail = f"{tail}\n[stopped after {timeout:g}s: test run timed out]".lstrip("\n")
    return TestResult(
        exit_code=exit_code,
        passed=exit_code == 0,
        timed_out=timed_out,
        duration_s=duration,
        output_tail=tail,
    )
