"""Answers to people and chats the bot does not serve, sent on a lane of their own.

Strangers can write as often and as many as they like; the owner's cards and answers must
not wait behind the replies to them, nor share Telegram's send budget with them. So each
stranger is answered at most once per ``period`` and each chat the bot does not work in hears
so at most once per ``period`` (both :class:`~console.telegram.throttle.Throttle`), and those
answers are queued here and sent one at a time, ``spacing`` seconds apart, by one task. When
the queue is full an answer is dropped (the person already got or will get one soon).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from console.telegram.delivery import Delivery
from console.telegram.tasks import stop_task

log = logging.getLogger(__name__)

REFUSAL_PERIOD_SECONDS = 3600.0
REFUSAL_SPACING_SECONDS = 0.1  # at most 10 a second: well under Telegram's 30 per second
REFUSAL_QUEUE = 200


class RefusalLane:
    """A bounded queue of low-priority sends, drained at a fixed pace."""

    def __init__(
        self,
        delivery: Delivery,
        *,
        spacing: float = REFUSAL_SPACING_SECONDS,
        capacity: int = REFUSAL_QUEUE,
    ) -> None:
        self._delivery = delivery
        self._spacing = spacing
        self._queue: asyncio.Queue[tuple[str, Callable[[], Awaitable[Any]]]] = asyncio.Queue(
            capacity
        )
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def offer(self, what: str, call: Callable[[], Awaitable[Any]]) -> bool:
        """Queue a send; False (and nothing sent) when the lane is full."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="telegram-refusals")
        try:
            self._queue.put_nowait((what, call))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _drain(self) -> None:
        while True:
            what, call = await self._queue.get()
            await self._delivery.run(what, call)
            await asyncio.sleep(self._spacing)
