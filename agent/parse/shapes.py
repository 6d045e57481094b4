"""Text shapes several formats share: level words, ``Name: message`` headers, routes."""

from __future__ import annotations

import re

# Every error level word must hold one of the prefilter's needles (see formats.levels): a
# level the prefilter cannot see would make results depend on how a stream was chunked.
ERROR_LEVELS = frozenset(("error", "fatal", "crit", "critical", "alert", "emerg", "emergency"))
OTHER_LEVELS = frozenset(
    ("trace", "debug", "info", "notice", "warn", "warning", "verbose", "silly", "http", "log")
)
_LEVEL_WORD = re.compile(r"\[?([A-Za-z]{3,9})\]?(?::\s*|\s+|$)")
_LOGFMT_LEVEL = re.compile(r"(?:^|\s)(?:level|lvl|severity)=\"?([A-Za-z]+)")
_LOGFMT_MSG = re.compile(r"(?:^|\s)msg=(?:\"((?:[^\"\\]|\\.)*)\"|(\S+))")
ROUTE = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(/[^\s?#]*)\S*\s*(.*)")
_HEADER = re.compile(
    r"(?:Uncaught )?(?P<name>[A-Za-z_$][\w$.]*(?: \[[\w.-]+\])?)(?::\s(?P<msg>.*)|:?$)"
)
_BRACKET_HEADER = re.compile(r"\[(?P<name>[A-Za-z_$][\w$.]*(?: \[[\w.-]+\])?): (?P<msg>.*)\]")
ERRORISH = re.compile(r"(?:Error|Exception|Rejection|Fault|Failure|Panic)$|^Error\b")


def level_of(body: str) -> tuple[str | None, str]:
    """('error' | 'other' | None, text after the level word) for a text line body."""
    match = _LEVEL_WORD.match(body)
    if match:
        word = match[1].lower()
        if word in ERROR_LEVELS:
            rest = body[match.end() :]
            # "Error: boom" is an error header, not a level word.
            if match[1] == "Error" and body.startswith("Error:"):
                return "error", body
            return "error", rest
        if word in OTHER_LEVELS:
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


def header(text: str, errorish_only: bool) -> tuple[str, str] | None:
    """(error class, message) of a ``Name: message`` line; ``errorish_only`` wants a name
    that looks like an error class (``TypeError``, ``FooException``...)."""
    match = _HEADER.fullmatch(text)
    if match and match["msg"] is None and not ERRORISH.search(match["name"]):
        return None
    if not match:
        return None
    name = match["name"]
    if errorish_only and not ERRORISH.search(name.split(" [", 1)[0]):
        return None
    return name, match["msg"] or ""


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
