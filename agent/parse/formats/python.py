"""Python tracebacks, with chained exceptions; the last exception names the record."""

from __future__ import annotations

import re
from typing import ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start
from agent.parse.frames import python_in_app
from agent.parse.pending import Pending
from agent.parse.prefixes import Stamp
from agent.record import Frame

TRACEBACK = "Traceback (most recent call last)"
_PY_FRAME = re.compile(r'\s+File "(?P<path>.+)", line (?P<line>\d+)(?:, in (?P<fn>.+))?')
_PY_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_PY_EXCEPTION = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?")


class PythonTraceback(Recognizer):
    needles: ClassVar[tuple[bytes, ...]] = (b"traceback",)
    states: ClassVar[tuple[str, ...]] = ("py", "py_end", "py_chain")

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        if not body.startswith(TRACEBACK):
            return None
        pending = Pending("py", line, stamp)
        pending.stack.append(body)
        return pending

    def take(self, p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        if p.state == "py":
            if body[:1] in (" ", "\t"):
                frame = _PY_FRAME.fullmatch(body)
                if frame:
                    path = frame["path"]
                    p.frame(
                        Frame(
                            frame["fn"] or "<module>",
                            path,
                            int(frame["line"]),
                            None,
                            python_in_app(path),
                        )
                    )
                p.add(line, body, stamp)
                return True
            if not body.strip():
                return False
            match = _PY_EXCEPTION.fullmatch(body)
            if match:
                p.error_type, p.message = match["name"], match["msg"] or ""
            else:
                p.error_type, p.message = "Exception", body.strip()
            p.add(line, body, stamp)
            p.state = "py_end"
            return True
        if not body.strip():
            p.add(line, body, stamp, stack=False)
            return True
        if body in _PY_CHAIN:
            p.add(line, body, stamp)
            p.state = "py_chain"
            return True
        if p.state == "py_chain" and body.startswith(TRACEBACK):
            p.add(line, body, stamp)
            p.frames = []
            p.state = "py"
            return True
        return False
