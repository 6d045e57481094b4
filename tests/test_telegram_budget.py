"""Claude's cost on Telegram: ``/status`` per day, and a message when the fix queue is held
by the daily budget or a rate limit (the real bot against the Bot API stand-in)."""

from __future__ import annotations

import time

from console.budget import QueueHold, utc_day
from tests.telegram_phone import OWNER, BotPhone, error_event


async def test_status_shows_each_days_claude_cost_against_the_daily_budget(
    bot_phone: BotPhone,
) -> None:
    engine = bot_phone.engine
    await engine.ingest("prod-9", [error_event(1, "ab" * 8, "boom")])
    [error] = await engine.store.errors(limit=10)
    attempt = await engine.store.create_attempt(error.id, actor="test")
    assert attempt is not None
    await engine.store.update_attempt(attempt.id, claude_cost_usd=0.42)
    await engine.gate.refresh()

    # The error's own card may arrive in between: wait for the answer by what it says.
    bot_phone.api.send_text(OWNER, "/status")
    reply = await bot_phone.reply_containing("Claude cost per day")

    assert f"{utc_day(time.time())}: $0.4200 of $20.00" in reply
    assert "Fix queue running" in reply


async def test_a_spent_budget_a_rate_limit_and_the_resume_are_each_told_once(
    bot_phone: BotPhone,
) -> None:
    engine = bot_phone.engine
    engine.report(QueueHold(20.5, 20.0))
    engine.report(QueueHold(20.7, 20.0))  # still spent: nothing new to say
    spent = await bot_phone.reply_containing("Daily Claude budget reached")
    assert "$20.50 of $20.00" in spent and "claude.daily_budget_usd" in spent
    engine.report(
        QueueHold(1.0, 50.0, rate_limited_until=time.time() + 60, rate_limit_reason="429")
    )
    await bot_phone.reply_containing("Claude rate-limited, resuming")
    engine.report(QueueHold(1.0, 50.0))
    await bot_phone.reply_containing("The fix queue resumes")
    texts = bot_phone.texts()
    assert sum("Daily Claude budget reached" in t for t in texts) == 1
