"""Where the bot token comes from: an environment variable or a file, never the config text.

The token grants full control of the bot, so it is read at start only, is never shown in a
message, a log line or the UI, and a problem with it is reported by naming the place it was
looked for rather than echoing what was found there.
"""

from __future__ import annotations

import logging
import os
import re

from console.config import TelegramConfig

_TOKEN_SHAPE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{10,}$")


class TelegramTokenError(ValueError):
    """The token could not be found or does not look like a bot token; says where it looked."""


def resolve_bot_token(config: TelegramConfig) -> str | None:
    """The bot token, or None when Telegram is not enabled (then no token is needed).

    ``token_file`` wins when set, as it is the explicit choice; otherwise the environment
    variable ``token_env``. Raises :class:`TelegramTokenError` naming the variable or file
    when it is missing, unreadable, empty or not shaped like ``123456:ABC...``.
    """
    if not config.enabled:
        return None
    if config.token_file is not None:
        where = f"telegram.token_file {config.token_file}"
        try:
            raw = config.token_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TelegramTokenError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TelegramTokenError(f"{where}: cannot read it ({reason})") from None
    else:
        where = f"environment variable {config.token_env} (telegram.token_env)"
        value = os.environ.get(config.token_env)
        if value is None:
            raise TelegramTokenError(
                f"{where} is not set; export the token from @BotFather there, or set "
                "telegram.token_file"
            )
        raw = value
    token = raw.strip()
    if not token:
        raise TelegramTokenError(f"{where} is empty")
    if not _TOKEN_SHAPE.match(token):
        raise TelegramTokenError(
            f"{where} does not hold a bot token (expected digits, a colon, then letters, "
            "digits, '_' or '-', as @BotFather gives it)"
        )
    return token


class TokenScrubber(logging.Filter):
    """Replaces the bot token in log records: it sits in every Bot API URL, and httpx logs
    each request URL at INFO, python-telegram-bot its base URL at DEBUG."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self._token in text:
            record.msg = text.replace(self._token, "<bot token>")
            record.args = None
        return True


def keep_token_out_of_logs(token: str) -> None:
    """Scrub the token from the HTTP and Telegram libraries' loggers (once per token)."""
    scrubber = TokenScrubber(token)
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name in ("httpx", "httpcore") or name.startswith(("telegram", "httpcore."))
    ]
    for name in {"httpx", "telegram", *names}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenScrubber) and f._token == token for f in logger.filters):
            logger.addFilter(scrubber)
