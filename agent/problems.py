"""Operator messages about bad input, at most one line per source and kind per interval.

A log full of lines the agent cannot use would otherwise write one stderr line for each
of them, and journald would rate-limit the agent itself into silence. The first problem of
a kind is said at once; later ones within the interval are counted and said as one line
when the interval is over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INTERVAL = 60.0


@dataclass
class _Kind:
    said_at: float
    held: int = 0
    last: str = ""


class ProblemLog:
    """Rate-limited problem reports; ``write`` gets finished lines."""

    def __init__(
        self,
        write: Callable[[str], None],
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._interval = interval
        self._clock = clock
        self._kinds: dict[tuple[str, str], _Kind] = {}

    def report(self, source: str, kind: str, detail: str, count: int = 1) -> None:
        """``count`` problems of ``kind`` in ``source``; ``detail`` describes the latest."""
        now = self._clock()
        state = self._kinds.get((source, kind))
        if state is None or now - state.said_at >= self._interval:
            held = state.held if state is not None else 0
            self._kinds[(source, kind)] = _Kind(said_at=now)
            more = f" (and {held} more since the last report)" if held else ""
            self._write(f"{source}: {detail}{more}")
            return
        state.held += count
        state.last = detail

    def flush(self) -> None:
        """Say what was held back for kinds whose interval is over."""
        now = self._clock()
        for (source, kind), state in list(self._kinds.items()):
            if state.held and now - state.said_at >= self._interval:
                self._write(
                    f"{source}: {state.held} more like that in the last "
                    f"{self._interval:g}s; the latest: {state.last}"
                )
                self._kinds[(source, kind)] = _Kind(said_at=now)
