"""Who the bot answers and where, with the real python-telegram-bot and the Bot API stand-in.

Only allowed users in configured chats (``telegram.chat_ids``, by default the allowed
users' private chats) see anything; a chat the bot does not work in hears so once an hour,
a stranger is refused once an hour, and those answers never hold up the owner's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from console.config import ServiceConfig
from console.telegram.callbacks import CallbackSigner
from console.telegram.throttle import Throttle
from tests.telegram_api import OWN_NUMBER, Message, parse_html
from tests.telegram_phone import OWNER, BotPhone, error_event, open_phone

GROUP = -1001234567890
SECRET = "users table lost its index on tenant_17"
NOT_HERE = "This bot does not work in this chat."


async def one_error(phone: BotPhone) -> int:
    [error_id] = await phone.engine.ingest("prod-9", [error_event(1, "c" * 16, SECRET)])
    await phone.reply_containing(SECRET)  # the owner's card: the data exists
    return int(error_id)


async def test_an_allowed_user_in_a_group_that_is_not_configured_gets_no_data_there(
    bot_phone: BotPhone,
) -> None:
    api = bot_phone.api
    await one_error(bot_phone)
    for text in ("/errors", "/dashboard", "/queue", "hello"):
        api.send_text(OWNER, text, chat_id=GROUP)
    await bot_phone.until(lambda: api.chat(GROUP), what="the one answer in the group")
    # A dashboard from before (say, when the group was configured) with signed buttons.
    signer = CallbackSigner(api.token)
    button = {"text": "Recent Errors", "callback_data": signer.encode("view_errors")}
    old = api.plant(GROUP, "old dashboard", {"inline_keyboard": [[button]]})
    query = api.tap(OWNER, old, signer.encode("view_errors"))
    await bot_phone.say("/help")  # handled after the tap: the tap was handled too
    await asyncio.sleep(0.5)

    assert sorted(bot_phone.texts(GROUP)) == [NOT_HERE, "old dashboard"]
    assert old.text == "old dashboard"
    assert not [c for c in api.calls_to("editMessageText") if c.params.get("chat_id") == GROUP]
    assert api.answer_to(query) is None, "the group already heard it this hour"
    notices = [n for n in bot_phone.notices() if str(GROUP) in n.text]
    assert len(notices) == 1 and notices[0].level == "warning"
    assert "telegram.chat_ids" in notices[0].text
    assert not any(SECRET in t for t in bot_phone.texts(GROUP))
    assert "Recent Errors" in parse(await bot_phone.say("/errors"))


def parse(message: Message) -> str:
    return parse_html(message.text)


async def test_a_configured_group_gets_cards_and_answers_and_strangers_there_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_phone(tmp_path, monkeypatch, chat_ids=(OWNER, GROUP)) as phone:
        await one_error(phone)
        await phone.reply_containing(SECRET, chat_id=GROUP)
        reply = await phone.say("/errors", chat_id=GROUP)
        assert "Recent Errors" in parse(reply) and SECRET in parse(reply)
        refusal = await phone.say("/errors", user=777, chat_id=GROUP)
        assert "not allowed" in parse(refusal) and "777" in parse(refusal)
        assert "Queue Status" in parse(await phone.say("/queue"))


async def test_fifty_strangers_flooding_never_delay_the_owner_and_get_one_refusal_each(
    bot_phone: BotPhone,
) -> None:
    api = bot_phone.api
    strangers = [900_000 + i for i in range(50)]
    flood = [
        {"update_id": OWN_NUMBER, "message": api.message_json(s, f"/errors please {n}")}
        for n in range(10)
        for s in strangers
    ]
    started = time.monotonic()
    owner = {"update_id": OWN_NUMBER, "message": api.message_json(OWNER, "/queue")}
    api.push_raw(*flood[:250], owner, *flood[250:])
    await bot_phone.engine.ingest("prod-9", [error_event(1, "d" * 16, SECRET)])
    await bot_phone.reply_containing("Queue Status")
    answered = time.monotonic() - started
    await bot_phone.reply_containing(SECRET)
    carded = time.monotonic() - started
    assert answered < 3 and carded < 3, (answered, carded)

    await bot_phone.until(
        lambda: sum(len(api.chat(s)) for s in strangers) == 50, timeout=30, what="50 refusals"
    )
    await asyncio.sleep(1)
    assert [len(api.chat(s)) for s in strangers] == [1] * 50
    assert all("not allowed" in t for s in strangers for t in bot_phone.texts(s))
    refused = [n for n in bot_phone.notices() if "refused a message from user 9" in n.text]
    assert len(refused) == 50


def test_a_throttle_allows_once_per_period_per_key_and_never_more_when_full() -> None:
    now = [0.0]
    throttle = Throttle(3600, max_keys=3, clock=lambda: now[0])
    assert throttle.allow(1) and not throttle.allow(1)
    assert throttle.allow(2) and throttle.allow(3)
    assert not throttle.allow(4), "full of live keys: a new one is denied, not let through"
    now[0] = 3599.0
    assert not throttle.allow(1) and throttle.take_suppressed(1) == 2
    now[0] = 3600.0
    assert throttle.allow(4), "expired keys make room"
    assert throttle.allow(1) and not throttle.allow(1)


async def test_a_card_offers_only_the_decisions_the_engine_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ServiceConfig(name="PA", repo=tmp_path / "not-a-repo", test_command="true")
    async with open_phone(tmp_path, monkeypatch, console={"services": (service,)}) as phone:
        unknown = error_event(2, "u" * 16, "from a service with no entry", service="billing")
        [fixable, other] = await phone.engine.ingest(
            "prod-9", [error_event(1, "k" * 16, "a fixable one"), unknown]
        )

        def card(text: str) -> Message | None:
            return next((m for m in phone.api.chat(OWNER) if text in m.text), None)

        fixable_card = await phone.until(lambda: card("a fixable one"), what="the first card")
        other_card = await phone.until(lambda: card("no entry"), what="the second card")
        assert [b["text"] for b in fixable_card.buttons()] == ["Approve Fix", "Skip"]
        # A service the config does not name can be shelved from the phone, never fixed.
        assert [b["text"] for b in other_card.buttons()] == ["Skip"]
        forged = phone.api.tap(
            OWNER, other_card, CallbackSigner(phone.api.token).encode("approve", other)
        )
        answer = await phone.until(lambda: phone.api.answer_to(forged), what="the answer")
        assert "not configured" in str(answer.params.get("text"))
        assert await phone.engine.store.attempts(error_id=other) == []
        assert fixable != other
