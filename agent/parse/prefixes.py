"""What comes before a log line's own text: process-manager tags, timestamps, sources.

Prefixes are removed one after another from the start of a line, in whichever order a
source writes them: PM2's ``0|app  |``, ISO timestamps (bare or bracketed), syslog's
``Dec 01 08:40:42`` and journald's ``host program[pid]:`` after it, time-only
``[08:42:26.443]``, ``11/23/2026, 10:00:00 AM`` and NestJS's ``[Nest] 1234  -``. Level words
and what follows them (``[ERROR] category -``, ``ERROR (pid):``) are read by the level-line
recognizer; colour escapes are gone before (see ``agent.lines.printable``).

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
    """``stamp`` (a UTC time) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Every record's time goes through here, and ``isoformat`` is about three times cheaper
    than ``strftime``; it pads a year before 1000 to four digits where ``strftime`` does
    not, so those keep the ``strftime`` text they always had.
    """
    if stamp.year < 1000:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return stamp.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_SYSLOG = re.compile(
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?P<day>[ \d]\d) "
    r"(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)(?:\.(?P<frac>\d{1,9}))? "
)
# journald's "host program[pid]: " after its timestamp (-o short, -o short-iso).
_SYSLOG_SOURCE = re.compile(r"[\w.-]+ [\w.@/-]+(?:\[\d+\])?: |[\w.@/-]+\[\d+\]: ")
_ISO_SOURCE = re.compile(r"[\w.-]+ [\w.@/-]+\[\d+\]: ")
_US_DATE = re.compile(
    r"(?P<mon>\d\d?)/(?P<day>\d\d?)/(?P<year>\d{4}),? "
    r"(?P<h>\d\d?):(?P<m>\d\d):(?P<s>\d\d)(?: ?(?P<half>[AP]M))?\s+"
)
_TIME_ONLY = re.compile(r"\[\d\d:\d\d:\d\d(?:[.,]\d{1,9})?\]:? ")
_NEST = re.compile(r"\[Nest\] \d+\s+-\s+")
_STARTS = frozenset("0123456789[JFMASOND")


def _syslog_stamp(match: re.Match[str]) -> Stamp:
    """Syslog times carry no year: the current one, or the last if that is in the future."""
    now = datetime.now(UTC)
    month, day = _MONTHS[match["mon"]], int(match["day"])
    year = now.year - 1 if (month, day) > (now.month, now.day + 1) else now.year
    parts = (match["h"], match["m"], match["s"], match["frac"])
    return (str(year), f"{month:02d}", f"{day:02d}", *parts, None)


def _us_stamp(match: re.Match[str]) -> Stamp:
    hour = int(match["h"])
    if match["half"] == "PM" and hour < 12:
        hour += 12
    elif match["half"] == "AM" and hour == 12:
        hour = 0
    month, day = f"{int(match['mon']):02d}", f"{int(match['day']):02d}"
    return (match["year"], month, day, f"{hour:02d}", match["m"], match["s"], None, None)


def _one_prefix(body: str, first: bool) -> tuple[int, Stamp, bool]:
    """(length, timestamp) of the prefix at the start of ``body``, (0, None) for none.

    The third value says whether it was a timestamp (which keeps the last one found).
    """
    lead = body[:1]
    if lead.isdigit():
        if first:
            match = _PM2_ID.match(body)
            if match:
                return match.end(), None, False
        match = _TIMESTAMP.match(body)
        if match:
            end = match.end()
            source = _ISO_SOURCE.match(body, end)
            return (source.end() if source else end), match.groups(), True
        us = _US_DATE.match(body)
        if us:
            return us.end(), _us_stamp(us), True
    elif lead == "[":
        match = _TIMESTAMP.match(body)
        if match:
            return match.end(), match.groups(), True
        time_only = _TIME_ONLY.match(body)
        if time_only:
            return time_only.end(), None, False
        nest = _NEST.match(body)
        if nest:
            return nest.end(), None, False
    elif lead in _STARTS:
        syslog = _SYSLOG.match(body)
        if syslog:
            end = syslog.end()
            source = _SYSLOG_SOURCE.match(body, end)
            return (source.end() if source else end), _syslog_stamp(syslog), True
    return 0, None, False


def split_prefix(text: str) -> tuple[str, Stamp]:
    """The line body after its prefixes, and the last timestamp's groups.

    PM2 ``--time`` and the app's own timestamp can both be present; the last one wins
    because the app's own is usually the more precise.
    """
    if text[:1] not in _STARTS:
        return text, None
    body = text
    stamp: Stamp = None
    for step in range(4):
        length, found, timed = _one_prefix(body, step == 0)
        if not length:
            break
        body = body[length:]
        if timed:
            stamp = found
    return body, stamp


def strip_prefix(text: str) -> tuple[str, str | None]:
    """Remove a line's prefixes; return the line body and the UTC timestamp."""
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
        try:
            # Inside the try: an integer of 400 digits overflows the division itself.
            seconds = value / 1000 if value > 1e11 else value
            return format_time(datetime.fromtimestamp(seconds, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        match = _TIMESTAMP.match(value.strip())
        return iso(match.groups()) if match else None
    return None
