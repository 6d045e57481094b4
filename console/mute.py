"""Reading how long to mute from what a person typed: a duration ("30m", "2h", "1h30m",
"off") for Telegram's ``/mute``, and for one error's mute (the console's ``m``) a duration
and/or a number of further occurrences ("50x"), whichever ends first."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MUTE_SECONDS = 7 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PIECE = re.compile(r"(\d{1,6})\s*([smhd])")
_COUNT = re.compile(r"(\d{1,7})\s*(?:x|more|occurrences?)", re.I)
_SEPARATORS = re.compile(r"\s*(?:,|\bor\b|\band\b|\s)\s*", re.I)
MAX_MUTE_OCCURRENCES = 1_000_000


class DurationError(ValueError):
    """Text that is not a duration; the message says how to write one."""


def parse_duration(text: str) -> float | None:
    """Seconds to mute for, or None for "off"; a clear :class:`DurationError` otherwise."""
    cleaned = text.strip().lower()
    if cleaned in ("off", "0", "none", "unmute"):
        return None
    if not cleaned:
        raise DurationError("say how long, e.g. /mute 30m, /mute 2h or /mute off")
    pos = 0
    total = 0
    for match in _PIECE.finditer(cleaned):
        if cleaned[pos : match.start()].strip():
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or cleaned[pos:].strip():
        raise DurationError(
            f"could not read {text.strip()[:40]!r} as a duration; use e.g. 30m, 2h, 1d or off"
        )
    if total <= 0:
        raise DurationError("the duration must be longer than zero (or say off)")
    if total > MAX_MUTE_SECONDS:
        raise DurationError("mute for at most 7 days")
    return float(total)


def describe(seconds: float) -> str:
    """A duration in the largest units that keep it exact enough to read: "2h 30m"."""
    seconds = int(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(out[:2]) or "0s"


@dataclass(frozen=True)
class MuteFor:
    """One error's mute: ``minutes`` and/or ``occurrences`` more, whichever ends first."""

    minutes: float | None = None
    occurrences: int | None = None

    def __str__(self) -> str:
        parts = [describe(self.minutes * 60)] if self.minutes is not None else []
        if self.occurrences is not None:
            parts.append(f"{self.occurrences} more occurrence(s)")
        return " or ".join(parts)


def parse_mute(text: str) -> MuteFor:
    """A duration, a count of further occurrences ("50x", "50 more"), or both ("2h or
    50x"); a clear :class:`DurationError` for anything else."""
    cleaned = text.strip()
    counts = list(_COUNT.finditer(cleaned))
    if len(counts) > 1:
        raise DurationError("give one number of occurrences, e.g. 50x")
    occurrences = None
    if counts:
        occurrences = int(counts[0].group(1))
        cleaned = (cleaned[: counts[0].start()] + " " + cleaned[counts[0].end() :]).strip()
        if not 0 < occurrences <= MAX_MUTE_OCCURRENCES:
            raise DurationError(f"mute for 1 to {MAX_MUTE_OCCURRENCES:,} more occurrences")
    cleaned = _SEPARATORS.sub(" ", cleaned).strip()
    if not cleaned:
        if occurrences is None:
            raise DurationError("say how long or how many more, e.g. 30m, 2h, 50x or 2h or 50x")
        return MuteFor(occurrences=occurrences)
    seconds = parse_duration(cleaned.replace(" ", ""))
    if seconds is None:
        raise DurationError("to end a mute, unmute the error (its mute key again)")
    return MuteFor(minutes=seconds / 60, occurrences=occurrences)
