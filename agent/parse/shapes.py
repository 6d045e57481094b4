"""Text shapes several formats share: level words, ``Name: message`` headers, routes."""

from __future__ import annotations

import json
import re
from typing import Any

# Every error level word must hold one of the prefilter's needles (see formats.levels): a
# level the prefilter cannot see would make results depend on how a stream was chunked.
ERROR_LEVELS = frozenset(("error", "fatal", "crit", "critical", "alert", "emerg", "emergency"))
OTHER_LEVELS = frozenset(
    ("trace", "debug", "info", "notice", "warn", "warning", "verbose", "silly", "http", "log")
)
# A level word: bracketed, or followed by a colon, or in capitals ("error budget ok" is
# prose), maybe with pino-pretty's "(pid)" after it.
_LEVEL_WORD = re.compile(
    r"(?P<open>\[)?(?P<word>[A-Za-z]{3,9})(?(open)\])(?: \([^()]{1,64}\))?(?P<sep>:\s*|\s+|$)"
)
# A label before it, as winston's printf formats often put one: "[shop] error: ...".
_LABEL = re.compile(r"\[[^\]\s]{1,40}\] ")
# After the level: log4js's "category - " and NestJS's "[Context] ".
_CATEGORY = re.compile(r"[\w.:/@-]{1,64} - ")
_CONTEXT = re.compile(r"\[[\w.:/@-]{1,64}\] ")
_LOGFMT_LEVEL = re.compile(r"(?:^|\s)(?:level|lvl|severity)=\"?([A-Za-z]+)")
_LOGFMT_MSG = re.compile(r"(?:^|\s)msg=(?:\"((?:[^\"\\]|\\.)*)\"|(\S+))")
ROUTE = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(/[^\s?#]*)\S*\s*(.*)")
_HEADER = re.compile(
    r"(?:Uncaught )?(?P<name>[A-Za-z_$][\w$.]*(?: \[[\w.-]+\])?)(?::\s(?P<msg>.*)|:?$)"
)
_BRACKET_HEADER = re.compile(r"\[(?P<name>[A-Za-z_$][\w$.]*(?: \[[\w.-]+\])?): (?P<msg>.*)\]")
ERRORISH = re.compile(r"(?:Error|Exception|Rejection|Fault|Failure|Panic)$|^Error\b")


def _level_word(body: str) -> tuple[str, re.Match[str]] | None:
    """(lower-case level, its match) when ``body`` starts with a level word."""
    for start in (0, -1):
        if start == -1:
            label = _LABEL.match(body) if body.startswith("[") else None
            if label is None:
                return None
            start = label.end()
        match = _LEVEL_WORD.match(body, start)
        if match is None:
            continue
        word = match["word"]
        lower = word.lower()
        if lower not in ERROR_LEVELS and lower not in OTHER_LEVELS:
            continue
        if match["open"] or word.isupper() or match["sep"].startswith(":"):
            return lower, match
    return None


def level_of(body: str) -> tuple[str | None, str]:
    """('error' | 'other' | None, text after the level word) for a text line body."""
    found = _level_word(body)
    if found:
        word, match = found
        if word in ERROR_LEVELS:
            # "Error: boom" is an error header, not a level word.
            if match["word"] == "Error" and body.startswith("Error:"):
                return "error", body
            rest = body[match.end() :]
            category = _CATEGORY.match(rest)
            if category:
                rest = rest[category.end() :]
            context = _CONTEXT.match(rest)
            if context:
                rest = rest[context.end() :]
            return "error", rest
        return "other", body[match.end() :]
    if "=" in body:
        logfmt = _LOGFMT_LEVEL.search(body)
        if logfmt:
            word = logfmt[1].lower()
            if word in ERROR_LEVELS:
                msg = _LOGFMT_MSG.search(body)
                if msg:
                    text = msg[1] if msg[1] is not None else msg[2]
                    return "error", text.replace('\\"', '"')
                return "error", body
            return "other", body
    return None, body


# What process handlers print before the error itself (console.error('uncaughtException:',
# err)): a label, never the error class.
HANDLER_LABELS = frozenset(
    ("uncaughtException", "unhandledRejection", "uncaught exception", "unhandled rejection")
)
_EMBEDDED = re.compile(
    r"(?:^|(?<=: )|(?<= - ))(?P<name>(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*(?:Error|Exception)|Error)"
    r"(?::\s(?P<msg>.*)|$)"
)


_LOWER_LABELS = frozenset(label.lower() for label in HANDLER_LABELS)


def embedded_header(text: str) -> tuple[str, str] | None:
    """An error class and message inside a line: ``GET /x failed: TypeError: boom``."""
    match = _EMBEDDED.search(text)
    if match is None:
        return None
    return match["name"], match["msg"] or ""


def header(text: str, errorish_only: bool) -> tuple[str, str] | None:
    """(error class, message) of a ``Name: message`` line; ``errorish_only`` wants a name
    that looks like an error class (``TypeError``, ``FooException``...). A process
    handler's label before it (``uncaughtException: TypeError: ...``) is passed over."""
    label, sep, rest = text.partition(": ")
    if sep and label.lower() in _LOWER_LABELS:
        inner = header(rest, errorish_only)
        if inner is not None:
            return inner
    match = _HEADER.fullmatch(text)
    if match and match["msg"] is None and not ERRORISH.search(match["name"]):
        return None
    if not match:
        return None
    name = match["name"]
    if errorish_only and not ERRORISH.search(name.split(" [", 1)[0]):
        return None
    return _class_name(name), match["msg"] or ""


# Node's inspect writes ``Error [PaymentError]: ...`` for an error whose class set its name
# after its stack was taken; the bracket then holds the class. ``TypeError [ERR_X]`` keeps
# its code: that bracket is no class name.
_RENAMED = re.compile(r"[A-Za-z_$][\w$.]* \[(?P<name>[A-Za-z_$][\w$]*(?:Error|Exception))\]")


def _class_name(name: str) -> str:
    renamed = _RENAMED.fullmatch(name)
    return renamed["name"] if renamed else name


def bracket_header(text: str) -> tuple[str, str, bool] | None:
    """``[Name: msg]`` (an error printed without a stack), maybe opening a property block."""
    if not text.startswith("["):
        return None
    end = text.rfind("]")
    if end == -1:
        return None
    match = _BRACKET_HEADER.fullmatch(text[: end + 1])
    if not match:
        return None
    tail = text[end + 1 :].strip()
    if tail and not tail.startswith("{"):
        return None
    opens = tail == "{"
    return match["name"], match["msg"], opens


def any_header(text: str, errorish_only: bool) -> tuple[tuple[str, str] | None, bool]:
    """(header of ``[Name: msg]`` or ``Name: msg``, whether it opens a property block)."""
    bracket = bracket_header(text)
    if bracket:
        return (bracket[0], bracket[1]), bracket[2]
    return header(text, errorish_only), False


def _int_or_digits(digits: str) -> int | str:
    try:
        return int(digits)
    except ValueError:  # more digits than Python converts to an int: keep them as text
        return digits


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None. A number of thousands of digits (which
    ``json.loads`` refuses by default) is kept as its digits, so the line is still read;
    the slower decode runs only for such a line."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            return None
        try:
            obj = json.loads(text, parse_int=_int_or_digits)
        except (ValueError, RecursionError):
            return None
    except RecursionError:
        return None
    return obj if isinstance(obj, dict) else None
