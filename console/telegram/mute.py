"""Reading ``/mute`` durations ("30m", "2h", "1h30m", "off") from a person's message."""

from __future__ import annotations

import re

MAX_MUTE_SECONDS = 7 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PIECE = re.compile(r"(\d{1,6})\s*([smhd])")


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
