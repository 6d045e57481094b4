"""Fetching updates from Telegram so that nothing it sends can stop polling or make it spin.

python-telegram-bot's ``Updater`` is not used. It takes the next offset from the last update
it could parse: a ``getUpdates`` entry it cannot parse (a message without ``date``, a
``null``, ``"message": "hello"``) makes it log "Received data was *not* processed!" and
fetch the same batch again at once, forever, and an ``update_id`` that is a string raises
outside its retry loop and ends polling silently. Patching the data it sees would still
leave its polling task private and unsupervised. So this loop owns polling and uses the
library for the rest: ``Bot.do_api_request`` for the call (HTTP, timeouts, ``RetryAfter``,
``Conflict``, ``InvalidToken``) and the ``Application``'s queue for handling updates.

What holds here:

- every entry of a batch is read on its own (:func:`read_batch`); an unreadable one is
  skipped with a warning (rate limited) and the offset moves past it all the same;
- a poll that brought nothing new and came back early is followed by a growing wait, so
  the loop never asks again without waiting;
- any failure is reported with the time of the next try and waited out with back-off;
  polling never ends while the bot is on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import Bot, Update
from telegram.error import Conflict, EndPointNotFound, InvalidToken, RetryAfter, TelegramError
from telegram.warnings import PTBUserWarning

from console.telegram.delivery import retry_after_seconds
from console.telegram.throttle import Throttle

log = logging.getLogger(__name__)

BATCH_LIMIT = 100
READ_SLACK_SECONDS = 10.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# Telegram's update ids are positive 32-bit-range integers; anything else is not an id.
MAX_UPDATE_ID = 2**53
SKIP_WARNINGS_PER_MINUTE = 5
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)


@dataclass(frozen=True)
class Skipped:
    """One ``getUpdates`` entry that could not be read, and why (for the warning)."""

    position: int
    update_id: int | None  # its own id, or the one inferred from its neighbours
    reason: str
    digest: str  # of the entry as received: one that comes back is not warned about again


@dataclass(frozen=True)
class Batch:
    """A ``getUpdates`` result read entry by entry: what to handle, what was skipped, and
    the offset that confirms all of it (None when nothing in it or before it gives one)."""

    updates: tuple[Update, ...]
    skipped: tuple[Skipped, ...]
    next_offset: int | None


def _own_id(entry: object) -> int | None:
    if not isinstance(entry, dict):
        return None
    value = entry.get("update_id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_UPDATE_ID:
        return None
    return value


def _digest(entry: object) -> str:
    return hashlib.sha256(repr(entry).encode("utf-8", "replace")).hexdigest()[:16]


def _why(entry: object, exc: Exception | None) -> str:
    if not isinstance(entry, dict):
        return f"an entry that is {type(entry).__name__}, not an object"
    if exc is None:
        return "its update_id is missing or not a positive integer"
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def read_batch(raw: object, offset: int, bot: Bot | None) -> Batch:
    """Read a ``getUpdates`` result without ever raising.

    Update ids increase by one from update to update, so an entry without a usable id of its
    own sits at one more than the entry before it (or at ``offset`` when it comes first);
    the returned offset is one past the highest id in the batch, read or inferred. Only
    when nothing in the batch has an id and no offset was asked for is there no offset to
    give: then nothing is confirmed and the entries come back on the next poll.
    """
    if not isinstance(raw, list):
        raise TypeError(f"getUpdates returned {type(raw).__name__}, not a list")
    hard: int | None = offset - 1 if offset > 0 else None  # the last id seen, or asked past
    top = hard  # the same, or higher where ids were inferred
    unplaced = 0  # entries without an id before the first one that has one
    updates: list[Update] = []
    skipped: list[Skipped] = []
    for position, entry in enumerate(raw):
        own = _own_id(entry)
        if own is not None and hard is not None and own <= hard:
            why = f"update_id {own} repeats or goes back"
            skipped.append(Skipped(position, own, why, _digest(entry)))
            continue
        problem: Exception | None = None
        update: Update | None = None
        if own is not None:
            try:
                update = Update.de_json(entry, bot)  # type: ignore[arg-type]
            except Exception as exc:  # any shape the library chokes on
                problem = exc
        if own is None:
            if top is None:
                unplaced += 1
                skipped.append(Skipped(position, None, _why(entry, problem), _digest(entry)))
            else:
                top += 1
                skipped.append(Skipped(position, top, _why(entry, problem), _digest(entry)))
            continue
        if unplaced:  # they sat just below the first id
            skipped[-unplaced:] = [
                dataclasses.replace(s, update_id=own - unplaced + i)
                for i, s in enumerate(skipped[-unplaced:])
            ]
            unplaced = 0
        hard = own
        top = own if top is None else max(top, own)
        if update is None:
            skipped.append(Skipped(position, own, _why(entry, problem), _digest(entry)))
        else:
            updates.append(update)
    return Batch(tuple(updates), tuple(skipped), None if top is None else top + 1)


async def fetch_raw(bot: Bot, params: dict[str, Any], *, read_timeout: float) -> object:
    """``getUpdates`` as Telegram answered it, before the library parses any of it."""
    # do_api_request suggests Bot.get_updates, whose all-or-nothing parsing is avoided here.
    warnings.filterwarnings(
        "ignore", message=r"Please use 'Bot\.getUpdates'", category=PTBUserWarning
    )
    return await bot.do_api_request("getUpdates", api_kwargs=params, read_timeout=read_timeout)


@dataclass(frozen=True)
class PollState:
    """What the header shows: ``on`` while polls succeed, ``error`` with the reason and the
    seconds until the next try while they fail."""

    state: str
    detail: str | None = None
    failures: int = 0


class Poller:
    """Long-polls ``getUpdates`` and hands each readable update to ``dispatch``."""

    def __init__(
        self,
        bot: Bot,
        dispatch: Callable[[Update], Awaitable[None]],
        on_state: Callable[[PollState], None],
        on_skipped: Callable[[str], None],
        *,
        timeout: float,
        backoff: float = BACKOFF_FIRST_SECONDS,
        backoff_max: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self._bot = bot
        self._dispatch = dispatch
        self._on_state = on_state
        self._on_skipped = on_skipped
        self._timeout = max(1, int(timeout))
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._skip_warnings = Throttle(60.0, burst=SKIP_WARNINGS_PER_MINUTE)
        self._unconfirmed: set[tuple[int, str]] = set()  # (position, digest) warned about
        self.offset = 0

    async def fetch(self, timeout: int, *, limit: int = BATCH_LIMIT) -> object:
        """One raw ``getUpdates`` call from the current offset."""
        params: dict[str, Any] = {
            "timeout": timeout,
            "limit": limit,
            "allowed_updates": list(ALLOWED_UPDATES),
        }
        if self.offset > 0:
            params["offset"] = self.offset
        return await fetch_raw(self._bot, params, read_timeout=timeout + READ_SLACK_SECONDS)

    async def run(self) -> None:
        """Poll until cancelled; nothing Telegram sends or does ends this loop."""
        failures = 0
        quiet = 0  # polls in a row that came back early with nothing new
        while True:
            started = time.monotonic()
            try:
                raw = await self.fetch(self._timeout)
                batch = read_batch(raw, self.offset, self._bot)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                seconds = max(retry_after_seconds(exc), self._backoff)
                self._on_state(PollState("error", f"polling rate limited, retry in {seconds:.0f}s"))
                await asyncio.sleep(seconds)
                continue
            except Exception as exc:
                failures += 1
                delay = min(self._backoff * 2 ** (failures - 1), self._backoff_max)
                self._on_state(PollState("error", describe_failure(exc, delay), failures))
                if not isinstance(exc, TelegramError):
                    log.warning("telegram: polling failed", exc_info=exc)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._on_state(PollState("on"))
            moved = batch.next_offset is not None and batch.next_offset != self.offset
            for skipped in batch.skipped:
                self._warn(skipped)
            if batch.next_offset is not None:
                self.offset = batch.next_offset
            for update in batch.updates:
                await self._dispatch(update)
            if batch.updates or moved:
                quiet = 0
                continue
            if time.monotonic() - started < self._timeout / 2:
                quiet += 1
                await asyncio.sleep(min(self._backoff * 2 ** (quiet - 1), self._backoff_max))

    async def confirm(self) -> None:
        """Tell Telegram that everything fetched so far was handled (on the way out)."""
        if self.offset > 0:
            await self.fetch(0, limit=1)

    def _warn(self, skipped: Skipped) -> None:
        # Entries no offset could confirm come back at the head of the next batch: they
        # were warned about when first seen, not again until they are placed.
        key = (skipped.position, skipped.digest)
        if key in self._unconfirmed:
            if skipped.update_id is not None:
                self._unconfirmed.discard(key)
            return
        if skipped.update_id is None:
            self._unconfirmed.add(key)
        if not self._skip_warnings.allow():
            return
        where = f"update {skipped.update_id}" if skipped.update_id else "an update"
        more = self._skip_warnings.take_suppressed()
        also = f" ({more} more skipped without a warning)" if more else ""
        self._on_skipped(
            f"Telegram: skipped {where} that could not be read ({skipped.reason}){also}"
        )


def describe_failure(exc: Exception, delay: float) -> str:
    """The header's words for a failed poll: when it tries again, then why, briefly."""
    if isinstance(exc, InvalidToken | EndPointNotFound):
        # do_api_request reports a refused token as an unknown endpoint once initialized;
        # getUpdates always exists.
        reason = "the bot token was refused"
    elif isinstance(exc, Conflict):
        reason = "another program is polling this bot"
    elif isinstance(exc, TelegramError):
        reason = exc.message
    else:
        reason = f"{type(exc).__name__}: {exc}"
    wait = f"{delay:.1f}" if delay < 10 else f"{delay:.0f}"
    return f"polling retry in {wait}s: {reason}"
