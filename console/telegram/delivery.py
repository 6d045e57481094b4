"""Calling the Bot API so that Telegram trouble never stops or floods the console.

Rate limits (``RetryAfter``) are waited out for as long as Telegram asks; network errors are
retried with exponential backoff and then given up on with a logged warning; "message is not
modified" is success (the chat already shows it); any other refusal is reported once and
dropped. The bot's state (``on``/``error``) follows what the last call found.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_RATE_LIMIT_WAITS = 20
MAX_RATE_LIMIT_SECONDS = 600.0
NETWORK_TRIES = 5
NETWORK_BACKOFF_SECONDS = 0.5
NETWORK_BACKOFF_MAX_SECONDS = 30.0


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds Telegram asked for; the library gives an int or a timedelta by version."""
    with warnings.catch_warnings():  # the int form is deprecated; both are handled here
        warnings.simplefilter("ignore")
        value: object = exc.retry_after
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


def is_not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


class Delivery:
    """Runs Bot API calls with Telegram's own rules for waiting and giving up."""

    def __init__(
        self,
        on_state: Callable[[str, str | None], None],
        on_problem: Callable[[str], None],
        *,
        backoff: float = NETWORK_BACKOFF_SECONDS,
    ) -> None:
        self._on_state = on_state
        self._on_problem = on_problem
        self._backoff = backoff

    async def run(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """The call's result, or None when it was given up (the reason is reported)."""
        waits = 0
        network_failures = 0
        while True:
            try:
                result = await call()
            except RetryAfter as exc:
                seconds = min(retry_after_seconds(exc), MAX_RATE_LIMIT_SECONDS)
                waits += 1
                if waits > MAX_RATE_LIMIT_WAITS:
                    self._on_problem(f"Telegram kept rate limiting {what}; gave it up")
                    return None
                log.info("Telegram rate limit on %s: waiting %.0fs", what, seconds)
                await asyncio.sleep(seconds)
                continue
            except BadRequest as exc:  # before NetworkError: BadRequest subclasses it
                if is_not_modified(exc):
                    return None
                self._on_problem(f"Telegram refused {what}: {exc.message}")
                return None
            except Forbidden as exc:
                self._on_problem(f"Telegram refused {what}: {exc.message}")
                return None
            except InvalidToken as exc:
                self._on_state("error", f"the bot token was refused: {exc.message}")
                return None
            except NetworkError as exc:  # includes TimedOut
                network_failures += 1
                self._on_state("error", f"network: {exc.message}")
                if network_failures >= NETWORK_TRIES:
                    self._on_problem(
                        f"Telegram unreachable for {what} after {network_failures} tries: "
                        f"{exc.message}"
                    )
                    return None
                delay = min(
                    self._backoff * 2 ** (network_failures - 1), NETWORK_BACKOFF_MAX_SECONDS
                )
                await asyncio.sleep(delay)
                continue
            except TelegramError as exc:
                self._on_problem(f"Telegram error on {what}: {exc.message}")
                return None
            self._on_state("on", None)
            return result
