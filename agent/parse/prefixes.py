"""What comes before a log line's own text: process-manager tags and timestamps.

A timestamp is kept as its regex groups while a line is looked at and turned into ISO
text only for lines that end up in a record.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

_PM2_ID = re.compile(r"\d+\|[^|]{1,64}\|\s?")
_TIMESTAMP = re.compile(
    r"\[?(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?"
    r"\s?(Z|[+-]\d\d:?\d\d|UTC)?\]?:?(?: |$)"
)

# The timestamp's regex groups, or None for a line without one.
Stamp = tuple[str | None, ...] | None


def iso(groups: tuple[str | None, ...]) -> str | None:
    """The UTC ISO 8601 text of a timestamp's groups, or None when it is no real time."""
    year, month, day, hour, minute, second, fraction, zone = groups
    try:
        stamp = datetime(
            int(year or 0),
            int(month or 0),
            int(day or 0),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if zone and zone not in ("Z", "UTC"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
        stamp = stamp.replace(tzinfo=timezone(sign * offset)).astimezone(UTC)
    return format_time(stamp)


def format_time(stamp: datetime) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def split_prefix(text: str) -> tuple[str, Stamp]:
    """The line body after PM2 and timestamp prefixes, and the last timestamp's groups."""
    body = text
    stamp: Stamp = None
    if text[:1].isdigit() or text[:1] == "[":
        match = _PM2_ID.match(body)
        if match:
            body = body[match.end() :]
        for _ in range(2):
            match = _TIMESTAMP.match(body)
            if not match:
                break
            stamp = match.groups()
            body = body[match.end() :]
    return body, stamp


def strip_prefix(text: str) -> tuple[str, str | None]:
    """Remove PM2 and timestamp prefixes; return the line body and the UTC timestamp.

    PM2 ``--time`` and the app's own timestamp can both be present; the last one wins
    because the app's own is usually the more precise.
    """
    body, stamp = split_prefix(text)
    return body, iso(stamp) if stamp else None


def stamp_of(text: str) -> Stamp:
    """The groups of a timestamp that is the whole of ``text`` (an envelope's time field)."""
    match = _TIMESTAMP.match(text.strip())
    return match.groups() if match else None


def json_time(value: Any) -> str | None:
    """A JSON log's time field (epoch seconds or milliseconds, or ISO text) as ISO UTC."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return format_time(datetime.fromtimestamp(seconds, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        match = _TIMESTAMP.match(value.strip())
        return iso(match.groups()) if match else None
    return None
