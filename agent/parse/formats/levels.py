"""Text lines that start with a level word: ``ERROR GET /path TypeError: ...``, ``[ERROR]
db: ...``, ``FATAL ...``, logfmt ``level=error msg="..."``.

An error-level line opens a record that the next line may complete: the stack of the
error it announces (V8 frames, a header, a Python traceback, a Go panic). A line whose
level is lower is no error, whatever it says.
"""

from __future__ import annotations

from typing import ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start, Verdict
from agent.parse.formats.go import GO_HEADER
from agent.parse.formats.python import TRACEBACK
from agent.parse.formats.v8 import take_frame, take_stack_extra
from agent.parse.pending import Pending
from agent.parse.prefixes import Stamp
from agent.parse.shapes import ROUTE, any_header, header, level_of


class LevelLine(Recognizer):
    # One needle for each error level word (fatal/panic and alert/emerg fold alike).
    needles: ClassVar[tuple[bytes, ...]] = (b"error", b"fatal", b"crit", b"alert", b"emerg")
    states: ClassVar[tuple[str, ...]] = ("lead",)

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        level, rest = level_of(body)
        if level is None:
            return None
        if level == "other":
            return Verdict.IGNORED
        pending = Pending("lead", line, stamp)
        route = ROUTE.fullmatch(rest)
        if route:
            pending.route = f"{route[1]} {route[2]}"
            rest = route[3]
        found = header(rest, errorish_only=True) if rest else None
        if found:
            pending.error_type, pending.message = found
            pending.stack.append(rest)
            pending.state = "stack"
        else:
            pending.message = rest.strip() or (pending.route or body.strip())
        return pending

    def take(self, p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        taken = take_frame(p, line, body, stamp)
        if taken is not None:
            return taken
        if take_stack_extra(p, line, body, stamp):
            return True
        return self._after_lead(p, line, body, stamp)

    @staticmethod
    def _after_lead(p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        """The line after ``ERROR ...``: the error it announces, or something unrelated."""
        if p.error_type:
            return False
        if body.startswith(TRACEBACK):
            p.add(line, body, stamp)
            p.state = "py"
            return True
        go = GO_HEADER.fullmatch(body)
        if go:
            p.add(line, body, stamp)
            p.error_type, p.message = go["kind"], go["msg"]
            p.state = "go"
            return True
        found, opens = any_header(body, errorish_only=True)
        if found is None or (found[0] != "Error" and level_of(body)[0] is not None):
            return False
        p.add(line, body, stamp)
        p.error_type, p.message = found
        p.state = "props" if opens else "stack"
        return True
