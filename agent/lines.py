"""Bytes read from a log file -> text lines that remember where in the file they came from.

A durable reader must know exactly which bytes it has turned into lines, so every line
carries its byte offsets and a partial last line is held back until its newline arrives.
Production logs are hostile input: a runaway line can be megabytes long, binary garbage
and broken UTF-8 happen, and colour escapes leak in from terminals. None of that may stop
the reader or lose the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_LINE_BYTES = 64 * 1024

# CSI colour/cursor sequences and two-byte escapes, as terminals and chalk/colors emit them.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
# Control characters other than tab (C0, DEL and C1); \r of \r\n goes with them.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

# Finds the index of a candidate byte in ``buf`` at or after ``pos`` (``pos`` is always
# the start of a line), or -1. See :meth:`LineSplitter.skip_until`.
Finder = Callable[[bytes, int], int]


@dataclass(frozen=True)
class Line:
    """One line of text and the byte range ``[start, end)`` it occupied in its source.

    ``end`` is just after the newline, so ``end`` of one line is ``start`` of the next.
    """

    text: str
    start: int
    end: int


def cut_marker(total_bytes: int) -> str:
    """The visible note appended to a cut line, so nobody mistakes it for the whole line."""
    return f" …[line cut: {total_bytes} bytes]"


class LineSplitter:
    """Split a byte stream into :class:`Line` objects, bounded in memory per line.

    Feed consecutive chunks with the file offset of their first byte. Lines longer than
    ``max_line_bytes`` keep their first ``max_line_bytes`` bytes plus a marker; the rest
    is counted and discarded as it arrives, so a 10 MB line costs at most
    ``max_line_bytes`` of memory.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 16:
            raise ValueError(f"max_line_bytes must be at least 16, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self.cut_lines = 0
        self.invalid_utf8_lines = 0
        self._buf = b""
        self._pos = 0  # index in _buf of the first byte not yet returned or skipped
        self._base = 0  # file offset of _buf[0]
        self._started = False
        # An overlong line being discarded: its first bytes, start offset, length so far.
        self._cut_head: bytes | None = None
        self._cut_start = 0
        self._cut_len = 0
        # A completed overlong line waiting to be returned (or skipped).
        self._ready: Line | None = None
        self._ready_head = b""

    @property
    def pending_start(self) -> int:
        """Offset of the first byte not yet returned as a line: what a reader may commit."""
        if self._ready is not None:
            return self._ready.start
        if self._cut_head is not None:
            return self._cut_start
        return self._base + self._pos

    @property
    def end_offset(self) -> int:
        """Offset just after the last byte fed; the next feed must start here."""
        return self._base + len(self._buf)

    def feed(self, data: bytes, offset: int) -> list[Line]:
        """Add a chunk and return every line it completes, in order."""
        self.push(data, offset)
        lines: list[Line] = []
        while (line := self.next_line()) is not None:
            lines.append(line)
        return lines

    def push(self, data: bytes, offset: int) -> None:
        """Add a chunk without splitting it yet (see :meth:`next_line`, :meth:`skip_until`).

        A chunk that does not continue where the last one ended is a caller bug that would
        silently corrupt offsets, so it raises instead.
        """
        if self._started and offset != self.end_offset:
            raise ValueError(
                f"chunk starts at offset {offset} but the previous one ended at "
                f"{self.end_offset}; flush() before jumping to another position"
            )
        if not self._started:
            self._started = True
            self._base = offset
        if self._pos:
            self._base += self._pos
            self._buf = self._buf[self._pos :]
            self._pos = 0
        if self._cut_head is not None:
            data = self._continue_cut(data)
            if self._cut_head is not None:
                return
        self._buf = self._buf + data if self._buf else bytes(data)

    def _continue_cut(self, data: bytes) -> bytes:
        """Discard the rest of an overlong line; return what follows its newline."""
        newline = data.find(b"\n")
        if newline == -1:
            self._cut_len += len(data)
            self._base += len(data)
            return b""
        self._cut_len += newline
        self._finish_cut(self._cut_start + self._cut_len + 1)
        self._base += newline + 1
        return data[newline + 1 :]

    def _finish_cut(self, end: int) -> None:
        assert self._cut_head is not None
        text = self._decode(self._cut_head) + cut_marker(self._cut_len)
        self._ready = Line(text, self._cut_start, end)
        self._ready_head = self._cut_head
        self._cut_head = None
        self.cut_lines += 1

    def next_line(self) -> Line | None:
        """The next complete line, or None until more data (or :meth:`flush`) completes one."""
        if self._ready is not None:
            line, self._ready = self._ready, None
            return line
        if self._cut_head is not None:
            return None
        buf, pos = self._buf, self._pos
        newline = buf.find(b"\n", pos)
        if newline == -1:
            self._maybe_start_cut()
            return None
        start = self._base + pos
        self._pos = newline + 1
        if newline - pos > self.max_line_bytes:
            self.cut_lines += 1
            head = buf[pos : pos + self.max_line_bytes]
            return Line(
                self._decode(head) + cut_marker(newline - pos), start, start + newline - pos + 1
            )
        return Line(self._decode(buf[pos:newline]), start, self._base + newline + 1)

    def _maybe_start_cut(self) -> None:
        """Stop buffering a partial line once it is longer than any line we keep."""
        held = len(self._buf) - self._pos
        if held <= self.max_line_bytes:
            return
        self._cut_head = self._buf[self._pos : self._pos + self.max_line_bytes]
        self._cut_start = self._base + self._pos
        self._cut_len = held
        self._base += len(self._buf)
        self._buf = b""
        self._pos = 0

    def skip_until(self, finder: Finder) -> bool:
        """Pass over complete lines without decoding them until one holds a candidate.

        Returns True when the next line to read holds the candidate ``finder`` reported
        (it may still be incomplete), False when everything complete was skipped. This is
        what keeps the uninteresting bulk of a log out of per-line Python code.
        """
        while True:
            if self._ready is not None:
                if finder(self._ready_head, 0) != -1:
                    return True
                self._ready = None
                continue
            if self._cut_head is not None:
                return False
            buf, pos = self._buf, self._pos
            hit = finder(buf, pos)
            if hit == -1:
                # The last complete line is kept: the next write may bring the frame that
                # makes it the header of a record, as it would in one write.
                last = buf.rfind(b"\n", pos)
                if last != -1:
                    self._pos = buf.rfind(b"\n", pos, last) + 1 or pos
                # An overlong partial line is judged by its head once it is complete.
                self._maybe_start_cut()
                return False
            self._pos = buf.rfind(b"\n", pos, hit) + 1 or pos
            return True

    def flush(self) -> list[Line]:
        """Return the held partial line as a line of its own (end of a stream or file)."""
        lines: list[Line] = []
        if self._ready is not None:
            lines.append(self._ready)
            self._ready = None
        if self._cut_head is not None:
            self._finish_cut(self._cut_start + self._cut_len)
            assert self._ready is not None
            lines.append(self._ready)
            self._ready = None
        while (line := self.next_line()) is not None:
            lines.append(line)
        if self._pos < len(self._buf):
            start = self._base + self._pos
            rest = self._buf[self._pos :]
            if len(rest) > self.max_line_bytes:
                self.cut_lines += 1
                text = self._decode(rest[: self.max_line_bytes]) + cut_marker(len(rest))
            else:
                text = self._decode(rest)
            lines.append(Line(text, start, start + len(rest)))
            self._pos = len(self._buf)
        return lines

    def _decode(self, raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.invalid_utf8_lines += 1
            text = raw.decode("utf-8", "replace")
        return printable(text)


def printable(text: str) -> str:
    """``text`` without colour escapes and control characters (tabs stay)."""
    if text.isprintable():
        return text
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return _CONTROL.sub("", text)
