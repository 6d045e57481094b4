"""At most a few of something per key per period, in bounded memory.

Anyone can write to a bot, so everything it does in answer to strangers or to broken input
(a refusal, a "does not work in this chat", a warning about an unreadable update) is
throttled here: per user, per chat or per kind of problem. Memory is bounded too: when
``max_keys`` keys are remembered and none has expired, a new key is denied rather than let
through, so a flood of fresh user ids can never get more than the limit says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Window:
    started: float
    used: int
    suppressed: int = 0


class Throttle:
    """``allow(key)`` is True for at most ``burst`` calls per ``period`` seconds per key."""

    def __init__(
        self,
        period: float,
        *,
        burst: int = 1,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if period <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("a throttle needs a positive period, burst and key count")
        self._period = period
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._windows: dict[Hashable, _Window] = {}

    def allow(self, key: Hashable = None) -> bool:
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and now - window.started >= self._period:
            window.started, window.used = now, 0
        if window is None:
            if len(self._windows) >= self._max_keys:
                self._forget_expired(now)
            if len(self._windows) >= self._max_keys:
                return False
            window = self._windows[key] = _Window(now, 0)
        if window.used < self._burst:
            window.used += 1
            return True
        window.suppressed += 1
        return False

    def take_suppressed(self, key: Hashable = None) -> int:
        """How many calls for ``key`` were denied since the last time this was asked."""
        window = self._windows.get(key)
        if window is None:
            return 0
        count, window.suppressed = window.suppressed, 0
        return count

    def _forget_expired(self, now: float) -> None:
        expired = [k for k, w in self._windows.items() if now - w.started >= self._period]
        for key in expired:
            del self._windows[key]
