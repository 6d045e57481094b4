"""The stream protocol between the prod agent and the console: one JSON object a line.

This module is the single definition of the wire format. The agent encodes with it and
the console decodes with it, so the two can never drift apart. It uses the standard
library only, because it ships to production hosts with the agent.

Line types:

- ``hello``: first line of every stream (protocol version, agent version, host, sources,
  the oldest and newest stored seq).
- ``error``: the first relay of a fingerprint once it has settled.
- ``update``: later occurrences of an already relayed fingerprint, batched.
- ``heartbeat``: sent every few seconds so the reader can tell a quiet link from a dead one.
- ``start``: the service (re)started or a new release began, as its log showed it (a line
  matching the source's start pattern); the console waits for one after a fix is merged
  before it counts the fix's quiet time.

A reader ignores a line type it does not know (a newer agent's), so adding one never
breaks an older console; an older console only names it as a problem.

``error`` and ``update`` carry the error's own type as ``error_type`` because ``type``
names the line type, and ``in_app``: one flag per ``stack`` line, true for a frame of the
application's own code, false for a library or runtime frame, null for a line that is not
a frame. A line from an agent that predates ``in_app`` decodes with an empty list: the
frames are not known.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from agent.sanitize import dumps

PROTOCOL_VERSION = 1
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
MAX_LINE_BYTES = 1024 * 1024

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
Severity = Literal["low", "medium", "high", "critical"]


class WireError(ValueError):
    """A stream line that is not valid protocol; the message says what is wrong."""


def severity_rank(severity: str) -> int:
    """Order severities so that thresholds can be compared (``low`` is 0)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise WireError(f"unknown severity {severity!r}; expected one of {SEVERITIES}") from None


@dataclass(frozen=True)
class Hello:
    protocol: int
    agent_version: str
    host: str
    sources: list[str] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0
    # Random id of the agent's outbox; it changes when the state directory is wiped, which
    # tells the console that seqs restarted from 1.
    instance: str = ""
    type: Literal["hello"] = "hello"


@dataclass(frozen=True)
class ErrorEvent:
    """An ``error`` or ``update`` line: one fingerprint's state at a moment."""

    type: Literal["error", "update"]
    seq: int
    host: str
    service: str
    fingerprint: str
    count: int
    severity: Severity
    message: str
    error_type: str
    stack: list[str]
    route: str | None
    first_seen: str
    last_seen: str
    # One flag per stack line (see the module docstring); empty when the agent did not say.
    in_app: list[bool | None] = field(default_factory=list)


@dataclass(frozen=True)
class Heartbeat:
    host: str
    last_seq: int
    time: str
    type: Literal["heartbeat"] = "heartbeat"


@dataclass(frozen=True)
class Start:
    """A ``start`` line: the service's log showed it starting (``at``, the host's time).

    ``line`` is the (redacted, bounded) log line that matched, so a person can see why.
    """

    seq: int
    host: str
    service: str
    at: str
    line: str
    type: Literal["start"] = "start"


Event = Hello | ErrorEvent | Heartbeat | Start


class UnknownLineType(WireError):
    """A well-formed line of a type this side does not know (a newer peer's): skip it."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown line type {kind!r}")
        self.kind = kind


def iso(ts: float) -> str:
    """Epoch seconds as the wire's time form: ISO 8601 UTC with milliseconds, ``Z`` suffix.

    Every time on the wire and in both databases is written by this, so they sort as text.
    """
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _fields(event: Event) -> dict[str, Any]:
    # "type" first, whatever the dataclass's field order: a reader can tell the line's kind
    # from its first bytes, and with_seq relies on it.
    return {"type": event.type, **asdict(event)}


def encode(event: Event) -> str:
    """One line of JSON, without the newline: compact, ``type`` first, non-ASCII kept
    readable; any text encodes (see :func:`agent.sanitize.dumps`)."""
    return dumps(_fields(event))


def encode_unsequenced(event: ErrorEvent | Start) -> str:
    """The event's line without its ``seq``, the form the agent's outbox stores.

    The seq is the outbox row's key, known only once the row is written; :func:`with_seq`
    puts it back, giving exactly :func:`encode`'s line.
    """
    fields = _fields(event)
    del fields["seq"]
    return dumps(fields)


def with_seq(payload: str, seq: int) -> str:
    """The wire line of a stored event: its payload with the seq spliced in after "type".

    Payloads are stored compact with "type" first, so this costs no JSON parsing per event;
    anything else (a payload written another way) is decoded and encoded again.
    """
    if payload.startswith('{"type":"'):
        cut = payload.find(",")
        if cut > 0:
            return f'{payload[:cut]},"seq":{seq}{payload[cut:]}'
    return encode(ErrorEvent(seq=seq, **json.loads(payload)))


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], line_type: str) -> Any:
    if key not in obj:
        raise WireError(f"{line_type} line has no {key!r}")
    value = obj[key]
    if isinstance(value, bool) and kind is not bool:
        raise WireError(f"{line_type} line: {key!r} must be {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise WireError(
            f"{line_type} line: {key!r} must be {_kind_name(kind)}, got {type(value).__name__}"
        )
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def _in_app(obj: dict[str, Any], kind: str, stack_lines: int) -> list[bool | None]:
    """The ``in_app`` flags of an event line; absent (an older agent) or empty: not known."""
    flags = obj.get("in_app")
    if flags is None or flags == []:
        return []
    if (
        not isinstance(flags, list)
        or len(flags) != stack_lines
        or not all(f is None or f is True or f is False for f in flags)
    ):
        raise WireError(
            f"{kind} line: 'in_app' must be empty or hold true, false or null for each stack line"
        )
    return flags


_SEVERITY_SET = frozenset(SEVERITIES)
_EVENT_KEYS = frozenset(f.name for f in fields(ErrorEvent))
# An agent from before in_app writes every other field.
_EVENT_KEYS_OLD = _EVENT_KEYS - {"in_app"}
_EVENT_REQUIRED = tuple(sorted(_EVENT_KEYS - {"route", "in_app"}))


def well_formed_event(obj: dict[str, Any]) -> ErrorEvent | None:
    """The event of a well-formed ``error`` or ``update`` object, checked in one expression;
    None for anything else, which the field-by-field checks in :func:`decode` then name.

    A reader with a faster JSON parser than the standard library's may parse a line itself
    and come here, and fall back to :func:`decode` on None, so every refusal reads the same.
    The object is the caller's to give away: when it holds exactly the event's fields (what
    :func:`encode` writes, ``in_app`` aside) it becomes the event's attributes as it is,
    instead of passing through the frozen dataclass's ``__init__``, which costs several
    times more per line.
    """
    kind = obj.get("type")
    if kind != "error" and kind != "update":
        return None
    keys = obj.keys()
    if keys == _EVENT_KEYS:
        values = obj
    elif keys == _EVENT_KEYS_OLD:
        values = obj
        values["in_app"] = None
    else:
        try:
            values = {key: obj[key] for key in _EVENT_REQUIRED}
        except KeyError:
            return None
        values["route"] = obj.get("route")
        values["in_app"] = obj.get("in_app")
    seq, count, stack = values["seq"], values["count"], values["stack"]
    severity, fingerprint, route = values["severity"], values["fingerprint"], values["route"]
    in_app = values["in_app"]
    if not (
        type(seq) is int
        and type(count) is int
        and seq > 0
        and count > 0
        and type(severity) is str
        and severity in _SEVERITY_SET
        and type(fingerprint) is str
        and _FINGERPRINT.fullmatch(fingerprint)
        and type(values["host"]) is str
        and type(values["service"]) is str
        and type(values["message"]) is str
        and type(values["error_type"]) is str
        and type(values["first_seen"]) is str
        and type(values["last_seen"]) is str
        and (route is None or type(route) is str)
        and type(stack) is list
        and (not stack or set(map(type, stack)) == _STR_ONLY)
        and (
            in_app is None
            or (
                type(in_app) is list
                and (not in_app or len(in_app) == len(stack))
                and all(f is None or f is True or f is False for f in in_app)
            )
        )
    ):
        return None
    if in_app is None:
        values["in_app"] = []
    event = object.__new__(ErrorEvent)
    object.__setattr__(event, "__dict__", values)
    return event


_STR_ONLY = {str}


def decode(line: str | bytes) -> Event:
    """Parse one stream line, refusing anything that is not exactly this protocol.

    The console feeds every line from a remote host through here; a bad line raises
    :class:`WireError` naming the problem so the caller can report it and go on.
    """
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise WireError(f"line of {len(line)} bytes exceeds the {MAX_LINE_BYTES} byte limit")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"line is not UTF-8: {exc}") from None
    if len(line) > MAX_LINE_BYTES:
        raise WireError(f"line of {len(line)} characters exceeds the limit")
    text = line.strip()
    if not text:
        raise WireError("empty line")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise WireError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "hello":
        protocol = _require(obj, "protocol", int, "hello")
        if protocol != PROTOCOL_VERSION:
            raise WireError(
                f"unsupported protocol version {protocol}; this side speaks {PROTOCOL_VERSION}"
            )
        sources = obj.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise WireError("hello line: 'sources' must be a list of strings")
        return Hello(
            protocol=protocol,
            agent_version=_require(obj, "agent_version", str, "hello"),
            host=_require(obj, "host", str, "hello"),
            sources=sources,
            first_seq=_require(obj, "first_seq", int, "hello") if "first_seq" in obj else 0,
            last_seq=_require(obj, "last_seq", int, "hello") if "last_seq" in obj else 0,
            instance=_require(obj, "instance", str, "hello") if "instance" in obj else "",
        )
    if kind == "heartbeat":
        return Heartbeat(
            host=_require(obj, "host", str, "heartbeat"),
            last_seq=_require(obj, "last_seq", int, "heartbeat"),
            time=_require(obj, "time", str, "heartbeat"),
        )
    if kind == "start":
        seq = _require(obj, "seq", int, "start")
        if seq <= 0:
            raise WireError(f"start line: 'seq' must be positive, got {seq}")
        return Start(
            seq=seq,
            host=_require(obj, "host", str, "start"),
            service=_require(obj, "service", str, "start"),
            at=_require(obj, "at", str, "start"),
            line=_require(obj, "line", str, "start"),
        )
    if kind == "error" or kind == "update":
        fast = well_formed_event(obj)
        if fast is not None:
            return fast
        severity = _require(obj, "severity", str, kind)
        severity_rank(severity)
        stack = _require(obj, "stack", list, kind)
        if not all(type(s) is str for s in stack):
            raise WireError(f"{kind} line: 'stack' must be a list of strings")
        route = obj.get("route")
        if route is not None and not isinstance(route, str):
            raise WireError(f"{kind} line: 'route' must be a string or null")
        seq = _require(obj, "seq", int, kind)
        if seq <= 0:
            raise WireError(f"{kind} line: 'seq' must be positive, got {seq}")
        count = _require(obj, "count", int, kind)
        if count <= 0:
            raise WireError(f"{kind} line: 'count' must be positive, got {count}")
        fingerprint = _require(obj, "fingerprint", str, kind)
        if not _FINGERPRINT.fullmatch(fingerprint):
            raise WireError(f"{kind} line: 'fingerprint' must be 16 lowercase hex characters")
        in_app = _in_app(obj, kind, len(stack))
        return ErrorEvent(
            type=kind,
            seq=seq,
            host=_require(obj, "host", str, kind),
            service=_require(obj, "service", str, kind),
            fingerprint=fingerprint,
            count=count,
            severity=severity,  # type: ignore[arg-type]
            message=_require(obj, "message", str, kind),
            error_type=_require(obj, "error_type", str, kind),
            stack=stack,
            route=route,
            first_seen=_require(obj, "first_seen", str, kind),
            last_seen=_require(obj, "last_seen", str, kind),
            in_app=in_app,
        )
    if kind is None:
        raise WireError("line has no 'type'")
    if isinstance(kind, str):
        raise UnknownLineType(kind[:40])
    raise WireError(f"unknown line type {kind!r}")
