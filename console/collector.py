"""Full garbage collections at moments no key press waits on.

Textual's strips cache themselves (a strip already the size asked for is its own cached
crop), so nearly every line the console paints becomes a reference cycle that only the
collector frees, and under a flood of engine events thousands of them reach the oldest
generation. CPython then runs a full collection about every two seconds; each walks
every object younger than the freeze at load (~40,000 in the flood benchmark) and
stalls the loop 30-50 ms, so the key press it lands on waits that much longer than the
others: it was the slowest press of most benchmark runs.

:class:`CollectionPacing` keeps the young generations automatic (they are cheap) and
takes the full collections over: one runs shortly after a key press, once the frame
answering it has been painted (the next press is a human interval away), or when nobody
has pressed a key for a moment, and never less often than :data:`LONGEST_SECONDS`, so
memory stays bounded whatever the keyboard does. A full collection is due only once
CPython itself would consider one (its oldest-generation count past its threshold).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

# No automatic full collection: the pacing below starts them.
_NEVER = 1 << 30
# Nobody pressed a key this long ago: a full collection meets no press.
QUIET_SECONDS = 0.5
# Full collections at most this often when they are due (CPython's own rhythm under a
# flood was about two seconds).
EVERY_SECONDS = 1.0
# And at least this often while they are due, even if keys never stop (a key held down).
LONGEST_SECONDS = 10.0


class CollectionPacing:
    """Starts full collections between key presses; :meth:`start` at load, :meth:`stop`
    when the app ends (the thresholds before are given back)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._thresholds: tuple[int, int, int] | None = None
        self._last_key = float("-inf")
        self._keys = 0
        self._last_full = clock()
        self.full_collections = 0

    @property
    def running(self) -> bool:
        return self._thresholds is not None

    def start(self) -> None:
        if self._thresholds is not None:
            return
        self._thresholds = gc.get_threshold()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, _NEVER)
        self._last_full = self._clock()

    def stop(self) -> None:
        if self._thresholds is None:
            return
        gc.set_threshold(*self._thresholds)
        self._thresholds = None

    def key_pressed(self) -> None:
        """A key arrived: no full collection until it has been answered."""
        self._last_key = self._clock()
        self._keys += 1

    @property
    def latest_key(self) -> int:
        """The number of the latest press, for :meth:`key_answered`."""
        return self._keys

    def key_answered(self, key: int) -> None:
        """The frame answering press ``key`` has been painted: the moment for a due
        collection, unless another key has come since."""
        latest = key == self._keys
        self._collect_if(latest and self._clock() - self._last_full >= EVERY_SECONDS)

    def tick(self) -> None:
        """Called on the app's periodic timer: collect when the keyboard is quiet, or when
        the longest interval is up."""
        now = self._clock()
        since_full = now - self._last_full
        quiet = now - self._last_key >= QUIET_SECONDS
        self._collect_if((quiet and since_full >= EVERY_SECONDS) or since_full >= LONGEST_SECONDS)

    def _due(self) -> bool:
        assert self._thresholds is not None
        return gc.get_count()[2] >= self._thresholds[2]

    def _collect_if(self, moment: bool) -> None:
        if self._thresholds is None or not moment or not self._due():
            return
        gc.collect(2)
        self.full_collections += 1
        self._last_full = self._clock()
