"""Polling that survives whatever getUpdates returns, with the real python-telegram-bot.

The Bot API stand-in serves raw entries of any shape in a real ``getUpdates`` long poll and
numbers them as Telegram does, so a test can see whether the offset moved past an entry
(it is then never served again) and count how often the bot asked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram.error import Conflict

from console.telegram.poller import describe_failure, read_batch
from console.widgets.header import telegram_text
from tests.telegram_api import OWN_NUMBER, TelegramApi
from tests.telegram_phone import OWNER, BotPhone

HELP_REPLY = "AutoFix tells you"
QUEUE_REPLY = "Queue Status"


def command(api: TelegramApi, text: str, user: int = OWNER) -> dict[str, Any]:
    return {"update_id": OWN_NUMBER, "message": api.message_json(user, text)}


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


UNREADABLE: dict[str, Callable[[TelegramApi], Any]] = {
    "a message without date": lambda api: {
        "update_id": OWN_NUMBER,
        "message": without(api.message_json(OWNER, "/help"), "date"),
    },
    "an update without update_id": lambda api: {"message": api.message_json(OWNER, "/help")},
    "a message that is a string": lambda api: {"update_id": OWN_NUMBER, "message": "hello"},
    "a date that is a word": lambda api: {
        "update_id": OWN_NUMBER,
        "message": {**api.message_json(OWNER, "/help"), "date": "yesterday"},
    },
    "a null entry": lambda api: None,
    "a bare number": lambda api: 12345,
    "an update_id that is a string": lambda api: {
        "update_id": "4711",
        "message": api.message_json(OWNER, "/help"),
    },
}


def skip_notices(phone: BotPhone) -> list[str]:
    return [n.text for n in phone.notices() if "could not be read" in n.text]


@pytest.mark.parametrize("case", list(UNREADABLE))
async def test_an_unreadable_update_between_two_commands_is_skipped_once_and_both_are_answered(
    bot_phone: BotPhone, case: str
) -> None:
    api = bot_phone.api
    _, bad_number, _ = api.push_raw(
        command(api, "/help"), UNREADABLE[case](api), command(api, "/queue")
    )
    await bot_phone.reply_containing(HELP_REPLY)
    await bot_phone.reply_containing(QUEUE_REPLY)
    await bot_phone.until(lambda: api.pending_updates() == 0, what="the batch to be confirmed")
    asked = len(api.calls_to("getUpdates"))
    await asyncio.sleep(1.5)  # long polls of 1 s: a loop re-fetching the batch would show
    [notice] = skip_notices(bot_phone)
    assert f"skipped update {bad_number} that could not be read" in notice
    assert len(api.calls_to("getUpdates")) - asked <= 4
    assert bot_phone.bot.state == "on"
    assert sum(HELP_REPLY in t for t in bot_phone.texts()) == 1, "the broken /help did nothing"


async def test_an_unreadable_update_at_the_end_of_a_batch_is_confirmed_too(
    bot_phone: BotPhone,
) -> None:
    api = bot_phone.api
    api.push_raw(command(api, "/help"), None, {"update_id": "x"})
    await bot_phone.reply_containing(HELP_REPLY)
    await bot_phone.until(lambda: api.pending_updates() == 0, what="the batch to be confirmed")
    await asyncio.sleep(1.2)
    assert len(skip_notices(bot_phone)) == 2
    api.send_text(OWNER, "/queue")
    await bot_phone.reply_containing(QUEUE_REPLY)
    assert len(skip_notices(bot_phone)) == 2


async def test_unreadable_entries_with_no_id_to_go_by_are_waited_on_not_spun_on(
    bot_phone: BotPhone,
) -> None:
    """First thing after start (no offset yet) and no id anywhere: nothing can be confirmed,
    so the bot asks again only after a growing wait, warns once, and the first readable
    update after them confirms them all."""
    api = bot_phone.api
    await bot_phone.until(lambda: api.calls_to("getUpdates"), what="the first poll")
    api.push_raw(None, "junk")
    await bot_phone.until(lambda: len(skip_notices(bot_phone)) == 2, what="the two warnings")
    asked = len(api.calls_to("getUpdates"))
    await asyncio.sleep(3)
    assert len(api.calls_to("getUpdates")) - asked <= 6, "back-off 0.2, 0.4, 0.8, 1.6 s"
    api.send_text(OWNER, "/help")
    await bot_phone.reply_containing(HELP_REPLY)
    await bot_phone.until(lambda: api.pending_updates() == 0, what="everything confirmed")
    assert len(skip_notices(bot_phone)) == 2


async def test_a_server_that_answers_at_once_with_nothing_is_not_polled_in_a_loop(
    bot_phone: BotPhone,
) -> None:
    api = bot_phone.api
    await bot_phone.until(lambda: api.calls_to("getUpdates"), what="the first poll")
    api.answer_raw_next("getUpdates", b'{"ok": true, "result": []}', times=10_000)
    await asyncio.sleep(0.5)
    asked = len(api.calls_to("getUpdates", ok_only=False))
    await asyncio.sleep(3)
    assert len(api.calls_to("getUpdates", ok_only=False)) - asked <= 6
    assert bot_phone.bot.state == "on"


FAILURES: dict[str, tuple[int, bytes, str]] = {
    "another poller (409)": (
        409,
        b'{"ok": false, "error_code": 409, "description": "Conflict: terminated by other '
        b'getUpdates request; make sure that only one bot instance is running"}',
        "another program is polling this bot",
    ),
    "a revoked token (401)": (
        401,
        b'{"ok": false, "error_code": 401, "description": "Unauthorized"}',
        "the bot token was refused",
    ),
    "a proxy's HTML page (502)": (502, b"<html>502 Bad Gateway</html>", "polling retry in"),
    "a result that is not a list": (200, b'{"ok": true, "result": {"no": 1}}', "not a list"),
    "a body that is not JSON": (200, b"\x00\xffgarbage", "polling retry in"),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_a_failing_poll_is_retried_with_growing_waits_shown_and_then_recovers(
    bot_phone: BotPhone, case: str
) -> None:
    status, body, shown = FAILURES[case]
    api = bot_phone.api
    await bot_phone.until(lambda: api.calls_to("getUpdates"), what="the first poll")
    api.answer_raw_next("getUpdates", body, status=status, times=4)
    api.send_text(OWNER, "/queue")  # ends the poll in flight; the next ones fail
    await bot_phone.reply_containing(QUEUE_REPLY)
    failed = await bot_phone.until(
        lambda: calls if len(calls := api.scripted_calls("getUpdates")) == 4 else None,
        what="four failed polls",
    )
    gaps = [b.at - a.at for a, b in itertools.pairwise(failed)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.35 and gaps[2] >= 0.75, gaps
    errors = [s for s in bot_phone.states() if s.state == "error"]
    assert errors and all("retry in" in (s.detail or "") for s in errors)
    assert shown in " ".join(s.detail or "" for s in errors)
    await bot_phone.until(lambda: bot_phone.bot.state == "on", what="polling to recover")
    api.send_text(OWNER, "/help")
    await bot_phone.reply_containing(HELP_REPLY)


# --- random input at the boundary --------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)  # fmt: skip
PATHS = [
    ("message",), ("message", "date"), ("message", "chat"), ("message", "chat", "id"),
    ("message", "chat", "type"), ("message", "from"), ("message", "from", "id"),
    ("message", "text"), ("message", "entities"), ("message", "message_id"),
    ("callback_query",), ("edited_message",), ("update_id",),
]  # fmt: skip
NOT_AN_ID = (
    st.none() | st.text(max_size=10) | st.floats() | st.booleans() | st.integers(max_value=0)
)


@st.composite
def mangled_updates(draw: st.DrawFn, api: TelegramApi) -> Any:
    """An owner's message with random parts replaced or removed, or any JSON at all. A
    replaced ``update_id`` is never another usable id: a server lying about ids is not
    something a client can detect."""
    if draw(st.booleans()):
        return draw(JSON)
    update: dict[str, Any] = json.loads(json.dumps(command(api, "/x"), default=lambda _: 1))
    update["update_id"] = OWN_NUMBER
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        target = update
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None  # type: ignore[assignment]
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()):
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(NOT_AN_ID if path == ("update_id",) else JSON)
    return update


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_random_updates_between_two_commands_never_stop_the_bot(
    bot_phone: BotPhone, data: st.DataObject
) -> None:
    api = bot_phone.api
    junk = data.draw(st.lists(mangled_updates(api), min_size=1, max_size=4))
    helps = sum(HELP_REPLY in t for t in bot_phone.texts())
    queues = sum(QUEUE_REPLY in t for t in bot_phone.texts())
    api.push_raw(command(api, "/help"), *junk, command(api, "/queue"))
    await bot_phone.until(
        lambda: (
            sum(HELP_REPLY in t for t in bot_phone.texts()) > helps
            and sum(QUEUE_REPLY in t for t in bot_phone.texts()) > queues
        ),
        what="both commands answered",
    )
    await bot_phone.until(lambda: api.pending_updates() == 0, what="the batch confirmed")
    assert bot_phone.bot.state == "on"


@settings(max_examples=300, deadline=None)
@given(
    raw=st.lists(JSON | st.fixed_dictionaries({"update_id": st.integers(1, 10**6)}), max_size=8),
    offset=st.integers(0, 10**6),
)
def test_reading_a_batch_never_raises_and_always_confirms_past_every_id(
    raw: list[Any], offset: int
) -> None:
    batch = read_batch(raw, offset, None)
    ids = [u.update_id for u in batch.updates]
    assert ids == sorted(set(ids)) and all(i >= offset for i in ids)
    assert len(batch.updates) + len(batch.skipped) == len(raw)
    if batch.next_offset is None:
        assert offset == 0 and not batch.updates
    else:
        assert batch.next_offset >= max([offset, *ids, 0]) and all(
            i < batch.next_offset for i in ids
        )
        own = [e["update_id"] for e in raw if isinstance(e, dict)
               and type(e.get("update_id")) is int and 0 < e["update_id"] < 2**53]  # fmt: skip
        assert all(i < batch.next_offset for i in own)


def test_the_header_shows_a_failing_poller_with_its_next_try_and_reason() -> None:

    detail = describe_failure(Conflict("terminated by other getUpdates request"), 8.0)
    shown = telegram_text("error", detail).plain
    assert shown == "Telegram error (polling retry in 8.0s: another program is polling this bot)"
