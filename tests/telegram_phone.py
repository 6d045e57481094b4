"""The bot on a bare engine (a real store, no hosts) talking to the Bot API stand-in.

For tests about what reaches the bot from Telegram (polling, who and where may use it,
what is logged) that need no agent, repo or Claude: the bot starts in about a second. The
test plays the phone through :class:`~tests.telegram_api.TelegramApi`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from agent.wire import ErrorEvent
from console.config import ConsoleConfig, TelegramConfig
from console.engine import Engine
from console.events import EngineEvent, Notice, TelegramChanged
from console.store import Store
from console.telegram import TelegramBot
from tests.conftest import eventually, stopped
from tests.telegram_api import Message, TelegramApi, parse_html

OWNER = 4242
TOKEN_ENV = "AUTOFIX_TEST_TELEGRAM_TOKEN"


@dataclass
class BotPhone:
    api: TelegramApi
    bot: TelegramBot
    engine: Engine
    events: list[EngineEvent] = field(default_factory=list)

    async def until(self, predicate: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
        def notices() -> str:
            return f"notices: {[n.text for n in self.notices()]}"

        return await eventually(predicate, timeout, what, interval=0.02, context=notices)

    def texts(self, chat_id: int = OWNER) -> list[str]:
        """What a person reads in the chat, oldest first."""
        return [parse_html(m.text) for m in self.api.chat(chat_id) if m.text]

    async def reply_containing(self, needle: str, chat_id: int = OWNER) -> str:
        found: str = await self.until(
            lambda: next((t for t in self.texts(chat_id) if needle in t), None),
            what=f"a reply with {needle!r}",
        )
        return found

    async def say(self, text: str, user: int = OWNER, **where: Any) -> Message:
        """Send a message and return the bot's reply (the next message in that chat)."""
        chat_id = where.get("chat_id") or user
        before = len(self.api.chat(chat_id))
        self.api.send_text(user, text, **where)
        await self.until(lambda: len(self.api.chat(chat_id)) > before, what=f"a reply to {text}")
        return self.api.chat(chat_id)[before]

    def notices(self) -> list[Notice]:
        return [e for e in self.events if isinstance(e, Notice)]

    def states(self) -> list[TelegramChanged]:
        return [e for e in self.events if isinstance(e, TelegramChanged)]


def error_event(seq: int, fingerprint: str, message: str, **extra: object) -> ErrorEvent:
    """An agent's error event as the engine ingests it (service PA, host prod-9)."""
    fields: dict[str, object] = {
        "type": "error",
        "seq": seq,
        "host": "prod-9",
        "service": "PA",
        "fingerprint": fingerprint,
        "count": 1,
        "severity": "critical",
        "message": message,
        "error_type": "Error",
        "stack": ["    at handler (/srv/app/lib/users.js:12:5)"],
        "route": "GET /users/:id",
        "first_seen": "2026-01-02T03:04:05.000Z",
        "last_seen": "2026-01-02T03:04:05.000Z",
    }
    fields.update(extra)
    return ErrorEvent(**fields)  # type: ignore[arg-type]


@asynccontextmanager
async def open_phone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    api: TelegramApi | None = None,
    console: dict[str, Any] | None = None,
    **telegram: Any,
) -> AsyncIterator[BotPhone]:
    """A started bot (short poll timeout, quick back-off) on a started bare engine;
    ``console`` replaces fields of its ConsoleConfig, the rest of its TelegramConfig."""
    with api or TelegramApi() as stand_in:
        monkeypatch.setenv(TOKEN_ENV, stand_in.token)
        settings: dict[str, Any] = {"allowed_user_ids": (OWNER,), **telegram}
        config = TelegramConfig(
            enabled=True, token_env=TOKEN_ENV, api_base_url=stand_in.url, **settings
        )
        whole = replace(
            ConsoleConfig(state_dir=tmp_path / "console"), telegram=config, **(console or {})
        )
        engine = Engine(whole, await Store.open(whole.db_path))
        bot = TelegramBot(
            engine, config, poll_timeout=1, edit_interval=0.3, network_backoff=0.05,
            poll_backoff=0.2,
        )  # fmt: skip
        phone = BotPhone(stand_in, bot, engine)
        engine.subscribe(phone.events.append)
        await engine.start(links=False)
        await phone.bot.start()
        try:
            yield phone
        finally:
            try:
                await stopped(phone.bot.stop(), "stopping the bot")
            finally:
                await stopped(engine.stop(), "stopping the engine")


@asynccontextmanager
async def world_bot(
    world: Any, config: ConsoleConfig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TelegramApi, TelegramBot, Engine]]:
    """A running bot on an engine of ``world`` (tests/engine_world.py) built from ``config``
    with Telegram pointed at a fresh Bot API stand-in; the engine is the test's to start."""
    with TelegramApi() as api:
        monkeypatch.setenv(TOKEN_ENV, api.token)
        telegram = TelegramConfig(
            enabled=True, token_env=TOKEN_ENV, allowed_user_ids=(OWNER,), api_base_url=api.url
        )
        config = replace(config, telegram=telegram)
        engine = Engine(config, await Store.open(config.db_path))
        engine.subscribe(world.events.append)
        world.engine = engine
        bot = TelegramBot(engine, telegram, poll_timeout=1, edit_interval=0.3, network_backoff=0.05)
        await bot.start()
        try:
            yield api, bot, engine
        finally:
            world.engine = None
            try:
                await stopped(bot.stop(), "stopping the bot")
            finally:
                await stopped(engine.stop(), "stopping the engine")
