"""When queued fix attempts may start: the daily budget and Claude's rate limits.

Attempts that cannot start now stay queued (their state does not change and nothing is
marked failed); the fix workers wait here before taking one. The gate opens again on its
own (after the rate limit's reset time, at the next UTC midnight) or when the budget is
raised and the config reloaded. Every change of what holds the queue is published as a
:class:`QueueHold` for the header, the queue and Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BACKOFF_FIRST_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 1800.0


@dataclass(frozen=True)
class QueueHold:
    """What today's attempts cost and what, if anything, keeps new ones from starting."""

    spent_today_usd: float
    daily_budget_usd: float
    rate_limited_until: float | None = None  # epoch seconds
    rate_limit_reason: str | None = None

    @property
    def over_budget(self) -> bool:
        return self.spent_today_usd >= self.daily_budget_usd

    @property
    def held(self) -> bool:
        return self.over_budget or self.rate_limited_until is not None


def utc_day(now: float) -> str:
    """The UTC day of an epoch time as the store writes it (``YYYY-MM-DD``)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def next_midnight(now: float) -> float:
    """Epoch seconds of the next UTC midnight, when a new day's budget begins."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


def clock_text(epoch: float) -> str:
    """A resume time for a person, in the machine's local time (``14:05``)."""
    return time.strftime("%H:%M", time.localtime(epoch))


class QueueGate:
    """Holds the fix workers while the day's budget is spent or Claude is rate-limited.

    ``spent_today`` reads today's recorded cost from the store; ``publish`` receives every
    new :class:`QueueHold`. ``clock`` is epoch seconds (the tests move it).
    """

    def __init__(
        self,
        daily_budget_usd: float,
        *,
        spent_today: Callable[[str], Awaitable[float]],
        publish: Callable[[QueueHold], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The first back-off when the CLI gave no reset time; doubled per refused run.
        self.backoff_seconds = BACKOFF_FIRST_SECONDS
        self._budget = daily_budget_usd
        self._spent_today = spent_today
        self._publish = publish
        self._clock = clock
        self._limited_until: float | None = None
        self._limit_reason: str | None = None
        self._limited_runs = 0
        self._changed = asyncio.Event()
        self.hold = QueueHold(0.0, daily_budget_usd)

    async def refresh(self) -> QueueHold:
        """Re-read today's cost and publish the hold if anything about it changed."""
        now = self._clock()
        if self._limited_until is not None and now >= self._limited_until:
            self._limited_until = self._limit_reason = None
        spent = await self._spent_today(utc_day(now))
        hold = QueueHold(spent, self._budget, self._limited_until, self._limit_reason)
        if hold != self.hold:
            self.hold = hold
            self._publish(hold)
        return hold

    async def wait_open(self) -> None:
        """Return once an attempt may start; until then wake at the reset time, at UTC
        midnight, or when :meth:`poke` says something changed."""
        while True:
            hold = await self.refresh()
            if not hold.held:
                return
            now = self._clock()
            until = hold.rate_limited_until or next_midnight(now)
            if hold.over_budget:
                until = max(until, next_midnight(now))
            self._changed.clear()
            # asyncio.timeout, not wait_for, which on Python 3.11 swallows a cancellation
            # that meets a poke, leaving a stopped worker waiting here until midnight.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, until - now)):
                    await self._changed.wait()

    def poke(self) -> None:
        """Something the hold depends on changed (an attempt's cost, the config)."""
        self._changed.set()

    def set_budget(self, daily_budget_usd: float) -> None:
        """A reloaded config's budget; waiting workers look again."""
        self._budget = daily_budget_usd
        self.poke()

    def rate_limited(self, resets_at: float | None, reason: str) -> float:
        """Claude refused for its rate limit: hold the queue until ``resets_at`` when the
        CLI said, else for a back-off that doubles with each refused run in a row.
        Returns the time the queue resumes."""
        now = self._clock()
        if resets_at is None or resets_at <= now:
            backoff = self.backoff_seconds * 2 ** min(self._limited_runs, 10)
            resets_at = now + min(BACKOFF_MAX_SECONDS, backoff)
        self._limited_runs += 1
        self._limited_until = max(resets_at, self._limited_until or 0.0)
        self._limit_reason = reason
        self.poke()
        return self._limited_until

    def ran(self) -> None:
        """An attempt got through to Claude: the back-off starts over next time."""
        self._limited_runs = 0
        self.poke()
