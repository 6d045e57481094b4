"""Text lines that start with a level word: ``ERROR GET /path TypeError: ...``, ``[ERROR]
db: ...``, ``FATAL ...``, ``[ERROR] category - ...`` (log4js), ``ERROR [Context] ...``
(NestJS), ``ERROR (pid): ...`` (pino-pretty), ``[label] error: ...`` (winston printf),
logfmt ``level=error msg="..."``; and hapi's ``Debug: internal, implementation, error``.

An error-level line opens a record that the next lines may complete: the stack of the
error it announces (V8 frames, a header, a Python traceback, a Go panic), maybe after an
indented object dump (pino-pretty's ``req: {...}`` / ``err: {...}``, whose ``"method"`` and
``"url"`` give the route). The error class may sit inside the line (``GET /x failed:
TypeError: ...``), and a JSON object may end it (winston's simple format: ``error: msg
{"stack":"...","url":"/x"}``). A line whose level is lower is no error, whatever it says.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start, Verdict
from agent.parse.formats.go import GO_HEADER
from agent.parse.formats.json_lines import json_error
from agent.parse.formats.python import TRACEBACK
from agent.parse.formats.v8 import take_frame, take_stack_extra
from agent.parse.pending import Pending
from agent.parse.prefixes import Stamp
from agent.parse.shapes import ROUTE, any_header, embedded_header, header, json_object, level_of
from agent.record import ErrorRecord

_MAX_DUMP_LINES = 200
_DUMP_METHOD = re.compile(r'\s+"?method"?: "(?P<method>[A-Za-z]+)",?')
_DUMP_URL = re.compile(r'\s+"?url"?: "(?P<url>/[^"]*)",?')
_HAPI_DEBUG = re.compile(r"Debug: (?:[\w-]+, )*error\s*")


def _json_tail(text: str) -> tuple[str, dict[str, Any]] | None:
    """(text before it, the object) when ``text`` ends with a JSON object."""
    if not text.endswith("}"):
        return None
    at = text.find(" {")
    while at != -1:
        obj = json_object(text[at + 1 :])
        if obj is not None:
            return text[:at], obj
        at = text.find(" {", at + 1)
    return None


def _tail_record(line: Line, rest: str, stamp: Stamp, route: str | None) -> ErrorRecord | None:
    """The record of ``error: message {"stack": ...}`` when the tail says what the error is."""
    tail = _json_tail(rest)
    if tail is None:
        return None
    message, obj = tail
    if not any(key in obj for key in ("stack", "err", "error", "exception")):
        return None
    record = json_error(line, obj, stamp)
    if not record.message:
        record = dataclasses.replace(record, message=message.strip())
    if record.route is None and route is not None:
        record = dataclasses.replace(record, route=route)
    return record


class HapiDebug(Recognizer):
    """hapi's default report of a failed request: the error, indented, on the next lines."""

    needles: ClassVar[tuple[bytes, ...]] = (b"error",)

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        if not body.startswith("Debug: ") or not _HAPI_DEBUG.fullmatch(body):
            return None
        pending = Pending("lead", line, stamp)
        pending.message = body.strip()
        return pending


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
        route_match = ROUTE.fullmatch(rest)
        route = None
        if route_match:
            route = f"{route_match[1]} {route_match[2]}"
            rest = route_match[3]
        if rest.endswith("}"):
            record = _tail_record(line, rest, stamp, route)
            if record is not None:
                return record
        pending = Pending("lead", line, stamp)
        pending.route = route
        found = header(rest, errorish_only=True) if rest else None
        if found is None and rest:
            found = embedded_header(rest)
            if found:
                rest = rest[rest.find(found[0]) :]
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
        if body[:1].isspace():
            return LevelLine._dump_line(p, line, body, stamp)
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

    @staticmethod
    def _dump_line(p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        """An indented line under the level line: the error's header, or an object dump."""
        text = body.strip()
        found, opens = any_header(text, errorish_only=True)
        if found is not None:
            p.add(line, text, stamp)
            p.error_type, p.message = found
            p.state = "props" if opens else "stack"
            return True
        if len(p.lines) > _MAX_DUMP_LINES or not text:
            return False
        method = _DUMP_METHOD.fullmatch(body)
        if method:
            p.method = method["method"].upper()
        url = _DUMP_URL.fullmatch(body)
        if url and p.method and p.route is None:
            p.route = f"{p.method} {url['url'].split('?', 1)[0].split('#', 1)[0]}"
        p.add(line, body, stamp, stack=False)
        return True
