"""JVM ``Exception in thread "main" pkg.SomeException: message``; the stack that follows
is read as a V8-style stack (``at`` frames, ``Caused by``, ``... N more``)."""

from __future__ import annotations

import re
from typing import ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start
from agent.parse.formats.v8 import open_stack
from agent.parse.prefixes import Stamp

_JAVA_THREAD = re.compile(r'Exception in thread "[^"]*" (?P<name>[\w$.]+)(?::\s?(?P<msg>.*))?')


class JavaThread(Recognizer):
    needles: ClassVar[tuple[bytes, ...]] = (b"exception",)

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        java = _JAVA_THREAD.fullmatch(body)
        if not java:
            return None
        return open_stack(line, body, stamp, java["name"], java["msg"] or "")
