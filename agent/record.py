"""What the parser hands to the rest of the agent: one error occurrence, already redacted."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Frame:
    """One stack frame, reduced to what identifies code rather than a deployment.

    ``path`` is as printed in the log; ``in_app`` is false for node_modules, node:internal,
    the runtime's own library and similar frames.
    """

    function: str
    path: str
    line: int | None = None
    column: int | None = None
    in_app: bool = True


@dataclass(frozen=True)
class ErrorRecord:
    """One occurrence of an error as assembled from one or more log lines.

    ``stack`` holds the stack lines as they appeared (redacted); ``frames`` the parsed
    frames from them. ``timestamp`` is an ISO 8601 UTC string taken from the log line when
    it carries one, otherwise ``None`` (the caller then uses the time it read the line).
    """

    error_type: str
    message: str
    stack: list[str] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    route: str | None = None
    timestamp: str | None = None
    raw: str = ""


def in_app_flags(stack: list[str], frames: list[Frame]) -> list[bool | None]:
    """For each stack line: the ``in_app`` of the frame it shows, or None when it shows none.

    The parser keeps frames, not which line each came from, so a line is matched to a frame
    by showing the frame's path and line number. The walk runs from the end: a chained
    Python traceback keeps the frames of its last exception only, and a long stack keeps
    its first frames, and from the end both still line up with their lines.
    """
    flags: list[bool | None] = [None] * len(stack)
    j = len(frames) - 1
    for i in range(len(stack) - 1, -1, -1):
        if j < 0:
            break
        frame = frames[j]
        line = stack[i]
        if frame.path and frame.path in line and (frame.line is None or str(frame.line) in line):
            flags[i] = frame.in_app
            j -= 1
    return flags
