"""One JSON object per line, as pino, bunyan and winston's json format write them.

Error level or worse (``level`` >= 50, or a word such as ``error`` / ``fatal``) is a
record; its stack, type and message come from ``err`` / ``error`` / ``exception`` or the
top-level fields, its route from ``req`` or the top level. A JSON object with a lower
level, or none, is no error.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agent.lines import Line
from agent.parse.formats.base import Recognizer, Start, Verdict
from agent.parse.frames import parse_frame
from agent.parse.pending import MAX_FRAMES, MAX_STACK_LINES, raw_text
from agent.parse.prefixes import Stamp, iso, json_time
from agent.parse.shapes import header, json_object
from agent.record import ErrorRecord, Frame

_JSON_ERROR_LEVELS = frozenset(
    ("error", "err", "fatal", "crit", "critical", "alert", "emerg", "emergency")
)
_LEVEL_KEYS = ("level", "severity", "levelname", "lvl", "log.level")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _json_is_error(obj: dict[str, Any]) -> bool:
    for key in _LEVEL_KEYS:
        if key not in obj:
            continue
        level = obj[key]
        if isinstance(level, bool):
            return False
        if isinstance(level, int | float):
            return level >= 50
        if isinstance(level, str):
            if level.isdigit():
                return int(level) >= 50
            return level.strip().lower() in _JSON_ERROR_LEVELS
        return False
    return False


def _json_route(obj: dict[str, Any]) -> str | None:
    req = obj.get("req")
    if not isinstance(req, dict):
        req = obj.get("request")
    source = req if isinstance(req, dict) else obj
    method = _text(source.get("method"))
    url = _text(source.get("url")) or _text(source.get("path"))
    if method and url and url.startswith("/"):
        return f"{method.upper()} {url.split('?', 1)[0].split('#', 1)[0]}"
    return None


def json_error(line: Line, obj: dict[str, Any], stamp: Stamp = None) -> ErrorRecord:
    """The error record of a JSON log object whose level is error or worse.

    ``stamp`` (the line's prefix or envelope time) stands in when the object has no time.
    """
    err = obj.get("err")
    if not isinstance(err, dict | str):
        err = obj.get("error")
    if not isinstance(err, dict | str):
        err = obj.get("exception")
    stack_text: str | None = None
    message: str | None = None
    error_type: str | None = None
    if isinstance(err, dict):
        stack_text = _text(err.get("stack"))
        message = _text(err.get("message"))
        error_type = _text(err.get("type")) or _text(err.get("name"))
    elif isinstance(err, str):
        if "\n    at " in err:
            stack_text = err
        else:
            message = err
    if stack_text is None:
        stack_text = _text(obj.get("stack"))
    if message is None:
        message = _text(obj.get("message")) or _text(obj.get("msg"))
    stack = stack_text.splitlines()[:MAX_STACK_LINES] if stack_text else []
    frames: list[Frame] = []
    for entry in stack[1:]:
        frame = parse_frame(entry) if entry.lstrip().startswith("at ") else None
        if frame is not None and len(frames) < MAX_FRAMES:
            frames.append(frame)
    if stack:
        found = header(stack[0], errorish_only=False)
        if found:
            error_type = error_type or found[0]
            message = message if message is not None else found[1]
    timestamp = None
    for key in ("time", "timestamp", "@timestamp", "ts"):
        if key in obj:
            timestamp = json_time(obj[key])
            if timestamp:
                break
    if timestamp is None and stamp:
        timestamp = iso(stamp)
    return ErrorRecord(
        error_type=error_type or "Error",
        message=message or "",
        stack=stack,
        frames=frames,
        route=_json_route(obj),
        timestamp=timestamp,
        raw=raw_text([line]),
    )


class JsonLine(Recognizer):
    # pino/bunyan "level":50 and 60 (folded alike); word levels hold "error" and the like.
    needles: ClassVar[tuple[bytes, ...]] = (b'"level":5', b"error", b"fatal", b"crit")

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        if not (body.startswith("{") and body.rstrip().endswith("}")) or '"' not in body:
            return None
        obj = json_object(body)
        if obj is None:
            return None
        if not _json_is_error(obj):
            return Verdict.IGNORED
        return json_error(line, obj, stamp)
