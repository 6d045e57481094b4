"""What ``autofix check`` says about Telegram: can the bot log in, and can it poll.

It logs in (``getMe``), then asks ``getWebhookInfo``, which does not disturb a console that
is polling: a webhook left set makes polling impossible until the console deletes it, and
updates waiting mean nobody is polling now. Only then, when updates are waiting, it peeks
at them (``getUpdates`` without an offset confirms nothing) and reads them the way the
console's poller does, so an update the console will skip is named here first.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Bot
from telegram.error import InvalidToken, TelegramError

from console.config import TelegramConfig
from console.telegram.poller import fetch_raw, read_batch
from console.telegram.token import (
    SCRUBBER,
    TelegramTokenError,
    keep_token_out_of_logs,
    resolve_bot_token,
)


@dataclass(frozen=True)
class TelegramCheck:
    """One ``autofix check`` line: ``ok`` True, False (FAIL) or None (a warning)."""

    ok: bool | None
    text: str


async def check_telegram(config: TelegramConfig, *, timeout: float = 10.0) -> TelegramCheck:
    if not config.enabled:
        return TelegramCheck(True, "telegram: off (no [telegram] in the config)")
    try:
        token = resolve_bot_token(config)
    except TelegramTokenError as exc:
        return TelegramCheck(False, f"telegram: bot token: {exc}")
    assert token is not None
    keep_token_out_of_logs(token)
    chats = ", ".join(str(c) for c in config.chat_ids or config.allowed_user_ids)
    base = config.api_base_url.rstrip("/")
    bot = Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")
    try:
        async with bot:
            me = await bot.get_me(read_timeout=timeout)
            webhook = await bot.get_webhook_info(read_timeout=timeout)
            waiting = webhook.pending_update_count
            unreadable = 0
            if waiting and not webhook.url:
                raw = await fetch_raw(bot, {"timeout": 0, "limit": 100}, read_timeout=timeout)
                unreadable = len(read_batch(raw, 0, bot).skipped) if isinstance(raw, list) else 0
    except InvalidToken:
        return TelegramCheck(
            False, "telegram: Telegram refused the bot token; check it with @BotFather"
        )
    except (TelegramError, OSError, TypeError) as exc:
        return TelegramCheck(
            False, SCRUBBER.scrub(f"telegram: {config.api_base_url} unreachable: {exc}")
        )
    text = f"telegram: @{me.username} answers in chat(s) {chats}; {waiting} update(s) waiting"
    if webhook.url:
        return TelegramCheck(
            None,
            f"{text}; a webhook is set ({SCRUBBER.scrub(webhook.url)}), which the console "
            "deletes when it starts polling",
        )
    if unreadable:
        return TelegramCheck(
            None, f"{text}, {unreadable} unreadable (the console skips them with a warning)"
        )
    if webhook.last_error_message:
        return TelegramCheck(None, f"{text}; Telegram last reported: {webhook.last_error_message}")
    return TelegramCheck(True, text)
