"""A journald source: ``journalctl --follow --output=json``, resumed after a stored cursor.

Services under systemd often log only to the journal. Following ``journalctl -o cat`` as a
plain command loses the place on every restart; this source reads the JSON form instead,
where every entry carries its ``__CURSOR``, and the daemon stores the cursor of the last
entry whose text is fully counted in the same outbox transaction as the counts (as it
does with file offsets). A restart, or a ``kill -9``, resumes with ``--after-cursor``:
nothing is lost and nothing is counted twice.

Each entry's JSON line goes to the parser as it is: the parser unwraps the journald
envelope (``MESSAGE`` as text or as the byte array journald writes for binary, the entry's
time) like any other, so a stack trace that a service wrote one line per entry is
assembled again. This module only reads the cursor of each entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.command import CommandSource
from agent.config import JournaldConfig

# One ``journalctl -o json`` line: a message journald keeps as binary is written as a
# list of numbers, four times its size. A longer line is skipped, not held without bound.
MAX_ENTRY_BYTES = 8 << 20
_CURSOR_PROBE_SECONDS = 30.0
# The top-level "__CURSOR" key: inside a JSON string its quotes would be escaped, so this
# never matches text a program logged. Cursors hold no quotes or backslashes.
_CURSOR = re.compile(rb'"__CURSOR":"([^"\\]+)"')


@dataclass(frozen=True)
class Entry:
    """One line of ``journalctl -o json``: the bytes for the parser (newline-terminated)
    and the entry's cursor (None for a line that carries none)."""

    data: bytes
    cursor: str | None


def entry_of(line: bytes) -> Entry:
    """The entry in one line of ``journalctl -o json`` output."""
    match = _CURSOR.search(line)
    cursor = match.group(1).decode("ascii", "replace") if match else None
    return Entry(data=line + b"\n", cursor=cursor)


def journalctl_argv(
    config: JournaldConfig, *, cursor: str | None, from_beginning: bool, follow: bool = True
) -> list[str]:
    """The ``journalctl`` command for ``config``, resuming after ``cursor`` when given."""
    argv = [config.journalctl, "--output=json", "--quiet", "--no-pager"]
    if follow:
        argv.append("--follow")
    if cursor:
        argv += [f"--after-cursor={cursor}", "--lines=all"]
    elif follow:
        argv.append("--lines=all" if from_beginning else "--lines=0")
    argv += [f"--file={f}" for f in config.files]
    if config.directory:
        argv.append(f"--directory={config.directory}")
    argv += [f"--unit={u}" for u in config.units]
    argv += [f"--identifier={t}" for t in config.identifiers]
    argv += list(config.matches)
    return argv


class _Lines:
    """Whole lines out of a byte stream; a line past ``limit`` is dropped and counted."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._partial = b""
        self._dropping = False
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if self._dropping and lines:
            lines.pop(0)  # the end of the line being dropped
            self._dropping = False
        if len(self._partial) > self._limit:
            if not self._dropping:
                self.dropped += 1
            self._partial = b""
            self._dropping = True
        return lines


class JournalSource:
    """Follows the journal through ``journalctl``, restarted with back-off when it exits.

    ``cursor`` is the cursor of the last entry handed on: a ``journalctl`` that exits and
    is restarted within one run resumes after it. The daemon sets it from the outbox
    (:meth:`resume`) each time it starts the source afresh.
    """

    def __init__(
        self,
        service: str,
        config: JournaldConfig,
        *,
        from_beginning: bool = False,
        on_problem: Callable[[str], None] | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self.service = service
        self.config = config
        self.from_beginning = from_beginning
        self.cursor: str | None = None
        self._on_problem = on_problem
        self._lines = _Lines(MAX_ENTRY_BYTES)
        self._command = CommandSource(
            service,
            journalctl_argv(config, cursor=None, from_beginning=from_beginning),
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            max_line_bytes=MAX_ENTRY_BYTES,
            on_problem=on_problem,
            stderr_is_data=False,
            argv_for_run=self._argv,
        )

    @property
    def pid(self) -> int | None:
        return self._command.pid

    def _argv(self) -> list[str]:
        if self.cursor and "cursor" in self._command.last_stderr.lower():
            # journalctl refused the cursor (a journal from another machine, or corrupt
            # state): start over as on a first start rather than never again.
            self._report(f"journalctl refused cursor {self.cursor!r}; following without it")
            self.cursor = None
        return journalctl_argv(self.config, cursor=self.cursor, from_beginning=self.from_beginning)

    def _report(self, problem: str) -> None:
        if self._on_problem is not None:
            self._on_problem(problem)

    async def resume(self, cursor: str | None) -> str | None:
        """Start from ``cursor``; on a first start that is not from the beginning, from the
        newest entry there is now, whose cursor is returned to be stored at once (so that
        entries written while the agent is down later are not skipped)."""
        self._lines = _Lines(MAX_ENTRY_BYTES)
        self.cursor = cursor
        if cursor is None and not self.from_beginning:
            self.cursor = await self._newest_cursor()
            # Nothing there yet: whatever arrives from now on is new, so read it all.
            self.from_beginning = self.cursor is None
        return self.cursor

    async def _newest_cursor(self) -> str | None:
        argv = [*journalctl_argv(self.config, cursor=None, from_beginning=False, follow=False)]
        argv.append("--lines=1")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            self._report(f"cannot run {argv[0]}: {exc}")
            return None
        try:
            async with asyncio.timeout(_CURSOR_PROBE_SECONDS):
                out, _ = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return None
        cursors = [e.cursor for e in map(entry_of, out.splitlines()) if e.cursor]
        return cursors[-1] if cursors else None

    def stop(self) -> None:
        self._command.stop()

    async def run(self, on_entries: Callable[[list[Entry]], None]) -> None:
        """Follow until ``stop()``; ``on_entries`` gets the entries of each read, in order."""

        def on_data(data: bytes) -> None:
            dropped = self._lines.dropped
            entries = [entry_of(line) for line in self._lines.feed(data) if line.strip()]
            if self._lines.dropped > dropped:
                self._report(f"skipped a journal entry longer than {MAX_ENTRY_BYTES} bytes")
            if entries:
                on_entries(entries)
                last = next((e.cursor for e in reversed(entries) if e.cursor), None)
                if last is not None:
                    self.cursor = last

        await self._command.run(on_data)


class CursorMarks:
    """Which cursor the parser's safe offset has reached.

    Entries are fed to the parser back to back; each mark is where an entry's bytes end
    and its cursor. The cursor to store is the one of the last entry that ends at or
    before the parser's safe offset: everything up to it is counted.
    """

    def __init__(self) -> None:
        self.end = 0
        self._marks: deque[tuple[int, str]] = deque()

    def fed(self, length: int, cursor: str | None) -> None:
        self.end += length
        if cursor is not None:
            self._marks.append((self.end, cursor))

    def settled(self, safe_offset: int) -> str | None:
        """The newest cursor at or before ``safe_offset`` not returned before, or None."""
        cursor = None
        while self._marks and self._marks[0][0] <= safe_offset:
            cursor = self._marks.popleft()[1]
        return cursor
