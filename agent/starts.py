"""Seeing a service start in its own log, so the console knows when new code runs.

A fix merged on GitHub only counts once the service restarted on it: the console waits
for a ``start`` line (agent.wire) after the merge before it counts the fix's quiet time,
and only an occurrence after that start is a regression. The agent cannot know about a
deployment, but the log says when a process came up: every common Node framework writes
a "listening"/"started" line. The default pattern matches those; a source's
``start_pattern`` replaces it ("" turns it off).

The usual chunk holds no start line, so it costs one regex search over the bytes; only a
chunk with a match is split into lines. A line cut between two reads is kept (bounded)
until its end arrives, so a start line is never missed for being split.
"""

from __future__ import annotations

import re

# Express/Koa/Hapi/http ("listening on", "Server running at"), Fastify ("Server listening
# at"), NestJS ("Nest application successfully started"), Next.js ("started server on",
# "Ready in"), and "server started"/"HTTP server started" lines of many others.
DEFAULT_START_PATTERN = (
    r"(?i)\b(?:listening (?:on|at)\b|server (?:is )?(?:listening|running|started)\b"
    r"|started server on\b|application (?:successfully )?started\b|ready (?:in|on)\b"
    r"|http server started\b)"
)
LINE_LIMIT = 300  # characters of a start line kept (it is shown to a person)
_CARRY_LIMIT = 4096  # bytes of an unfinished line kept between reads


class StartLines:
    """Finds start lines in the chunks of each followed file (by tailer key)."""

    def __init__(self, pattern: str) -> None:
        self._text = re.compile(pattern)
        # The same pattern over bytes finds the (rare) chunk worth splitting into lines.
        try:
            self._bytes: re.Pattern[bytes] | None = re.compile(pattern.encode("utf-8"))
        except re.error:
            self._bytes = None  # a pattern only text can run (\\N{...}); lines are decoded
        self._carry: dict[str, bytes] = {}

    def feed(self, key: str, data: bytes, *, final: bool = False) -> list[str]:
        """The start lines completed by ``data`` (the next bytes of ``key``'s file)."""
        carried = self._carry.pop(key, b"")
        joined = carried + data if carried else data
        cut = len(joined) if final else joined.rfind(b"\n") + 1
        if not final and cut < len(joined):
            self._carry[key] = joined[cut:][-_CARRY_LIMIT:]
        whole = joined[:cut]
        if not whole or (self._bytes is not None and self._bytes.search(whole) is None):
            return []
        found = []
        for raw in whole.splitlines():
            line = raw.decode("utf-8", "replace")
            if self._text.search(line):
                found.append(line.strip()[:LINE_LIMIT])
        return found

    def forget(self, key: str) -> None:
        """The file is finished (rotated away and drained)."""
        self._carry.pop(key, None)
