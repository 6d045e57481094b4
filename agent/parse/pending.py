"""A record while it is being assembled, and how its lines become an :class:`ErrorRecord`."""

from __future__ import annotations

from agent.lines import Line
from agent.parse.prefixes import Stamp, iso
from agent.record import ErrorRecord, Frame

MAX_RAW_CHARS = 16 * 1024
MAX_STACK_LINES = 300
MAX_FRAMES = 100


class Pending:
    """A record being assembled, with every line (and so every byte) it has taken.

    ``state`` names the continuation state; the recognizer that declared that state
    decides whether the next line belongs here.
    """

    __slots__ = (
        "crash",
        "error_type",
        "frames",
        "lines",
        "message",
        "method",
        "route",
        "stack",
        "stamps",
        "state",
        "timestamp",
    )

    def __init__(self, state: str, line: Line, timestamp: Stamp) -> None:
        self.state = state
        self.lines: list[Line] = [line]
        self.stamps: list[Stamp] = [timestamp]  # each line's own, for reading them again
        self.stack: list[str] = []
        self.frames: list[Frame] = []
        self.error_type = ""
        self.message = ""
        self.route: str | None = None
        self.method: str | None = None  # an HTTP method whose URL is still to come
        self.timestamp = timestamp
        self.crash = False

    def add(self, line: Line, body: str, timestamp: Stamp, stack: bool = True) -> None:
        self.lines.append(line)
        self.stamps.append(timestamp)
        if stack and len(self.stack) < MAX_STACK_LINES:
            self.stack.append(body)
        if self.timestamp is None:
            self.timestamp = timestamp

    def frame(self, frame: Frame | None) -> None:
        if frame is not None and len(self.frames) < MAX_FRAMES:
            self.frames.append(frame)

    def record(self) -> ErrorRecord:
        return ErrorRecord(
            error_type=self.error_type or "Error",
            message=self.message,
            stack=self.stack,
            frames=self.frames,
            route=self.route,
            timestamp=iso(self.timestamp) if self.timestamp else None,
            raw=raw_text(self.lines),
        )


def raw_text(lines: list[Line]) -> str:
    """The record's lines as logged, without trailing blank lines, bounded in length."""
    texts = [line.text for line in lines]
    while texts and not texts[-1].strip():
        texts.pop()
    raw = "\n".join(texts)
    if len(raw) > MAX_RAW_CHARS:
        raw = raw[:MAX_RAW_CHARS] + f" …[record cut: {len(raw)} characters]"
    return raw
