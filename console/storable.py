"""Whether a relayed event can be stored as it is, and if not, why, in one line.

The wire decoder checks types; what it lets through can still be refused by SQLite (a
count of 10**30 does not fit its integers; a lone surrogate cannot be encoded as UTF-8).
Ingest screens every event with :func:`unstorable` first, so one such event is reported
with its host and seq while the rest of its batch is stored.
"""

from __future__ import annotations

from agent.wire import ErrorEvent

MAX_INTEGER = 2**63 - 1  # SQLite's largest integer


def _number(value: object) -> str:
    if type(value) is int and abs(value) < 10**20:
        return str(value)
    if type(value) is int:
        return f"a {value.bit_length()}-bit number"
    return type(value).__name__


def _positive_integer(value: object) -> bool:
    return type(value) is int and 0 < value <= MAX_INTEGER


def _text_ok(value: object) -> bool:
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_TEXT_FIELDS = (
    "host",
    "service",
    "fingerprint",
    "severity",
    "message",
    "error_type",
    "first_seen",
    "last_seen",
)


def unstorable(event: ErrorEvent) -> str | None:
    """Why ``event`` cannot be stored, or None when it can."""
    if not _positive_integer(event.seq):
        return f"seq must be a positive integer up to {MAX_INTEGER}, got {_number(event.seq)}"
    if not _positive_integer(event.count):
        return f"count must be a positive integer up to {MAX_INTEGER}, got {_number(event.count)}"
    if event.type != "error" and event.type != "update":
        return f"type {str(event.type)[:20]!r} is not storable"
    for name in _TEXT_FIELDS:
        if not _text_ok(getattr(event, name)):
            return f"{name} is not text that UTF-8 can hold (a lone surrogate?)"
    if event.route is not None and not _text_ok(event.route):
        return "route is not text that UTF-8 can hold (a lone surrogate?)"
    if type(event.stack) is not list or not all(_text_ok(line) for line in event.stack):
        return "stack is not a list of text that UTF-8 can hold (a lone surrogate?)"
    return None


def seq_shown(event: ErrorEvent) -> str:
    """The event's seq for a message, even when it is not a sane number."""
    return _number(event.seq)
