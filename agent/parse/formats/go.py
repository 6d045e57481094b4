"""Go panics and fatal errors with their goroutine dumps."""

from __future__ import annotations

import re
from typing import ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start
from agent.parse.pending import Pending
from agent.parse.prefixes import Stamp
from agent.record import Frame

GO_HEADER = re.compile(r"(?P<kind>panic|fatal error): (?P<msg>.*)")
_GO_GOROUTINE = re.compile(r"goroutine \d+ \[.*\]:|runtime stack:|\[signal .*\]|created by .*")
_GO_FUNCTION = re.compile(r"(?P<fn>[\w./*()\-\[\]{}%,]+)\(.*\)")
_GO_LOCATION = re.compile(r"\t(?P<path>\S+?):(?P<line>\d+)(?: \+0x[0-9a-f]+)?")


class GoPanic(Recognizer):
    needles: ClassVar[tuple[bytes, ...]] = (b"panic", b"fatal")
    states: ClassVar[tuple[str, ...]] = ("go",)

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        go = GO_HEADER.fullmatch(body)
        if not go:
            return None
        pending = Pending("go", line, stamp)
        message = go["msg"]
        if go["kind"] == "panic" and message.startswith("runtime error: "):
            pending.error_type, pending.message = "runtime error", message[15:]
        else:
            pending.error_type, pending.message = go["kind"], message
        pending.stack.append(body)
        return pending

    def take(self, p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        if not body.strip() or _GO_GOROUTINE.fullmatch(body):
            p.add(line, body, stamp, stack=bool(body.strip()))
            return True
        if body.startswith("exit status "):
            p.add(line, body, stamp, stack=False)
            p.state = "done"
            return True
        location = _GO_LOCATION.fullmatch(body)
        if location:
            previous = p.stack[-1] if p.stack else ""
            function = _GO_FUNCTION.fullmatch(previous)
            name = function["fn"] if function else "?"
            path = location["path"]
            in_app = not ("/go/src/" in path or "/pkg/mod/" in path or name.startswith("runtime."))
            p.add(line, body, stamp)
            p.frame(Frame(name, path, int(location["line"]), None, in_app))
            return True
        if _GO_FUNCTION.fullmatch(body) or body.startswith(("\t...", "panic: ")):
            p.add(line, body, stamp)
            return True
        return False
