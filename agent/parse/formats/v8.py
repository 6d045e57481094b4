"""V8 stack traces as ``console.error(err)`` prints them, and the JVM's alike.

``Name: message`` then ``    at fn (path:line:col)`` frames, maybe ``... N more`` and
cause chains, maybe a ``{ code: 'X', [cause]: ... }`` property block after the last frame;
``[Name: message]`` for an error printed without a stack. A header whose name does not look
like an error class (``Timeout: upstream``) is only a record once a frame follows it, and
so is an indented header (Koa prints the whole stack indented), one after a marker such as
Next.js's cross (U+2A2F), and one inside a line (``GET /x failed: TypeError: ...``).
"""

from __future__ import annotations

import re
from typing import ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start
from agent.parse.frames import parse_frame
from agent.parse.pending import Pending
from agent.parse.prefixes import Stamp
from agent.parse.shapes import ERRORISH, ROUTE, bracket_header, embedded_header, header

_MAX_PROPS_LINES = 400
# Markers some frameworks print before an error: Next.js's " \u2a2f TypeError: ...", and
# the heavy and the multiplication crosses others use alike.
_MARKERS = ("\u2a2f", "\u2716", "\u00d7")
_JAVA_MORE = re.compile(r"\s+\.\.\. \d+ (?:more|common frames omitted)")
_NODE_MORE = re.compile(r"\s+\.\.\. \d+ lines matching cause stack trace \.\.\.")
_CAUSE_CHAIN = re.compile(r"(?:Caused by|\s*Suppressed|\s*\[cause\]|\s*\[errors\]): ")


def take_frame(p: Pending, line: Line, body: str, stamp: Stamp) -> bool | None:
    """Take an ``at ...`` frame line; None when ``body`` is no frame line at all.

    False: it looks like a frame but is none, which ends the record.
    """
    if not (body[:1] in (" ", "\t") and body.lstrip().startswith("at ")):
        return None
    frame = parse_frame(body)
    if frame is None:
        return False
    if p.state == "lead" and not p.error_type:
        p.error_type = "Error"
    p.state = "stack"
    p.add(line, body, stamp)
    p.frame(frame)
    if body.rstrip().endswith(" {"):
        p.state = "props"
    return True


def take_stack_extra(p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
    """Take the other lines a stack goes on with: ``... N more``, causes, emitted events."""
    if (
        _JAVA_MORE.fullmatch(body)
        or _NODE_MORE.fullmatch(body)
        or _CAUSE_CHAIN.match(body)
        or body.startswith("Emitted 'error' event")
    ):
        p.add(line, body, stamp)
        return True
    return False


def open_stack(line: Line, body: str, stamp: Stamp, name: str, message: str) -> Pending:
    pending = Pending("stack", line, stamp)
    pending.error_type, pending.message = name, message
    pending.stack.append(body)
    return pending


class V8Stack(Recognizer):
    """Stack traces started by their header line (no level word before it)."""

    needles: ClassVar[tuple[bytes, ...]] = (b"error", b"exception")
    previous_line_needles: ClassVar[tuple[bytes, ...]] = (b"    at ",)
    states: ClassVar[tuple[str, ...]] = ("stack", "maybe", "props")
    provisional: ClassVar[tuple[str, ...]] = ("maybe",)

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        text = body.lstrip()
        sure = not body[:1].isspace()
        if text.startswith(_MARKERS):
            text = text[1:].lstrip()
            sure = False
        bracket = bracket_header(text)
        if bracket:
            pending = open_stack(line, text, stamp, bracket[0], bracket[1])
            if bracket[2]:
                pending.state = "props"
            elif not sure:
                pending.state = "maybe"
            return pending
        found = header(text, errorish_only=not sure)
        if found is None:
            return self._inside(line, text, stamp)
        pending = open_stack(line, text, stamp, *found)
        if not sure or not ERRORISH.search(found[0].split(" [", 1)[0]):
            pending.state = "maybe"
        return pending

    @staticmethod
    def _inside(line: Line, text: str, stamp: Stamp) -> Start:
        """A header inside the line, maybe after a route: a record if frames follow."""
        found = embedded_header(text)
        if found is None:
            return None
        pending = open_stack(line, text, stamp, *found)
        route = ROUTE.match(text)
        if route:
            pending.route = f"{route[1]} {route[2]}"
        pending.state = "maybe"
        return pending

    def take(self, p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        if p.state == "props":
            return self._props(p, line, body, stamp)
        taken = take_frame(p, line, body, stamp)
        if taken is not None:
            return taken
        if p.state == "maybe":
            return False
        if take_stack_extra(p, line, body, stamp):
            return True
        if p.crash and not body.strip():
            p.state = "tail"
            p.add(line, body, stamp, stack=False)
            return True
        return False

    @staticmethod
    def _props(p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        """A ``{ code: 'X', [cause]: ... }`` block that console.error prints after a stack."""
        if len(p.lines) > _MAX_PROPS_LINES:
            return False
        p.add(line, body, stamp)
        if not body.startswith((" ", "\t")) and body.strip() in ("}", "},"):
            p.state = "tail" if p.crash else "done"
        return True
