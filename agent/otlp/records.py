"""OTLP log entries -> :class:`ErrorRecord`: the level decides, the log parser reads the text.

An entry's severity says whether it is an error at all: ``severityNumber`` 17-24 (ERROR,
FATAL) is one, 1-16 (TRACE to WARN) is not, whatever its text says, so INFO records stay
quiet. Without a number, ``severityText`` is read with the level words the text parser
knows; with neither, the text alone decides, as it does for a line in a file.

The text is the entry's ``exception.stacktrace`` attribute when it has one (what the
OpenTelemetry SDKs record for a logged exception), otherwise its body (a map body
arrives as a JSON object, which the pino/winston/bunyan reader knows). It goes through
the same guarded parser the file sources feed, so a V8 stack, a Python traceback or a
pino line gives the same record, frames and fingerprint it would give from a file. The
``exception.type`` and ``exception.message`` attributes, when present, name the error.
An error-level entry whose text the parser finds no error in is still one: its first line
is the message, as for a file's ``ERROR ...`` line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.guard import GuardedAssembler
from agent.otlp.payload import LogEntry
from agent.parse.prefixes import format_time
from agent.parse.shapes import ERROR_LEVELS, OTHER_LEVELS
from agent.record import ErrorRecord
from agent.sanitize import MAX_TYPE_CHARS, clean_record, safe_text

ERROR_SEVERITY = 17  # SEVERITY_NUMBER_ERROR; FATAL4 = 24 is the highest


@dataclass(frozen=True)
class Found:
    """An error record and the service and host it came from (resource attributes)."""

    service: str | None
    host: str | None
    record: ErrorRecord


def level(entry: LogEntry) -> bool | None:
    """True for an error-level entry, False for a lower one, None when it says nothing."""
    if entry.severity_number:
        return entry.severity_number >= ERROR_SEVERITY
    word = entry.severity_text.strip().lower()
    if word in ERROR_LEVELS:
        return True
    if word in OTHER_LEVELS:
        return False
    return None


def _time(nanos: int) -> str | None:
    if nanos <= 0:
        return None
    try:
        return format_time(datetime.fromtimestamp(nanos / 1e9, UTC))
    except (OverflowError, OSError, ValueError):
        return None


def _route(attributes: dict[str, str]) -> str | None:
    """``METHOD /path`` from HTTP semantic-convention attributes, old names or new."""
    method = attributes.get("http.request.method") or attributes.get("http.method")
    path = (
        attributes.get("http.route") or attributes.get("url.path") or attributes.get("http.target")
    )
    if not path:
        return None
    return f"{method} {path}" if method else path


class RecordReader:
    """Reads the error records out of a batch of entries with one guarded parser.

    The parser is fed each entry's text as a stream of its own and flushed at its end
    (a stack never continues from one log record into the next); offsets run on across
    entries so what it skips can be reported by position in the batch.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self.assembler = GuardedAssembler(max_line_bytes)
        self._offset = 0

    def _parse(self, text: str) -> list[ErrorRecord]:
        data = text.encode("utf-8", "replace")
        if not data.endswith(b"\n"):
            data += b"\n"
        records = self.assembler.feed(data, self._offset)
        records += self.assembler.flush(eof=True)
        self._offset += len(data)
        return records

    def records(self, entry: LogEntry) -> list[ErrorRecord]:
        """The error records of one entry (none for one below the error level)."""
        is_error = level(entry)
        if is_error is False:
            return []
        attrs = entry.attributes
        stacktrace = attrs.get("exception.stacktrace", "")
        exc_type = attrs.get("exception.type", "").strip()
        exc_message = attrs.get("exception.message", "")
        text = stacktrace if stacktrace.strip() else entry.body
        found = self._parse(text) if text.strip() else []
        if stacktrace.strip() or exc_type:
            # One exception is one error, however its trace was printed.
            found = found[:1]
        if not found:
            if not (is_error or exc_type):
                return []
            lines = [line for line in text.splitlines() if line.strip()]
            found = [
                ErrorRecord(
                    error_type="Error",
                    message=lines[0].strip() if lines else "",
                    stack=lines if stacktrace.strip() else [],
                    raw=text,
                )
            ]
        first = found[0]
        found[0] = dataclasses.replace(
            first,
            error_type=exc_type or first.error_type,
            message=exc_message or first.message or entry.body.strip(),
        )
        timestamp = _time(entry.time_unix_nano)
        route = _route(attrs)
        return [
            clean_record(
                dataclasses.replace(
                    record,
                    timestamp=timestamp or record.timestamp,
                    route=record.route or route,
                )
            )
            for record in found
        ]

    def found(self, entries: list[LogEntry]) -> list[Found]:
        """Every error record of a batch, with the service and host it was sent under."""
        return [
            Found(_name(entry.service), _name(entry.host), record)
            for entry in entries
            for record in self.records(entry)
        ]


def _name(value: str | None) -> str | None:
    """A service or host name from a resource, safe to store and bounded."""
    return None if value is None else safe_text(value, MAX_TYPE_CHARS)
