"""What the store is handed, and whether it can be stored as it is (if not, why, in one line).

The wire decoder checks types; what it lets through can still be refused by the database (a
count of 10**30 does not fit its integers; a lone surrogate cannot be encoded as UTF-8;
PostgreSQL's text cannot hold NUL, and the agent never sends one).
Ingest screens every batch first (:func:`refusals`), so one such event is reported with its
host and seq while the rest of its batch is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.wire import ErrorEvent, encode

MAX_INTEGER = 2**63 - 1  # the largest integer SQLite and PostgreSQL's bigint hold


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
    if "\x00" in value:
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
            return f"{name} is not text the store can hold (a lone surrogate or a NUL?)"
    if event.route is not None and not _text_ok(event.route):
        return "route is not text the store can hold (a lone surrogate or a NUL?)"
    if type(event.stack) is not list or not all(_text_ok(line) for line in event.stack):
        return "stack is not a list of text the store can hold (a lone surrogate or a NUL?)"
    return None


@dataclass(frozen=True, slots=True)
class Received:
    """An event as a link read it: the decoded event and the wire line it was decoded from.

    ``event`` is ``agent.wire.decode(line)`` and ``line`` is the text the agent wrote (the
    line's UTF-8 bytes decoded, surrounding whitespace removed). The store keeps ``line``
    as the occurrence's raw text as it is, so what a person reads later is what the agent
    sent, fields this console does not know included.
    """

    event: ErrorEvent
    line: str


def received(event: ErrorEvent | Received) -> Received:
    """``event`` with a line to store: a bare event (built in-process) gets its wire line."""
    return event if isinstance(event, Received) else Received(event, encode(event))


def refusals(items: Sequence[ErrorEvent | Received]) -> dict[int, str]:
    """Why each item of a batch that cannot be stored is refused, by index (empty: none).

    A wire-decoded event has the types the protocol requires, and its text can hold a lone
    surrogate or a NUL only through a ``\\u`` escape in its line (UTF-8 text has no
    surrogate, JSON no raw control character). So a batch
    of wire lines without one and with every integer in range, the usual case, is cleared
    in one pass; anything else is screened event by event with :func:`unstorable`.
    """
    lines = [x for x in items if type(x) is Received]
    if len(lines) == len(items) and "\\u" not in "".join([x.line for x in lines]):
        events = [x.event for x in lines]
        if (
            max((e.seq for e in events), default=0) <= MAX_INTEGER
            and max((e.count for e in events), default=0) <= MAX_INTEGER
        ):
            return {}
    refused: dict[int, str] = {}
    for i, item in enumerate(items):
        problem = unstorable(item.event if isinstance(item, Received) else item)
        if problem is not None:
            refused[i] = problem
    return refused


def seq_shown(event: ErrorEvent) -> str:
    """The event's seq for a message, even when it is not a sane number."""
    return _number(event.seq)
