"""One host's events on their way from its link to the store.

The link hands over a chunk of the stream at a time (:data:`console.link.EventCallback`);
the host's ingest loop takes them in batches, one store transaction each. Passing lists
instead of single events through an ``asyncio.Queue`` keeps a flood from costing the event
loop a queue operation, a wake-up and a ``task_done`` per line. The feed is bounded: once
``limit`` events wait, the link waits for the store, so a slow disk holds the stream back
instead of filling memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from agent.wire import Start
from console.storable import Received

Pending = Received | Start


class IngestFeed:
    """Events a link read and the store has not yet taken, in stream order."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending: list[Pending] = []
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def put(self, events: Sequence[Pending]) -> None:
        """Queue ``events``; returns once fewer than ``limit`` wait (the store caught up)."""
        if not events:
            return
        self._pending.extend(events)
        self._idle.clear()
        self._arrived.set()
        if len(self._pending) >= self._limit:
            self._room.clear()
            await self._room.wait()

    async def arrived(self) -> None:
        """Wait until at least one event is pending."""
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()

    def take(self, most: int) -> list[Pending]:
        """The oldest ``most`` pending events; call :meth:`done` once they are handled."""
        batch = self._pending[:most]
        del self._pending[:most]
        if len(self._pending) < self._limit:
            self._room.set()
        return batch

    def done(self) -> None:
        """The batch last taken is handled (stored or reported)."""
        if not self._pending:
            self._idle.set()

    async def join(self) -> None:
        """Wait until every event put so far has been taken and handled."""
        await self._idle.wait()
