"""Another console's running attempt, followed line by line through the shared store.

The console running an attempt shows Claude's stream as it parses it; the others on a
shared store learn of new transcript lines from the store's announcements and read them
here: each followed attempt keeps how many lines were read and its own parser (which
remembers the worktree, for paths shown relative to it), so every line becomes events
once, in order, whatever the number of announcements.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from console.fix.transcript import Event, StreamParser
from console.store import Store

# Attempts followed at once; the least recently announced one is forgotten beyond this
# (it is read from its first line again should it be announced once more).
FOLLOWED = 32


@dataclass
class _Followed:
    read: int = 0  # the transcript's seqs run 1..n, so this is also the last seq read
    parser: StreamParser = field(default_factory=StreamParser)


class TranscriptFeed:
    """The new events of followed attempts' transcripts (see the module docstring)."""

    def __init__(self, store: Store, limit: int = FOLLOWED) -> None:
        self._store = store
        self._limit = limit
        self._followed: OrderedDict[int, _Followed] = OrderedDict()

    async def new_events(self, attempt_id: int) -> list[Event]:
        """The events of the lines ``attempt_id`` gained since the last call for it (all of
        its lines the first time)."""
        followed = self._followed.get(attempt_id)
        if followed is None:
            followed = self._followed[attempt_id] = _Followed()
            while len(self._followed) > self._limit:
                self._followed.popitem(last=False)
        else:
            self._followed.move_to_end(attempt_id)
        lines = await self._store.transcript(attempt_id, after_seq=followed.read)
        followed.read += len(lines)
        return [event for line in lines for event in followed.parser.feed(line)]
