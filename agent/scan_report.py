"""How ``autofix-agent scan`` talks to a person: a table of groups, a summary, progress.

Programs read scan's JSON lines; a person at a terminal gets a table instead, most
severe first, each group with its top in-app frame, and always one summary line on
stderr saying what was read and found (or that nothing was). A large file read at a
terminal shows how far it has got.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# Narrowest table that still shows a useful part of the message.
_MIN_WIDTH = 60
_FIXED = "COUNT  SEVERITY  "
_ROUTE_WIDTH = 28


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


_NOT_APP = ("node_modules", "node:", "<anonymous>")


def _top_frame(stack: Sequence[str]) -> str | None:
    """The first frame line of the stack, one of the app's own code if there is one."""
    frames = [line.strip() for line in stack if line.strip().startswith(("at ", "File "))]
    in_app = [f for f in frames if not any(mark in f for mark in _NOT_APP)]
    chosen = in_app or frames
    return chosen[0] if chosen else None


def table(results: Sequence[dict[str, object]], width: int) -> str:
    """The groups as a table fitting ``width`` columns, most severe and most frequent first."""
    width = max(width, _MIN_WIDTH)
    routes = [str(r["route"] or "-") for r in results]
    route_width = min(_ROUTE_WIDTH, max(len("ROUTE"), *(len(route) for route in routes)))
    error_width = width - len(_FIXED) - route_width - 2
    lines = [f"{_FIXED}{'ERROR':<{error_width}}  ROUTE"]
    ordered = sorted(
        results,
        key=lambda r: (_SEVERITY_RANK.get(str(r["severity"]), 9), -int(str(r["count"]))),
    )
    for r in ordered:
        name = f"{r['type']}: {r['message']}" if r["message"] else str(r["type"])
        error = _cut(name, error_width)
        route = _cut(str(r["route"] or "-"), route_width)
        line = f"{r['count']:>5}  {r['severity']!s:<8}  {error:<{error_width}}  {route}"
        lines.append(line.rstrip())
        stack = r["stack"]
        frame = _top_frame(stack if isinstance(stack, list) else [])
        if frame:
            lines.append(" " * len(_FIXED) + _cut(frame, width - len(_FIXED)))
    return "\n".join(lines) + "\n"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def summary(files: int, lines: int, results: Sequence[dict[str, object]]) -> str:
    """One line: what was read, and what was found in it."""
    read = f"{_plural(files, 'file')}, {_plural(lines, 'line')}"
    if not results:
        return f"{read}: no errors found"
    errors = sum(int(str(r["count"])) for r in results)
    return f"{read}: {_plural(len(results), 'error group')}, {_plural(errors, 'error')}"


class Progress:
    """A line on a terminal, rewritten in place, saying how far a file has been read."""

    def __init__(self, out: TextIO, name: str, size: int) -> None:
        self._out = out
        self._name = name
        self.size = max(size, 1)
        self._shown = -1

    def update(self, done: int) -> None:
        percent = min(100, 100 * done // self.size)
        if percent == self._shown:
            return
        self._shown = percent
        mb = 1024 * 1024
        self._out.write(
            f"\rautofix-agent scan: reading {self._name}: {percent}% "
            f"({done / mb:.1f} of {self.size / mb:.1f} MB)"
        )
        self._out.flush()

    def clear(self) -> None:
        if self._shown != -1:
            self._out.write("\r\x1b[K")
            self._out.flush()
