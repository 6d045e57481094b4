"""A log source that is a long-running command (``journalctl -f``, ``docker logs -f``).

Such commands die: the container restarts, journald rotates, the binary is missing on this
host. The source keeps the service watched by restarting the command with exponential
backoff and says why each run ended, so an operator sees a broken source instead of a
silently quiet one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Callable, Sequence
from typing import Any

_READ_SIZE = 64 * 1024
_STDERR_SHOWN = 200


class CommandSource:
    """Runs ``argv`` forever, delivering its stdout and stderr as they come.

    Both streams reach ``on_data``; each is cut at line ends so that a line from one never
    lands inside a line from the other (a line longer than ``max_line_bytes`` is passed on
    in pieces). The command runs in its own process group with stdin on /dev/null, so
    ``stop()`` takes down everything it started and nothing waits on a terminal.
    """

    def __init__(
        self,
        service: str,
        argv: Sequence[str],
        *,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 30.0,
        kill_grace: float = 2.0,
        max_line_bytes: int = 64 * 1024,
        on_problem: Callable[[str], None] | None = None,
        stderr_is_data: bool = True,
        argv_for_run: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        if not argv:
            raise ValueError(f"command for {service} is empty")
        if min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError(
                f"backoff must satisfy 0 < min_backoff <= max_backoff, "
                f"got {min_backoff} and {max_backoff}"
            )
        self.service = service
        self.argv = tuple(argv)
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.kill_grace = kill_grace
        self.max_line_bytes = max_line_bytes
        # A command whose stdout is a format of its own (journalctl -o json) keeps its
        # stderr out of the data; the last stderr line still explains an exit.
        self.stderr_is_data = stderr_is_data
        # Called before each start: a command that resumes (--after-cursor) changes argv.
        self._argv_for_run = argv_for_run
        self.starts = 0
        self.pid: int | None = None
        self._problems: list[str] = []
        self._on_problem = on_problem
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._last_stderr = ""

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def last_stderr(self) -> str:
        """The last non-empty stderr line of the current or last run ("" if none)."""
        return self._last_stderr

    def problems(self) -> list[str]:
        """Why runs ended or failed to start, since the last call (unless ``on_problem``
        was given: then each one went there as it happened, since a command that cannot
        start never produces the data during which a caller would ask)."""
        out, self._problems = self._problems, []
        return out

    def stop(self) -> None:
        """Kill the command's process group and make ``run`` return. Call it from the
        event loop's thread."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        if self.pid is not None:
            _signal_group(self.pid, signal.SIGTERM)

    async def run(self, on_data: Callable[[bytes], None]) -> None:
        """Keep the command running until ``stop()``; returns once it is gone.

        An exception raised by ``on_data`` ends the run (after killing the command), since
        it is a fault of the caller rather than of the command.
        """
        self._stop_event = asyncio.Event()
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        delay = self.min_backoff
        while not self._stopping:
            started = loop.time()
            outcome = await self._run_once(on_data)
            if self._stopping:
                break
            if loop.time() - started >= self.stable_after:
                delay = self.min_backoff
            self._report(f"{outcome}; restarting in {delay:g}s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop_event.wait()
            delay = min(delay * 2, self.max_backoff)

    async def _run_once(self, on_data: Callable[[bytes], None]) -> str:
        """One run of the command; returns what ended it, in words."""
        if self._argv_for_run is not None:
            self.argv = tuple(self._argv_for_run())
        self._last_stderr = ""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            return f"cannot start `{self.command}` for {self.service}: {self.argv[0]} not found"
        except PermissionError:
            return (
                f"cannot start `{self.command}` for {self.service}: "
                f"{self.argv[0]} is not executable (permission denied)"
            )
        except OSError as exc:
            return f"cannot start `{self.command}` for {self.service}: {exc.strerror or exc}"
        self.starts += 1
        self.pid = proc.pid
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            asyncio.create_task(self._pump(proc.stdout, on_data, is_stderr=False)),
            asyncio.create_task(self._pump(proc.stderr, on_data, is_stderr=True)),
        ]
        try:
            await self._wait_exit(proc, readers)
            # Whatever the command left behind would keep the pipes open; it goes too.
            _signal_group(proc.pid, signal.SIGKILL)
            await asyncio.gather(*readers)
        finally:
            _signal_group(proc.pid, signal.SIGKILL)
            for task in readers:
                task.cancel()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
            self.pid = None
        return self._describe_exit(proc.returncode)

    async def _wait_exit(
        self, proc: asyncio.subprocess.Process, readers: list[asyncio.Task[None]]
    ) -> None:
        """Wait for the command to end, re-raising a failure of ``on_data`` at once and
        escalating to SIGKILL when it ignores the SIGTERM of ``stop()``."""
        assert self._stop_event is not None
        exited = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(self._stop_event.wait())
        try:
            watch: set[asyncio.Future[Any]] = {exited, stopping, *readers}
            while not exited.done():
                done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
                for task in readers:
                    if task in done:
                        watch.discard(task)
                        failure = task.exception()
                        if failure is not None:
                            raise failure
                if stopping in done:
                    watch.discard(stopping)
                    _signal_group(proc.pid, signal.SIGTERM)
                    try:
                        async with asyncio.timeout(self.kill_grace):
                            await asyncio.shield(exited)
                    except TimeoutError:
                        _signal_group(proc.pid, signal.SIGKILL)
                        await exited
        finally:
            stopping.cancel()
            if not exited.done():
                exited.cancel()

    async def _pump(
        self, stream: asyncio.StreamReader, on_data: Callable[[bytes], None], *, is_stderr: bool
    ) -> None:
        pending = b""
        while True:
            data = await stream.read(_READ_SIZE)
            if not data:
                break
            pending += data
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) >= self.max_line_bytes:
                cut = len(pending)
            if cut:
                ready, pending = pending[:cut], pending[cut:]
                if is_stderr:
                    self._note_stderr(ready)
                if self.stderr_is_data or not is_stderr:
                    on_data(ready)
        if pending:
            if is_stderr:
                self._note_stderr(pending)
            if self.stderr_is_data or not is_stderr:
                on_data(pending if pending.endswith(b"\n") else pending + b"\n")

    def _report(self, problem: str) -> None:
        if self._on_problem is not None:
            self._on_problem(problem)
        else:
            self._problems.append(problem)

    def _note_stderr(self, data: bytes) -> None:
        for line in reversed(data.splitlines()):
            text = line.decode("utf-8", "replace").strip()
            if text:
                self._last_stderr = text[:_STDERR_SHOWN]
                return

    def _describe_exit(self, code: int | None) -> str:
        if code is None:
            how = "ended"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        last = f"last stderr line: {self._last_stderr!r}" if self._last_stderr else "no stderr"
        return f"`{self.command}` for {self.service} {how} ({last})"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
