"""Where the bot token comes from: an environment variable or a file, never the config text.

The token grants full control of the bot, so it is read at start only, is never shown in a
message, a log line or the UI, and a problem with it is reported by naming the place it was
looked for rather than echoing what was found there.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from console.config import TelegramConfig
from console.secret import SecretError, read_secret

_TOKEN_SHAPE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{10,}$")


class TelegramTokenError(SecretError):
    """The token could not be found or does not look like a bot token; says where it looked."""


def resolve_bot_token(config: TelegramConfig) -> str | None:
    """The bot token, or None when Telegram is not enabled (then no token is needed).

    ``token_file`` wins when set, as it is the explicit choice; otherwise the environment
    variable ``token_env``. Raises :class:`TelegramTokenError` naming the variable or file
    when it is missing, unreadable, empty or not shaped like ``123456:ABC...``.
    """
    if not config.enabled:
        return None
    try:
        token, where = read_secret(
            file=config.token_file,
            file_key="telegram.token_file",
            env=config.token_env,
            env_key="telegram.token_env",
            unset_hint="export the token from @BotFather there, or set telegram.token_file",
        )
    except SecretError as exc:
        raise TelegramTokenError(str(exc)) from None
    if not _TOKEN_SHAPE.match(token):
        raise TelegramTokenError(
            f"{where} does not hold a bot token (expected digits, a colon, then letters, "
            "digits, '_' or '-', as @BotFather gives it)"
        )
    return token


def token_pattern(token: str) -> re.Pattern[str]:
    """The token as any text may carry it: in any letter case (python-telegram-bot
    capitalises error texts, which lowercases a token echoed in them), any character
    URL-encoded (``%3A`` for the colon), and its secret part even without the bot id."""

    def char(c: str) -> str:
        return f"(?:{re.escape(c)}|%{ord(c):02x})"

    bot_id, _, secret = token.rpartition(":")
    body = "".join(char(c) for c in secret)
    prefix = "".join(char(c) for c in bot_id + ":") if bot_id else ""
    return re.compile(f"(?:{prefix})?{body}" if prefix else body, re.IGNORECASE)


class TokenScrubber:
    """Replaces every known bot token with ``<bot token>`` in text and in log records."""

    def __init__(self) -> None:
        self._patterns: dict[str, re.Pattern[str]] = {}

    def add(self, token: str) -> None:
        self._patterns.setdefault(token, token_pattern(token))

    def scrub(self, text: str, replacement: str = "<bot token>") -> str:
        for pattern in self._patterns.values():
            text = pattern.sub(replacement, text)
        return text

    def scrub_record(self, record: logging.LogRecord) -> None:
        """The message, its arguments, a traceback and stack info, all as finally shown."""
        if not self._patterns:
            return
        message = record.getMessage()
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            shown = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = self.scrub(shown)
            if clean != shown:
                # Formatters then print exc_text, already clean. A traceback without a
                # token keeps its exc_info for handlers that read the exception itself.
                record.exc_text = clean
                record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)


SCRUBBER = TokenScrubber()
_factory_installed = False


def keep_token_out_of_logs(token: str) -> None:
    """Scrub ``token`` from every log record of every logger from now on.

    It sits in every Bot API URL (httpx logs each request at INFO) and can come back in any
    error text, so records are cleaned where they are made (the record factory) rather than
    by filters on chosen loggers, which miss records of their children and tracebacks.
    """
    global _factory_installed
    SCRUBBER.add(token)
    if _factory_installed:
        return
    _factory_installed = True
    make = logging.getLogRecordFactory()

    def scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        SCRUBBER.scrub_record(record)
        return record

    logging.setLogRecordFactory(scrubbed_record)
