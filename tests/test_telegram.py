"""The Telegram bot with the real engine, the real python-telegram-bot and a Bot API on loopback.

The engine is the one from tests/engine_world.py's world (real agent stream from the real Node
service, real git, real Claude Code CLI against the scripted Messages API, GitHub stand-in).
The bot is the real python-telegram-bot ``Application`` pointed at tests/telegram_api.py,
which checks HTML, length and button-data limits as Telegram does; the test plays the phone
by injecting messages and button taps into ``getUpdates``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.config import TelegramConfig
from console.engine import Engine
from console.events import Notice, TelegramChanged
from console.models import ErrorRow, State
from console.mute import DurationError, parse_duration
from console.telegram import TelegramBot, TelegramTokenError, resolve_bot_token
from console.telegram.callbacks import CallbackSigner, ForgedCallback
from console.telegram.limits import Part, fit, tg_len
from tests.engine_world import World, breaking_turns, fix_turns
from tests.messages_api import ToolCall, by_round, verdict_call
from tests.telegram_api import Message, TelegramApi, parse_html
from tests.telegram_phone import error_event as event
from tests.telegram_phone import world_bot

OWNER = 4242
STRANGER = 6666
TOKEN_ENV = "AUTOFIX_TEST_TELEGRAM_TOKEN"


@dataclass
class Phone:
    api: TelegramApi
    world: World
    bot: TelegramBot
    engine: Engine

    async def until(self, predicate, timeout: float = 20, what: str = ""):  # type: ignore[no-untyped-def]
        return await self.world.until(predicate, timeout, what)

    def chat(self) -> list[Message]:
        return self.api.chat(OWNER)

    def card_for(self, error_id: int) -> Message | None:
        for message in self.chat():
            if f"· error #{error_id}\n" in parse_html(message.text):
                return message
        return None

    def review_card(self) -> Message | None:
        for message in self.chat():
            if "Fix ready for review" in message.text:
                return message
        return None

    async def answer(self, query_id: str) -> str:
        call = await self.until(lambda: self.api.answer_to(query_id), what="the button answer")
        return str(call.params.get("text") or "")

    async def say(self, text: str, user: int = OWNER) -> Message:
        """Send a command and return the bot's reply (the next message in that chat)."""
        before = len(self.api.chat(user))
        self.api.send_text(user, text)
        await self.until(lambda: len(self.api.chat(user)) > before, what=f"a reply to {text}")
        return self.api.chat(user)[before]

    def notices(self) -> list[Notice]:
        return [e for e in self.world.events if isinstance(e, Notice)]


@pytest.fixture
async def phone(world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Phone]:
    """A running bot on a real engine whose links are not started yet (``start_engine``)."""
    async with world_bot(world, world.config, monkeypatch) as (api, bot, engine):
        yield Phone(api, world, bot, engine)


async def start_engine(phone: Phone, links: bool = True, card: bool = True) -> ErrorRow | None:
    await phone.engine.start(links=links)
    if not links:
        return None
    error = await phone.world.error_in(State.AWAITING_APPROVAL)
    # The error's card goes out after the state change; wait for it (unless the test watches
    # it being held up), so that a command's reply is the next message and not the card.
    if card:
        await phone.until(lambda: phone.card_for(error.id), what="the error's card")
    return error  # type: ignore[no-any-return]


def long_fix_turns(worktree: Path) -> list:
    """The usual fix plus a long new module and a CI workflow, for a long, sensitive diff
    (``.env*`` files would be sensitive too, but Claude Code may not edit them at all)."""
    turns = fix_turns(worktree)
    lines = "\n".join(f"exports.message{i} = 'line {i} <ok> & fine';" for i in range(120))
    write_long = ToolCall(
        "Write", {"file_path": str(worktree / "lib" / "messages.js"), "content": lines + "\n"}
    )
    write_env = ToolCall(
        "Write", {"file_path": str(worktree / ".github" / "ci.yml"), "content": "on: push\n"}
    )
    return [*turns[:2], [write_long], [write_env], *turns[2:]]  # fmt: skip


# --- whole flows -----------------------------------------------------------------------------


async def test_a_report_reaches_the_phone_with_its_findings_and_no_publish_button(
    phone: Phone,
) -> None:
    phone.world.api.turns = [
        [verdict_call("not_a_code_bug", risk="medium",
                      root_cause="Clients send ids of users deleted last week.",
                      summary="Expire the cached user list on the clients.")],
    ]  # fmt: skip
    error = await start_engine(phone)
    assert error is not None
    assert (await phone.engine.approve(error.id, actor="keyboard")).ok
    await phone.world.error_in(State.REVIEW, timeout=120)

    def report() -> Message | None:
        return next((m for m in phone.chat() if "Investigation report" in m.text), None)

    card = await phone.until(report, 20, "the report message")
    body = parse_html(card.text)
    assert body.startswith(f"🔎 Investigation report (not a code bug) · error #{error.id}")
    assert "Root cause\nClients send ids of users deleted last week." in body
    assert "Summary\nExpire the cached user list on the clients." in body
    assert "Risk: medium" in body and "No code was changed; nothing can be published." in body
    assert "Changes:" not in body and "Diff" not in body
    assert [b["text"] for b in card.buttons()] == ["Skip", "Retry"]
    assert not [m for m in phone.chat() if m.document], "no diff is attached"


async def test_a_fix_that_took_two_rounds_says_so_on_its_review_card(phone: Phone) -> None:
    users = str(phone.world.worktree / "lib" / "users.js")
    phone.world.api.turns = by_round(
        breaking_turns(phone.world.worktree),
        [[ToolCall("Edit", {"file_path": users, "old_string": "name: user.nickname",
                            "new_string": "name: user.name"})],
         *fix_turns(phone.world.worktree)[1:]],
    )  # fmt: skip
    error = await start_engine(phone)
    assert error is not None
    assert (await phone.engine.approve(error.id, actor="keyboard")).ok
    await phone.world.error_in(State.REVIEW, timeout=180)
    review = await phone.until(phone.review_card, 20, "the review message")
    body = parse_html(review.text)
    # Named by its number on this error, not the store's global id.
    assert body.startswith(f"🛠 Fix ready for review · error #{error.id} · attempt 1\n"), body
    assert "Rounds: 2 (tests failed in 1 of them)" in body
    assert "Risk: low" in body and "Tests: ✅ passed" in body
    assert [b["text"] for b in review.buttons()] == ["Open PR", "Skip", "Retry"]


async def test_approve_from_telegram_fixes_reviews_and_opens_the_pr_from_the_phone(
    phone: Phone,
) -> None:
    phone.world.api.turns = long_fix_turns(phone.world.worktree)
    error = await start_engine(phone)
    assert error is not None
    card = await phone.until(lambda: phone.card_for(error.id), what="the new-error message")
    text = parse_html(card.text)
    assert text.startswith(("🔴", "🟠", "🟡", "⚪")) and "PA" in text
    assert "TypeError: Cannot read properties of undefined" in text
    assert "Count: 3" in text and "prod-1 x3" in text
    assert [b["text"] for b in card.buttons()] == ["Approve Fix", "Skip"]

    query = phone.api.tap(OWNER, card, card.button("Approve Fix")["callback_data"])
    assert "started" in await phone.answer(query)
    assert (await phone.engine.store.error(error.id)).state in (  # type: ignore[union-attr]
        State.FIXING,
        State.TESTING,
        State.REVIEW,
    )
    await phone.until(lambda: not card.buttons(), what="the approval to remove the buttons")
    assert "Fix approved by Lev (Telegram 4242)" in parse_html(card.text)
    [decision] = await phone.engine.store.decisions(error_id=error.id)
    assert decision.action == "approve" and decision.actor == f"telegram:{OWNER}"

    await phone.world.error_in(State.REVIEW, timeout=120)
    review = await phone.until(phone.review_card, 20, "the review message")
    body = parse_html(review.text)
    assert "getUserProfile now returns null" in body, "Claude's summary"
    assert "lib/users.js +1 -0" in body and "lib/messages.js +120 -0" in body
    assert "Touches sensitive paths: .github/ci.yml" in body
    assert "Tests: ✅ passed" in body and "node --test" in body
    assert "diff --git a/.github/ci.yml b/.github/ci.yml" in body, "the first lines of the diff"
    assert "full diff attached" in body
    assert [b["text"] for b in review.buttons()] == ["Open PR", "Skip", "Retry"]
    docs = await phone.until(
        lambda: [m for m in phone.chat() if m.document], what="the diff document"
    )
    diff = docs[0].document["content"].decode()  # type: ignore[index]
    assert docs[0].document["file_name"].endswith(".diff")  # type: ignore[index]
    assert "exports.message119 = 'line 119 <ok> & fine';" in diff
    assert "+  if (!user) return null;" in diff
    assert diff.count("\n") > 120

    query = phone.api.tap(OWNER, review, review.button("Open PR")["callback_data"])
    assert "pull request #1" in await phone.answer(query)
    await phone.world.error_in(State.PR_OPENED)
    await phone.until(lambda: "Pull request opened" in review.text, what="the PR edit")
    assert not review.buttons()
    assert 'href="https://github.example/acme/pa/pull/1"' in review.text
    assert len(phone.world.github.posts()) == 1


async def test_approval_in_the_console_edits_the_telegram_message_in_place(
    phone: Phone,
) -> None:
    error = await start_engine(phone)
    assert error is not None
    card = await phone.until(lambda: phone.card_for(error.id), what="the new-error message")
    sent_before = len(phone.api.calls_to("sendMessage"))

    result = await phone.engine.approve(error.id, actor="keyboard")
    assert result.ok
    await phone.until(lambda: not card.buttons(), what="the console's approval to show")
    text = parse_html(card.text)
    assert "Fix approved by the console at " in text and "UTC" in text
    assert "Status: " in text
    edits = [
        c
        for c in phone.api.calls_to("editMessageText")
        if c.params["message_id"] == card.message_id
    ]
    assert edits and "reply_markup" not in edits[-1].params
    assert len(phone.api.calls_to("sendMessage")) == sent_before, "edited, not re-sent"

    # The button that is still on someone's screen now answers "already decided".
    stale = phone.api.tap(OWNER, card, card_data(phone, "approve", error.id))
    assert (await phone.answer(stale)).startswith("already decided")
    assert len(await phone.engine.store.attempts(error_id=error.id)) == 1


def card_data(phone: Phone, action: str, target: int) -> str:
    return CallbackSigner(phone.api.token).encode(action, target)  # type: ignore[arg-type]


async def test_a_stranger_is_refused_politely_nothing_happens_and_it_is_logged(
    phone: Phone,
) -> None:
    error = await start_engine(phone)
    assert error is not None
    card = await phone.until(lambda: phone.card_for(error.id), what="the new-error message")

    query = phone.api.tap(STRANGER, card, card.button("Approve Fix")["callback_data"])
    answer = await phone.answer(query)
    assert "not allowed" in answer and str(STRANGER) in answer
    assert phone.api.answer_to(query).params.get("show_alert") is True  # type: ignore[union-attr]
    reply = await phone.say("/dashboard", user=STRANGER + 1)
    assert "not allowed" in parse_html(reply.text)
    assert reply.reply_markup is None, "no dashboard buttons for a stranger"
    phone.api.send_text(STRANGER, "/dashboard")
    await phone.say("/help")  # handled after the stranger's second try
    assert phone.api.chat(STRANGER) == [], "one refusal an hour: the tap had it"

    assert (await phone.engine.store.error(error.id)).state is State.AWAITING_APPROVAL  # type: ignore[union-attr]
    assert await phone.engine.store.attempts(error_id=error.id) == []
    refused = [n for n in phone.notices() if str(STRANGER) in n.text]
    assert refused and refused[0].level == "warning" and "allowed_user_ids" in refused[0].text
    assert card.buttons(), "the owner's buttons are untouched"


async def test_forged_and_foreign_buttons_are_refused(phone: Phone) -> None:
    error = await start_engine(phone)
    assert error is not None
    card = await phone.until(lambda: phone.card_for(error.id), what="the new-error message")
    real = card.button("Approve Fix")["callback_data"]
    body, tag = real.split(".")
    forged = [
        f"{body}.{'A' * len(tag)}",  # made-up tag
        CallbackSigner("999999:another-bots-token").encode("approve", error.id),
        f"s{error.id}.{tag}",  # a valid tag moved to another action
        "approve " + str(error.id),
    ]
    for data in forged:
        answer = await phone.answer(phone.api.tap(OWNER, card, data))
        assert "not valid" in answer, data
    assert (await phone.engine.store.error(error.id)).state is State.AWAITING_APPROVAL  # type: ignore[union-attr]
    assert sum("did not make" in n.text for n in phone.notices()) == len(forged)


async def test_a_double_tap_acts_once_and_the_second_hears_already_decided(
    phone: Phone, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error = await start_engine(phone)
    assert error is not None
    card = await phone.until(lambda: phone.card_for(error.id), what="the new-error message")
    data = card.button("Approve Fix")["callback_data"]
    first = phone.api.tap(OWNER, card, data)
    second = phone.api.tap(OWNER, card, data)
    answers = sorted([await phone.answer(first), await phone.answer(second)])
    assert answers[0].startswith("already decided") and "started" in answers[1]
    assert len(await phone.engine.store.attempts(error_id=error.id)) == 1
    decisions = await phone.engine.store.decisions(error_id=error.id)
    assert [d.action for d in decisions] == ["approve"]
    # Every Bot API URL holds the token; the request lines in the logs must not.
    assert (
        "HTTP Request: POST" in caplog.text and "/bot<bot token>/answerCallbackQuery" in caplog.text
    )
    assert phone.api.token not in caplog.text


async def test_dashboard_buttons_edit_one_message_and_unchanged_refresh_is_ignored(
    phone: Phone,
) -> None:
    error = await start_engine(phone)
    assert error is not None
    await phone.until(lambda: phone.card_for(error.id), what="the new-error message")
    dash = await phone.say("/start")
    assert "AutoFix dashboard" in dash.text and "awaiting approval: <b>1</b>" in dash.text
    labels = [b["text"] for b in dash.buttons()]
    assert labels == ["Queue Status", "Recent Errors", "System Status", "History", "Refresh"]
    sends = len(phone.api.calls_to("sendMessage"))

    seen = []
    for label in ("Queue Status", "Recent Errors", "System Status", "Recent Errors"):
        query = phone.api.tap(OWNER, dash, dash.button(label)["callback_data"])
        await phone.answer(query)
        seen.append(parse_html(dash.text))
    assert seen[0].startswith("📋 Queue Status")
    assert "TypeError: Cannot read properties" in seen[0]
    assert seen[1].startswith("🧾 Recent Errors")
    line = next(x for x in seen[1].splitlines() if "[PA]" in x)
    assert line.startswith(("🔴 [PA]", "🟠 [PA]", "🟡 [PA]", "⚪ [PA]"))
    assert "· awaiting approval ·" in line and (" ago" in line or "just now" in line)
    assert seen[2].startswith("🖥 System Status") and "prod-1" in seen[2]

    # Refresh with nothing new: Telegram says "message is not modified"; that is fine.
    before = len(phone.notices())
    refresh = phone.api.tap(OWNER, dash, dash.button("Refresh")["callback_data"])
    await phone.answer(refresh)
    await phone.until(
        lambda: any(c.status == 400 for c in phone.api.calls_to("editMessageText", ok_only=False)),
        what="the not-modified answer",
    )
    assert len(phone.api.calls_to("sendMessage")) == sends, "looking around sent nothing new"
    assert len(phone.notices()) == before and phone.bot.state == "on"


async def test_history_summary_from_the_command_and_the_dashboard_button(phone: Phone) -> None:
    """The History screen's figures as text: from /history, and in place of the dashboard
    when its History button is tapped; the error that occurred is among the recurring."""
    error = await start_engine(phone)
    assert error is not None
    await phone.until(lambda: phone.card_for(error.id), what="the new-error message")
    summary = parse_html((await phone.say("/history")).text)
    assert summary.startswith("📈 History · last 30d")
    for line in ("attempts: 0", "fixed: 0 of 0 decided (—)", "regressions: 0",
                 "Most recurring", "[PA] TypeError: Cannot read properties"):  # fmt: skip
        assert line in summary, summary
    dash = await phone.say("/dashboard")
    query = phone.api.tap(OWNER, dash, dash.button("History")["callback_data"])
    await phone.answer(query)
    assert parse_html(dash.text) == summary
    week = parse_html((await phone.say("/history 7D")).text)
    assert week.startswith("📈 History · last 7d") and "[PA] TypeError" in week
    refused = parse_html((await phone.say("/history <b>fortnight</b>")).text)
    assert "<b>fortnight</b> is not a period; one of 24h, 7d, 30d, 90d" in refused


async def test_a_429_storm_is_waited_out_and_the_console_carries_on(phone: Phone) -> None:
    phone.api.rate_limit_next("sendMessage", times=3, retry_after=1)
    started = time.monotonic()
    error = await start_engine(phone, card=False)
    assert error is not None
    # The engine is not held up by Telegram: the error is stored and approvable meanwhile.
    assert time.monotonic() - started < 3 and phone.card_for(error.id) is None
    card = await phone.until(lambda: phone.card_for(error.id), what="delivery after 429s")
    calls = phone.api.calls_to("sendMessage", ok_only=False)
    limited = [c for c in calls if c.status == 429]
    delivered = next(c for c in calls if c.status == 200)
    assert len(limited) == 3
    assert delivered.at - limited[0].at >= 2.5, "each retry_after was waited out"
    assert card.buttons() and phone.bot.state == "on"
    assert not [n for n in phone.notices() if "Telegram" in n.text]


async def test_dropped_connections_are_retried_and_the_state_recovers(phone: Phone) -> None:
    phone.api.drop_next("sendMessage", times=2)
    error = await start_engine(phone)
    assert error is not None
    await phone.until(lambda: phone.card_for(error.id), what="delivery after network errors")
    await phone.until(lambda: phone.bot.state == "on", what="the state to follow the delivery")
    states = [e.state for e in phone.world.events if isinstance(e, TelegramChanged)]
    assert "error" in states and states[-1] == "on"


async def test_mute_holds_back_new_error_messages_until_turned_off(phone: Phone) -> None:
    await start_engine(phone, links=False)
    bad = await phone.say("/mute forever")
    assert "could not read 'forever' as a duration" in parse_html(bad.text)
    reply = await phone.say("/mute 30m")
    assert "muted for 30m" in parse_html(reply.text)
    assert phone.bot.muted_until and phone.bot.muted_until > time.time() + 29 * 60

    [muted_id] = await phone.engine.ingest("prod-9", [event(1, "f" * 16, "muted one")])
    await asyncio.sleep(1.5)
    assert phone.card_for(muted_id) is None
    status = await phone.say("/mute")
    assert "Muted until" in parse_html(status.text)

    await phone.say("/mute off")
    [loud_id] = await phone.engine.ingest("prod-9", [event(2, "e" * 16, "loud one")])
    await phone.until(lambda: phone.card_for(loud_id), what="a message after unmuting")
    assert phone.card_for(muted_id) is None


async def test_hostile_error_text_is_escaped_and_cut_to_telegram_limits(phone: Phone) -> None:
    await start_engine(phone, links=False)
    nasty = "<script>alert(1)</script> &amp; <b>unclosed " + "&<>" * 3000 + "🔥" * 500
    [error_id] = await phone.engine.ingest(
        "prod-9",
        [event(1, "a" * 16, nasty, route="GET /x?a=<b>&c=d", error_type="Error<T>")],
    )
    card = await phone.until(lambda: phone.card_for(error_id), what="the hostile message")
    text = parse_html(card.text)  # the stand-in refused anything Telegram would refuse
    assert tg_len(text) <= 4096
    assert "Error<T>: <script>alert(1)</script> &amp; <b>unclosed &<>" in text
    assert "GET /x?a=<b>&c=d" in text and text.rstrip().endswith("UTC")
    assert not [c for c in phone.api.calls_to("sendMessage", ok_only=False) if c.status != 200]


async def test_retry_command_and_the_console_switch(phone: Phone) -> None:
    error = await start_engine(phone)
    assert error is not None
    usage = await phone.say("/retry soon")
    assert "Usage: /retry <error id>" in parse_html(usage.text)
    refused = await phone.say(f"/retry {error.id} also log the id")
    name = f"PA {error.error_type}: {error.message}"
    assert f"cannot retry: {name} is awaiting approval" in parse_html(refused.text)
    help_text = parse_html((await phone.say("/help")).text)
    assert "/mute" in help_text and "/retry <error id>" in help_text

    assert (await phone.engine.set_telegram(False)).ok
    assert phone.bot.state == "off"
    assert any(isinstance(e, TelegramChanged) and e.state == "off" for e in phone.world.events)
    await phone.engine.set_telegram(True)
    assert phone.bot.state == "on"
    reply = await phone.say("/queue")
    assert "Queue Status" in reply.text


async def test_a_missing_token_reports_an_error_and_the_engine_keeps_running(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    telegram = TelegramConfig(enabled=True, token_env=TOKEN_ENV, allowed_user_ids=(OWNER,))
    engine = await world.start(replace(world.config, telegram=telegram), links=False)
    bot = TelegramBot(engine, telegram)
    await bot.start()
    try:
        assert bot.state == "error" and engine.telegram is bot
        [changed] = [e for e in world.events if isinstance(e, TelegramChanged)]
        assert changed.state == "error" and TOKEN_ENV in (changed.detail or "")
        assert any(
            n.level == "error" and TOKEN_ENV in n.text
            for n in world.events
            if isinstance(n, Notice)
        )
        assert await engine.ingest("prod-9", [event(1, "b" * 16, "still stored")])
    finally:
        await bot.stop()


# --- pieces --------------------------------------------------------------------------------


def test_token_comes_from_the_file_or_variable_with_errors_naming_the_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "123456:ABCdef_ghi-jklmnop"
    assert resolve_bot_token(TelegramConfig(enabled=False)) is None
    monkeypatch.setenv(TOKEN_ENV, f"  {token}\n")
    assert resolve_bot_token(TelegramConfig(enabled=True, token_env=TOKEN_ENV)) == token
    path = tmp_path / "token"
    path.write_text(token + "\n")
    monkeypatch.setenv(TOKEN_ENV, "654321:from-the-environment")
    from_file = TelegramConfig(enabled=True, token_env=TOKEN_ENV, token_file=path)
    assert resolve_bot_token(from_file) == token, "an explicit file wins"

    cases = [
        (TelegramConfig(enabled=True, token_env="AUTOFIX_NOT_SET_ANYWHERE"), "is not set"),
        (replace(from_file, token_file=tmp_path / "missing"), "no such file"),
        (replace(from_file, token_file=tmp_path), "cannot read it"),
    ]
    (tmp_path / "empty").write_text("\n")
    cases.append((replace(from_file, token_file=tmp_path / "empty"), "is empty"))
    (tmp_path / "junk").write_text("secret-looking junk\n")
    cases.append((replace(from_file, token_file=tmp_path / "junk"), "does not hold a bot token"))
    monkeypatch.delenv("AUTOFIX_NOT_SET_ANYWHERE", raising=False)
    for config, expected in cases:
        with pytest.raises(TelegramTokenError) as caught:
            resolve_bot_token(config)
        assert expected in str(caught.value)
        assert "secret-looking" not in str(caught.value), "the file's content is never echoed"


def test_callback_data_fits_64_bytes_and_any_change_is_refused() -> None:
    signer = CallbackSigner("123456:ABCdef_ghi-jklmnop")
    data = signer.encode("skip_attempt", 10**18 - 1)
    assert len(data.encode()) <= 64
    assert signer.decode(data).target == 10**18 - 1
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_-."
    for _ in range(300):
        i = rng.randrange(len(data))
        changed = data[:i] + rng.choice(alphabet.replace(data[i], "")) + data[i + 1 :]
        with pytest.raises(ForgedCallback):
            signer.decode(changed)


def test_fitting_never_cuts_inside_an_entity_and_respects_the_limit() -> None:
    rng = random.Random(3)
    for limit in (40, 300, 4096):
        for _ in range(200):
            texts = ["".join(rng.choice("a&<>\"é🔥\n ") for _ in range(rng.randrange(0, 900)))
                     for _ in range(3)]  # fmt: skip
            html = fit(
                [Part(texts[0], before="<b>", after="</b>\n"), Part(texts[1]),
                 Part(texts[2], before="<pre>", after="</pre>", cap=120)],
                limit,
            )  # fmt: skip
            assert tg_len(html) <= limit
            plain = parse_html(html)  # raises on a cut entity or tag
            if "…" not in plain:  # nothing was cut: every character arrives as written
                assert plain == texts[0] + "\n" + texts[1] + texts[2]


def test_mute_durations_read_like_people_write_them() -> None:
    assert parse_duration("30m") == 1800
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration(" OFF ") is None
    for bad in ("", "soon", "30", "5x", "0m", "8d", "30m please"):
        with pytest.raises(DurationError):
            parse_duration(bad)


@given(
    service=st.text(min_size=1, max_size=80),
    message=st.text(max_size=3000),
    count=st.integers(1, 12),
)
@settings(max_examples=60, deadline=None)
def test_history_summary_is_valid_telegram_html_whatever_the_errors_say(
    service: str, message: str, count: int
) -> None:
    """Service names and messages come from logs: in the summary they are text Telegram
    parses, never markup, and the message stays within Telegram's limit."""
    from console.history import History, HistoryQuery, Rate, Recurring
    from console.telegram import dashboard

    recurring = [
        Recurring(i, service, f"fp{i}", "TypeError", message, "failed", 10 * i, 1, i % 2)
        for i in range(1, count + 1)
    ]
    history = History(
        query=HistoryQuery("7d", service), start="2027-01-09T00:00:00.000Z",
        end="2027-01-15T09:00:00.000Z", services=[service], buckets=[], outcomes={},
        by_service=[Rate(service, 3, 2, 1)], by_severity=[Rate("high", 3, 2, 1)],
        median_to_pr_seconds=3600.0, prs=1, median_to_merge_seconds=None, merges=0,
        cost_usd=0.5, regressions=count // 2, recurring=recurring,
    )  # fmt: skip
    text = dashboard.render("history", dashboard.Snapshot([], [], {}, history=history))
    shown = parse_html(text)  # raises on anything Telegram could not parse
    assert tg_len(text) <= 4096
    assert shown.startswith("📈 History · last 7d")
    assert f"regressions: {count // 2}" in shown
