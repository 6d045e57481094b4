"""What carries a program's lines into the file the agent reads, removed before line logic.

- Docker json-file: ``{"log":"text\\n","stream":"stderr","time":"..."}`` per line the
  program wrote; a line longer than 16 KiB comes as several entries, only the last one
  ending in ``\\n``.
- CRI (Kubernetes nodes' ``/var/log/containers``): ``<RFC 3339 time> <stream> <P|F> text``;
  ``P`` pieces are joined until the ``F`` one.
- PM2 ``--log-type json``: ``{"message":"...","timestamp":...,"type":"err",...}``; one
  message holds whatever one read returned, which may be several lines.
- journald ``journalctl -o json``: ``MESSAGE`` as text, or as an array of bytes when it
  was not valid UTF-8 (or held control characters).

Each envelope line becomes the program's own lines, each keeping the byte range of the
envelope line(s) it came from, with the envelope's time as a fallback timestamp. Lines
carried by nothing pass through unchanged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from agent.lines import Line, printable
from agent.parse.prefixes import Stamp, stamp_of
from agent.parse.shapes import json_object

# For the prefilter: a pino/bunyan error level as a JSON envelope escapes it, and a
# journald message held as an array of bytes, whose text no other needle can see.
NEEDLES = (b'\\"level\\":5', b'"MESSAGE":[')

_CRI = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) "
    r"(?P<stream>stdout|stderr) (?P<tag>[PF])(?: (?P<text>.*))?"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# A partial line longer than this is finished as it is, bounding what is held.
_MAX_PARTIAL_CHARS = 256 * 1024


def _clean(text: str) -> str:
    """Carried text as a line: no lone surrogates (JSON escapes allow them), no escapes."""
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return printable(text)


def _journal_message(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        try:
            # bytes() checks what the array holds: integers from 0 to 255, nothing else.
            return bytes(value).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return None
    return None


def _journal_stamp(obj: dict[str, Any]) -> Stamp:
    micros = obj.get("__REALTIME_TIMESTAMP")
    if not (isinstance(micros, str) and micros.isdigit()):
        return None
    try:
        when = datetime.fromtimestamp(int(micros) / 1e6, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return stamp_of(when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _text_stamp(value: Any) -> Stamp:
    return stamp_of(value) if isinstance(value, str) else None


class Unwrapper:
    """Turns the lines of a file into the lines its program wrote, one source at a time.

    Holds the pieces of a split line until its last piece arrives; :attr:`held_start` is
    then where they began, which a reader must not commit past.
    """

    def __init__(self) -> None:
        self._held: list[str] = []
        self._held_start = 0
        self._held_end = 0
        self._held_stamp: Stamp = None
        self._held_size = 0

    @property
    def holding(self) -> bool:
        """True while the first pieces of a split line wait for the rest."""
        return bool(self._held)

    @property
    def held_start(self) -> int | None:
        return self._held_start if self._held else None

    def unwrap(self, line: Line) -> list[tuple[Line, Stamp]]:
        """The program's lines in ``line`` (none while a split line is incomplete)."""
        text = line.text
        first = text[:1]
        if first == "{":
            carried = self._json(line, text)
            if carried is not None:
                return carried
        elif first.isdigit() and " std" in text[:48]:
            cri = _CRI.fullmatch(text)
            if cri is not None:
                return self._piece(
                    line, cri["text"] or "", cri["tag"] == "F", stamp_of(cri["time"])
                )
        if self._held:
            return [*self.flush(), (line, None)]
        return [(line, None)]

    def flush(self) -> list[tuple[Line, Stamp]]:
        """A held split line as it is: its end never came (the stream stopped or changed)."""
        if not self._held:
            return []
        text, self._held = "".join(self._held), []
        self._held_size = 0
        return [(Line(_clean(text), self._held_start, self._held_end), self._held_stamp)]

    def _json(self, line: Line, text: str) -> list[tuple[Line, Stamp]] | None:
        if text.startswith('{"log":'):
            obj = json_object(text)
            log = obj.get("log") if obj else None
            if obj is None or not isinstance(log, str):
                return None
            ends = log.endswith("\n")
            return self._piece(line, log[:-1] if ends else log, ends, _text_stamp(obj.get("time")))
        if text.startswith('{"message":') or '"__CURSOR":' in text:
            obj = json_object(text)
            if obj is None:
                return None
            if "__CURSOR" in obj or "__REALTIME_TIMESTAMP" in obj:
                message = _journal_message(obj.get("MESSAGE"))
                if message is None:
                    return self.flush()  # an entry without text (or with no usable text)
                return self._lines(line, message, _journal_stamp(obj))
            message = obj.get("message")
            if isinstance(message, str) and "app_name" in obj and "type" in obj:
                return self._lines(line, message, _text_stamp(obj.get("timestamp")))
        return None

    def _lines(self, line: Line, text: str, stamp: Stamp) -> list[tuple[Line, Stamp]]:
        """Every line in one envelope's text; all of them share the envelope's bytes."""
        out = self.flush()
        parts = text.split("\n")
        if len(parts) > 1 and parts[-1] == "":
            parts.pop()
        out += [(Line(_clean(part), line.start, line.end), stamp) for part in parts]
        return out

    def _piece(self, line: Line, text: str, last: bool, stamp: Stamp) -> list[tuple[Line, Stamp]]:
        if not self._held:
            if last:
                return [(Line(_clean(text), line.start, line.end), stamp)]
            self._held_start, self._held_stamp = line.start, stamp
        self._held.append(text)
        self._held_end = line.end
        self._held_size += len(text)
        if not last and self._held_size < _MAX_PARTIAL_CHARS:
            return []
        joined, self._held = "".join(self._held), []
        self._held_size = 0
        return [(Line(_clean(joined), self._held_start, line.end), self._held_stamp)]
