"""The parser behind a guard: no input can make it raise, and what it returns is safe.

The parser reads outside input, so a line it was never tested on can make it raise. Before
this guard, one such line cost the whole chunk it arrived in, or, worse, stopped the
reading task. :class:`GuardedAssembler` has the parser's interface; it keeps the bytes the
parser has not finished with, and when the parser raises it replays them line by line
into a fresh parser, skipping (and counting) only the lines that still make it raise.
Every record it returns has been through :func:`agent.sanitize.clean_record`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from agent.parse import Assembler
from agent.record import ErrorRecord
from agent.sanitize import as_text, clean_record

# Bytes kept for a replay, beyond the parser's own pending record. A line that never ends
# (random bytes with no newline) must not grow memory: past this, the oldest bytes go, and
# a replay then starts inside that line.
MAX_HELD_BYTES = 16 << 20


@dataclass(frozen=True)
class Skipped:
    """A stretch of input the parser could not read: where, how long, and why."""

    offset: int
    length: int
    reason: str


class GuardedAssembler:
    """:class:`agent.parse.Assembler` that never raises and returns only safe records.

    ``skipped`` counts the lines left out since the start; ``take_skipped`` hands the
    details to whoever reports them.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self._max_line_bytes = max_line_bytes
        self._inner = Assembler(max_line_bytes=max_line_bytes)
        self._held: deque[tuple[int, bytes]] = deque()
        self._held_bytes = 0
        self._cut_before = 0
        self.skipped = 0
        self._skips: list[Skipped] = []

    # -- the parser's interface ---------------------------------------------------------

    @property
    def pending(self) -> bool:
        return self._inner.pending

    @property
    def pending_has_frames(self) -> bool:
        return self._inner.pending_has_frames

    @property
    def safe_offset(self) -> int:
        return self._inner.safe_offset

    @property
    def cut_lines(self) -> int:
        """Over-long lines cut so far, across parser restarts."""
        return self._cut_before + self._inner.splitter.cut_lines

    def feed(self, data: bytes, offset: int) -> list[ErrorRecord]:
        """Like ``Assembler.feed``; a line the parser fails on is skipped, not fatal."""
        start = self._inner.safe_offset
        self._hold(data, offset)
        try:
            records = self._inner.feed(data, offset)
        except Exception as exc:
            records = self._replay(max(start, self._held[0][0]) if self._held else start, exc)
        self._release()
        return self._clean(records)

    def flush(self, eof: bool = False) -> list[ErrorRecord]:
        """Like ``Assembler.flush``; a record that cannot be finished is skipped."""
        start = self._inner.safe_offset
        try:
            records = self._inner.flush(eof)
        except Exception as exc:
            records = self._replay(max(start, self._held[0][0]) if self._held else start, exc)
            try:
                records += self._inner.flush(eof)
            except Exception as again:
                self._skip(self._inner.safe_offset, 0, again)
                self._restart(self._end())
        self._release()
        return self._clean(records)

    def take_skipped(self) -> list[Skipped]:
        """What was skipped since the last call."""
        out, self._skips = self._skips, []
        return out

    # -- keeping and replaying input ------------------------------------------------------

    def _end(self) -> int:
        if not self._held:
            return self._inner.safe_offset
        offset, data = self._held[-1]
        return offset + len(data)

    def _hold(self, data: bytes, offset: int) -> None:
        if not data:
            return
        self._held.append((offset, data))
        self._held_bytes += len(data)
        while self._held_bytes > MAX_HELD_BYTES and len(self._held) > 1:
            _, old = self._held.popleft()
            self._held_bytes -= len(old)

    def _release(self) -> None:
        """Forget the bytes the parser is done with (everything before its safe offset)."""
        safe = self._inner.safe_offset
        while self._held:
            offset, data = self._held[0]
            if offset + len(data) <= safe:
                self._held.popleft()
                self._held_bytes -= len(data)
            elif offset < safe:
                self._held[0] = (safe, data[safe - offset :])
                self._held_bytes -= safe - offset
                break
            else:
                break

    def _restart(self, offset: int) -> None:
        self._cut_before += self._inner.splitter.cut_lines
        self._inner = Assembler(max_line_bytes=self._max_line_bytes)
        self._inner.feed(b"", offset)

    def _skip(self, offset: int, length: int, exc: BaseException) -> None:
        self.skipped += 1
        self._skips.append(Skipped(offset, length, f"{type(exc).__name__}: {as_text(exc)}"))

    def _replay(self, start: int, exc: BaseException) -> list[ErrorRecord]:
        """Feed the held bytes from ``start`` again, one line at a time, into a new parser;
        a line that makes it raise again is skipped and the parser restarted after it."""
        held = b"".join(data for _, data in self._held)
        base = self._held[0][0] if self._held else start
        pos = max(0, start - base)
        self._restart(base + pos)
        out: list[ErrorRecord] = []
        failed = False
        while pos < len(held):
            newline = held.find(b"\n", pos)
            end = len(held) if newline == -1 else newline + 1
            try:
                out += self._inner.feed(held[pos:end], base + pos)
            except Exception as again:
                failed = True
                self._skip(base + pos, end - pos, again)
                self._restart(base + end)
            pos = end
        if not failed:
            # The input only failed in the company it came in; nothing was lost, but the
            # parser has a fault worth knowing about.
            self._skip(start, 0, exc)
        return out

    @staticmethod
    def _clean(records: list[ErrorRecord]) -> list[ErrorRecord]:
        return [clean_record(r) for r in records]
