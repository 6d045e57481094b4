"""Node's report of an uncaught exception or unhandled rejection that ends the process.

``/srv/app.js:42``, the source line, a caret under it, a blank line, the error with its
stack, a blank line and ``Node.js v20.x``. Until the caret arrives the path line may be
anything else, so the record is provisional.
"""

from __future__ import annotations

import re
from typing import ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start
from agent.parse.pending import Pending
from agent.parse.prefixes import Stamp
from agent.parse.shapes import any_header

_MAX_EXCERPT_LINES = 5
EXCERPT = re.compile(r"(?:file://)?(?P<path>\S+\.[cm]?[jt]sx?|node:[\w/]+):(?P<line>\d+)")
_CARET = re.compile(r"\s*\^+\s*")
_NODE_FOOTER = re.compile(r"Node\.js v\d+\S*")
_NODE_HINT = re.compile(r"\(Use `node --trace-\S+ \.\.\.` to show where .*\)")


class CrashReport(Recognizer):
    # The excerpt's "/srv/app.js:42" (also .mjs, .cjs, node:internal/...:3).
    needles: ClassVar[tuple[bytes, ...]] = (b"js:",)
    states: ClassVar[tuple[str, ...]] = ("excerpt", "tail")
    provisional: ClassVar[tuple[str, ...]] = ("excerpt",)

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        if not EXCERPT.fullmatch(body):
            return None
        return Pending("excerpt", line, stamp)

    def take(self, p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        if p.state == "tail":
            if _NODE_FOOTER.fullmatch(body) or _NODE_HINT.fullmatch(body) or not body.strip():
                p.add(line, body, stamp, stack=False)
                return True
            return False
        return self._excerpt(p, line, body, stamp)

    @staticmethod
    def _excerpt(p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        """After ``/path/app.js:42``: source line, caret, blank, then the error itself."""
        seen = len(p.lines)
        if not p.crash:
            # Looking for the caret under the source line.
            if _CARET.fullmatch(body) and seen >= 2:
                p.crash = True
                p.add(line, body, stamp, stack=False)
                return True
            if seen >= 2:
                return False
            p.add(line, body, stamp, stack=False)
            return True
        if not body.strip():
            if seen > _MAX_EXCERPT_LINES:
                return False
            p.add(line, body, stamp, stack=False)
            return True
        found, opens = any_header(body, errorish_only=False)
        p.add(line, body, stamp)
        p.error_type, p.message = found or ("Uncaught", body.strip())
        p.state = "props" if opens else "stack"
        return True
