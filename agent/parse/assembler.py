"""Bytes in, :class:`ErrorRecord` out, with exact knowledge of which bytes are done.

The assembler splits the stream into lines, lets the prefilter pass over the bulk that
cannot start a record, removes each line's prefixes and hands it to the recognizer that
owns the open record's state, or asks every recognizer whether it starts one.
"""

from __future__ import annotations

from agent.lines import DEFAULT_MAX_LINE_BYTES, Line, LineSplitter
from agent.parse.formats import RECOGNIZERS, Recognizer, Verdict
from agent.parse.pending import Pending
from agent.parse.prefilter import CandidateFinder
from agent.parse.prefixes import Stamp, split_prefix
from agent.record import ErrorRecord


def _owners() -> dict[str, Recognizer]:
    owners: dict[str, Recognizer] = {}
    for recognizer in RECOGNIZERS:
        for state in recognizer.states:
            assert state not in owners, f"two recognizers own state {state!r}"
            owners[state] = recognizer
    return owners


_OWNERS = _owners()
_PROVISIONAL = frozenset(state for r in RECOGNIZERS for state in r.provisional)


class Assembler:
    """Turns a byte stream into error records, tracking exactly which bytes are done.

    Feed consecutive chunks with their file offsets. A record that may still continue
    (a stack trace whose next line has not arrived) is held until a line that does not
    belong to it arrives, or until :meth:`flush`. :attr:`safe_offset` is where a reader
    that persisted every record returned so far must resume after a crash.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._splitter = LineSplitter(max_line_bytes)
        self._finder = CandidateFinder()
        self._pending: Pending | None = None

    @property
    def splitter(self) -> LineSplitter:
        """The line splitter, for its ``cut_lines`` / ``invalid_utf8_lines`` counters."""
        return self._splitter

    @property
    def pending(self) -> bool:
        """True while a multi-line record is being assembled."""
        return self._pending is not None

    @property
    def pending_has_frames(self) -> bool:
        """Whether the record being assembled already has stack frames.

        A header with no frame yet is the likeliest to be continued by a later write, so
        the daemon waits longer before finishing it.
        """
        return self._pending is not None and bool(self._pending.frames)

    @property
    def safe_offset(self) -> int:
        """Every byte before this offset is fully reflected in records already returned."""
        if self._pending is not None:
            return self._pending.lines[0].start
        return self._splitter.pending_start

    def feed(self, data: bytes, offset: int) -> list[ErrorRecord]:
        """Add a chunk (``offset`` = file offset of its first byte); return finished records."""
        self._splitter.push(data, offset)
        out: list[ErrorRecord] = []
        splitter = self._splitter
        while True:
            if self._pending is None and not splitter.skip_until(self._finder):
                break
            line = splitter.next_line()
            if line is None:
                break
            self._line(line, out)
        return out

    def flush(self, eof: bool = False) -> list[ErrorRecord]:
        """Finish the record being assembled: the stream went quiet, or ended.

        With ``eof`` the partial last line (no newline yet) is taken as complete too,
        for a file that was rotated away or a pipe that closed.
        """
        out: list[ErrorRecord] = []
        if eof:
            for line in self._splitter.flush():
                self._line(line, out)
        while self._pending is not None:
            self._finish(self._pending, out)
        return out

    def _finish(self, pending: Pending, out: list[ErrorRecord]) -> None:
        """Close ``pending``: emit it, or replay its lines when it turned out to be nothing."""
        self._pending = None
        if pending.state in _PROVISIONAL:
            for line in pending.lines[1:]:
                self._line(line, out)
            return
        out.append(pending.record())

    def _line(self, line: Line, out: list[ErrorRecord]) -> None:
        body, stamp = split_prefix(line.text)
        while self._pending is not None:
            pending = self._pending
            owner = _OWNERS.get(pending.state)
            if owner is not None and owner.take(pending, line, body, stamp):
                return
            self._finish(pending, out)
        self._start(line, body, stamp, out)

    def _start(self, line: Line, body: str, stamp: Stamp, out: list[ErrorRecord]) -> None:
        for recognizer in RECOGNIZERS:
            started = recognizer.start(line, body, stamp)
            if started is None:
                continue
            if isinstance(started, Pending):
                self._pending = started
            elif isinstance(started, ErrorRecord):
                out.append(started)
            else:
                assert started is Verdict.IGNORED
            return
