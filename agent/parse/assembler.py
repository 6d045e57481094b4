"""Bytes in, :class:`ErrorRecord` out, with exact knowledge of which bytes are done.

The assembler splits the stream into lines, lets the prefilter pass over the bulk that
cannot start a record, unwraps envelopes (Docker, CRI, PM2 JSON, journald JSON), removes
each line's prefixes and hands it to the recognizer that owns the open record's state,
or asks every recognizer whether it starts one.
"""

from __future__ import annotations

from agent.lines import DEFAULT_MAX_LINE_BYTES, Line, LineSplitter
from agent.parse.envelopes import Unwrapper
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
        self._unwrapper = Unwrapper()
        self._pending: Pending | None = None
        # Finished records with the offset just after their last byte, not yet returned.
        self._done: list[tuple[int, ErrorRecord]] = []

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
        offset = self._splitter.pending_start
        held = self._unwrapper.held_start
        if held is not None:
            offset = min(offset, held)
        if self._pending is not None:
            offset = min(offset, self._pending.lines[0].start)
        return offset

    def feed(self, data: bytes, offset: int) -> list[ErrorRecord]:
        """Add a chunk (``offset`` = file offset of its first byte); return finished records."""
        self._splitter.push(data, offset)
        splitter = self._splitter
        unwrapper = self._unwrapper
        while True:
            if (
                self._pending is None
                and not unwrapper.holding
                and not splitter.skip_until(self._finder)
            ):
                break
            line = splitter.next_line()
            if line is None:
                break
            for text_line, stamp in unwrapper.unwrap(line):
                self._line(text_line, stamp)
        return self._release(self.safe_offset)

    def flush(self, eof: bool = False) -> list[ErrorRecord]:
        """Finish the record being assembled: the stream went quiet, or ended.

        With ``eof`` the partial last line (no newline yet) is taken as complete too,
        for a file that was rotated away or a pipe that closed.
        """
        if eof:
            for line in self._splitter.flush():
                for text_line, stamp in self._unwrapper.unwrap(line):
                    self._line(text_line, stamp)
            for text_line, stamp in self._unwrapper.flush():
                self._line(text_line, stamp)
        while self._pending is not None:
            self._finish(self._pending)
        return self._release(None)

    def _release(self, safe: int | None) -> list[ErrorRecord]:
        """The finished records that end at or before ``safe`` (all of them for None).

        A record that ends inside an envelope line whose rest opens the next record (a
        PM2 message holding two writes) waits for that one: a reader resuming at the
        envelope's start would read it again and count it twice.
        """
        done = self._done
        if not done:
            return []
        count = len(done)
        if safe is not None:
            count = 0
            while count < len(done) and done[count][0] <= safe:
                count += 1
        released = [record for _, record in done[:count]]
        del done[:count]
        return released

    def _finish(self, pending: Pending) -> None:
        """Close ``pending``: emit it, or replay its lines when it turned out to be nothing."""
        self._pending = None
        if pending.state in _PROVISIONAL:
            for line, stamp in zip(pending.lines[1:], pending.stamps[1:], strict=True):
                self._line(line, stamp)
            return
        self._done.append((pending.lines[-1].end, pending.record()))

    def _line(self, line: Line, carried: Stamp) -> None:
        """One line of the program's own text; ``carried`` is its envelope's time."""
        body, stamp = split_prefix(line.text)
        if stamp is None:
            stamp = carried
        while self._pending is not None:
            pending = self._pending
            owner = _OWNERS.get(pending.state)
            if owner is not None and owner.take(pending, line, body, stamp):
                return
            self._finish(pending)
        self._start(line, body, stamp)

    def _start(self, line: Line, body: str, stamp: Stamp) -> None:
        for recognizer in RECOGNIZERS:
            started = recognizer.start(line, body, stamp)
            if started is None:
                continue
            if isinstance(started, Pending):
                self._pending = started
            elif isinstance(started, ErrorRecord):
                self._done.append((line.end, started))
            else:
                assert started is Verdict.IGNORED
            return
