"""Making whatever a log line held safe to store, hash, print and send.

Log text is outside input: ``JSON.stringify`` writes a string cut inside an emoji as a lone
surrogate escape (``"\\ud83d"``), a binary payload brings NUL bytes, a runaway logger writes
a megabyte message, and a JSON field can hold ``1e400`` or a 400-digit integer. Python
happily carries all of that in a ``str``, but SQLite, UTF-8 output and the wire refuse it
with an exception, and an exception in the write path stops a tailer for good.

So there is one step where a record leaves the parser (:func:`clean_record`) and one JSON
encoder every output goes through (:func:`dumps`): after them, every string encodes to
UTF-8, every field has a bounded size and every number is one JSON can carry.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any

from agent.record import ErrorRecord, Frame

REPLACEMENT = "\ufffd"

# Characters no output can carry as they are: lone surrogates (not UTF-8 encodable) and NUL
# (C strings, terminals, and some SQLite tools stop at it).
_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Field limits, in characters. A relayed event must stay well inside the wire's 1 MiB line
# limit even when JSON escaping makes each character six bytes: 6 x (16 + 64 + ...) KiB.
MAX_TYPE_CHARS = 256
MAX_MESSAGE_CHARS = 16 * 1024
MAX_STACK_LINE_CHARS = 8 * 1024
MAX_STACK_CHARS = 64 * 1024
MAX_ROUTE_CHARS = 2 * 1024
MAX_RAW_CHARS = 16 * 1024
MAX_FRAME_CHARS = 1024
MAX_TIMESTAMP_CHARS = 64
# Line and column numbers beyond this are noise, not positions in a source file.
MAX_FRAME_NUMBER = 10**9
# JSON numbers outside the 64-bit range are written as text: many readers cannot hold them.
_MAX_JSON_INT = 2**63 - 1
_MAX_DEPTH = 64


def as_text(value: object) -> str:
    """Any value as a string, never raising (an int too long for ``str()`` included)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than int -> str conversion allows
            return f"<{value.bit_length()}-bit integer>"
    if isinstance(value, float):
        return repr(value)
    try:
        return str(value) if isinstance(value, BaseException) else repr(value)
    except Exception:  # a nested value too deep or a repr that fails
        return f"<{type(value).__name__}>"


def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters long, a visible note of the cut included."""
    if len(text) <= limit:
        return text
    note = f" …[cut: {len(text)} chars]"
    return text[: max(0, limit - len(note))] + note


def _unsafe(text: str) -> bool:
    """Whether ``text`` holds a character no output can carry. ASCII text (nearly all log
    text) is checked for NUL alone, at C speed: the regex checks each character against a
    class and costs about 30 ns per character."""
    if text.isascii():
        return "\x00" in text
    return _UNSAFE.search(text) is not None


def safe_text(value: object, limit: int) -> str:
    """A string that encodes to UTF-8, without NUL, at most ``limit`` characters."""
    text = as_text(value)
    if _unsafe(text):
        text = _UNSAFE.sub(REPLACEMENT, text)
    return cut(text, limit)


def _safe_number(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_FRAME_NUMBER:
        return value
    return None


def _clean_frame(frame: Frame) -> Frame:
    return Frame(
        function=safe_text(frame.function, MAX_FRAME_CHARS),
        path=safe_text(frame.path, MAX_FRAME_CHARS),
        line=_safe_number(frame.line),
        column=_safe_number(frame.column),
        in_app=bool(frame.in_app),
    )


def _clean_stack(stack: object) -> list[str]:
    lines = stack if isinstance(stack, list) else [stack]
    out: list[str] = []
    total = 0
    for i, line in enumerate(lines):
        text = safe_text(line, MAX_STACK_LINE_CHARS)
        # Room is left for the note itself, so a cleaned stack is clean when cleaned again.
        if total + len(text) > MAX_STACK_CHARS - 64:
            out.append(f"…[cut: {len(lines) - i} more stack lines]")
            break
        total += len(text)
        out.append(text)
    return out


def _frame_is_clean(f: object) -> bool:
    """Whether ``f`` is a Frame whose numbers are plausible and whose texts are safe."""
    if not isinstance(f, Frame):
        return False
    line, column = f.line, f.column
    # type() rather than isinstance: a bool is an int, but no line number.
    if not (line is None or (type(line) is int and 0 <= line <= MAX_FRAME_NUMBER)):
        return False
    if not (column is None or (type(column) is int and 0 <= column <= MAX_FRAME_NUMBER)):
        return False
    function, path = f.function, f.path
    if not (isinstance(function, str) and isinstance(path, str)):
        return False
    if len(function) > MAX_FRAME_CHARS or len(path) > MAX_FRAME_CHARS:
        return False
    return not (_unsafe(function) or _unsafe(path))


# Frames already found clean, by identity: the parser hands out the same Frame object for
# every occurrence of a stack line, so most frames are checked once. Each entry holds its
# frame, so no other object can take its id while it is here; frames are immutable.
_CLEAN_FRAMES: dict[int, Frame] = {}
_CLEAN_FRAMES_ENTRIES = 4096


def _record_is_clean(r: ErrorRecord) -> bool:
    """The common case, checked without building anything: one search for an unsafe
    character over all of a record's text at once (a non-string field makes the join
    raise), and each field's length against its limit."""
    stack, frames = r.stack, r.frames
    if type(stack) is not list or type(frames) is not list:
        return False
    known = _CLEAN_FRAMES
    for f in frames:
        if known.get(id(f)) is not f:
            if not _frame_is_clean(f):
                return False
            if len(known) >= _CLEAN_FRAMES_ENTRIES:
                known.clear()
            known[id(f)] = f
    texts = [r.error_type, r.message, r.raw, *stack]
    if r.route is not None:
        texts.append(r.route)
    if r.timestamp is not None:
        texts.append(r.timestamp)
    try:
        joined = "\n".join(texts)
    except TypeError:  # a field that is not a string
        return False
    if _unsafe(joined):
        return False
    return (
        len(r.error_type) <= MAX_TYPE_CHARS
        and len(r.message) <= MAX_MESSAGE_CHARS
        and len(r.raw) <= MAX_RAW_CHARS
        and (r.route is None or len(r.route) <= MAX_ROUTE_CHARS)
        and (r.timestamp is None or len(r.timestamp) <= MAX_TIMESTAMP_CHARS)
        # All the text within one stack line's limit holds each line and the stack too.
        and (
            len(joined) <= MAX_STACK_LINE_CHARS
            or (
                max(map(len, stack), default=0) <= MAX_STACK_LINE_CHARS
                and sum(map(len, stack)) <= MAX_STACK_CHARS
            )
        )
    )


def clean_record(record: ErrorRecord) -> ErrorRecord:
    """``record`` with every field safe to store and send; the same object when it was.

    Lone surrogates and NUL become U+FFFD, over-long fields are cut with a visible note,
    frame numbers that are not plausible positions are dropped, and a field that is not a
    string (a parser that passed a JSON number through) becomes its text.
    """
    if _record_is_clean(record):
        return record
    frames = record.frames if isinstance(record.frames, list) else []
    return replace(
        record,
        error_type=safe_text(record.error_type, MAX_TYPE_CHARS) or "Error",
        message=safe_text(record.message, MAX_MESSAGE_CHARS),
        stack=_clean_stack(record.stack),
        frames=[_clean_frame(f) for f in frames if isinstance(f, Frame)],
        route=None if record.route is None else safe_text(record.route, MAX_ROUTE_CHARS),
        timestamp=(
            None if record.timestamp is None else safe_text(record.timestamp, MAX_TIMESTAMP_CHARS)
        ),
        raw=safe_text(record.raw, MAX_RAW_CHARS),
    )


def _plain(value: Any, depth: int) -> Any:
    """``value`` with only what JSON carries everywhere: text without surrogates, 64-bit
    integers, finite floats, bounded nesting."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _MAX_JSON_INT else as_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else as_text(value)
    if depth >= _MAX_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, dict):
        return {_plain(as_text(k), depth): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    return _plain(as_text(value), depth)


def dumps(value: Any, *, compact: bool = True) -> str:
    """JSON text of ``value`` that always encodes to UTF-8; never raises on any str.

    Non-ASCII stays readable (``ensure_ascii=False``). Whatever plain ``json.dumps`` cannot
    write, or writes as text that is not valid UTF-8 or not standard JSON (lone surrogates,
    ``NaN``, integers beyond 64 bits, nesting past recursion), is written as text instead.
    """
    separators = (",", ":") if compact else None
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=separators)
    except (ValueError, TypeError, RecursionError, OverflowError):
        text = None
    if text is None or _SURROGATE.search(text) or _has_big_int(value):
        text = json.dumps(
            _plain(value, 0), ensure_ascii=False, allow_nan=False, separators=separators
        )
    return text


def _has_big_int(value: Any, depth: int = 0) -> bool:
    """Whether an integer past 64 bits hides in ``value`` (only ints need this walk)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) > _MAX_JSON_INT
    if depth >= _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return any(_has_big_int(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_big_int(v, depth + 1) for v in value)
    return False
