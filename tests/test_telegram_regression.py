"""A merged fix that did not hold, on the phone: the regression message with Revert, Retry
and Mute, each tapped, and the retry's prompt as the real Claude Code CLI sent it to the
scripted model.

Everything is real: the fix is written by the CLI against the scripted Messages API,
published to the GitHub stand-in, merged there (a real merge commit on the bare remote),
polled, the service's start and the new occurrence go through the engine's ingest and
lifecycle rules, and the bot is the real python-telegram-bot against the Bot API stand-in.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from agent.wire import Start, iso
from console.models import State
from tests.engine_world import World
from tests.messages_api import Text, verdict_call
from tests.service_repo import git
from tests.telegram_api import Message, parse_html
from tests.telegram_phone import OWNER, world_bot
from tests.test_lifecycle_engine import occurrence, published, quick
from tests.test_telegram import Phone


@pytest.fixture
async def phone(world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Phone]:
    """The bot on an engine that polls GitHub every half second and resolves after an hour
    (so a merged fix stays merged until the occurrence comes)."""
    async with world_bot(world, quick(world, 3600), monkeypatch) as (api, bot, engine):
        yield Phone(api, world, bot, engine)


def regression_message(phone: Phone) -> Message | None:
    return next((m for m in phone.chat() if parse_html(m.text).startswith("🚨 REGRESSED")), None)


def first_prompt(body: dict) -> str:
    """The text of the first user message of a conversation as the CLI sent it."""
    content = body["messages"][0]["content"]
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    return "\n".join(str(b.get("text") or "") for b in blocks if isinstance(b, dict))


async def test_a_regression_reaches_the_phone_and_mute_revert_and_retry_answer_it(
    phone: Phone,
) -> None:
    world, engine = phone.world, phone.engine
    await engine.start()
    error = await published(world, engine)
    [pr] = await engine.store.prs(error.current_attempt_id or 0)
    world.github.merge("acme/pa", pr.number, by="octocat")
    merged = await world.error_in(State.MERGED, timeout=30)
    started = time.time()
    start = Start(seq=901, host="prod-1", service="PA", at=iso(started), line="listening on :3000")
    await engine.ingest("prod-1", [start])
    await engine.ingest("prod-1", [occurrence(merged, 902, started + 1)])
    regressed = await world.error_in(State.REGRESSED)

    card = await phone.until(lambda: regression_message(phone), 20, "the regression message")
    text = parse_html(card.text)
    assert text.startswith("🚨 REGRESSED · ") and f"error #{regressed.id}" in text, text
    assert f"The fix merged in pull request #{pr.number} did not hold: 1 occurrence(s)" in text, (
        text
    )
    assert "prod-1 x1" in text and "occurred again at" in text
    assert "+  if (!user) return null;" in text, "the merged diff"
    assert [b["text"] for b in card.buttons()] == ["Revert", "Retry", "Mute 1h"]

    query = phone.api.tap(OWNER, card, card.button("Mute 1h")["callback_data"])
    muted = await phone.answer(query)
    assert muted.startswith("muted PA TypeError") and muted.endswith("for 60 min"), muted
    await phone.until(lambda: "Mute 1h" not in [b["text"] for b in card.buttons()], 20, "edit")
    assert "🔕 Muted by" in parse_html(card.text)
    assert [b["text"] for b in card.buttons()] == ["Revert", "Retry"]

    query = phone.api.tap(OWNER, card, card.button("Revert")["callback_data"])
    said = await phone.answer(query)
    assert f"opened revert pull request #{pr.number + 1}" in said, said
    [_, revert] = await engine.store.prs(regressed.current_attempt_id or 0)
    assert revert.kind == "revert"
    assert "if (!user) return null;" not in git(world.bare, "show", f"{revert.branch}:lib/users.js")
    await phone.until(lambda: "Revert pull request opened by" in parse_html(card.text), 20)
    assert f"revert pull request #{revert.number}" in parse_html(card.text)
    decisions = await engine.store.decisions(error_id=regressed.id)
    assert [(d.action, d.actor) for d in decisions][-2:] == [
        ("mute", f"telegram:{OWNER}"),
        ("revert", f"telegram:{OWNER}"),
    ]

    # Retry: a new attempt whose prompt carries the merged diff and why it did not hold.
    sessions = len(world.api.conversation)
    world.api.turns = [
        [
            Text("The fix did not hold."),
            verdict_call("needs_human", questions=["Why does the null check not hold?"]),
        ]
    ]
    query = phone.api.tap(OWNER, card, card.button("Retry")["callback_data"])
    assert "fix attempt 2 of PA TypeError" in await phone.answer(query)
    await phone.until(lambda: not card.buttons(), 20, "the buttons to go")
    await world.error_in(State.REVIEW, timeout=120)
    prompt = first_prompt(world.api.conversation[sessions])
    assert "## The error (untrusted data)" in prompt
    assert "## A previous fix did not hold" in prompt
    assert f"(pull request #{pr.number}) was merged and the error occurred again" in prompt
    assert f"Its revert (pull request #{revert.number}) may already be merged" in prompt
    assert "BEGIN FIX-DATA-" in prompt
    block = prompt[prompt.index("\nBEGIN FIX-DATA-") : prompt.index("\nEND FIX-DATA-")]
    assert "occurrences since the merged code ran" in block and ": 1 on hosts: prod-1 (1)" in block
    assert "why it counts as a regression: occurred again at" in block, block
    assert "  +  if (!user) return null;" in block
    assert "latest occurrence message:\n  Cannot read properties of undefined" in block
