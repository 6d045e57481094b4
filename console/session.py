"""One running console: the engine plus, when configured, the Telegram bot beside it.

The TUI, ``autofix serve`` and ``autofix demo`` all run through here, so the bot is on the
same loop and sees the same engine in every mode, and everything stops in the right order
(the bot before the engine, which closes the store).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from console.config import ConsoleConfig
from console.engine import Engine

if TYPE_CHECKING:
    from console.telegram import TelegramBot

# How long starting waits for the bot's role before leaving it to a standby task.
BOT_ELECTION_SECONDS = 1.0


@asynccontextmanager
async def running(
    config: ConsoleConfig, *, links: bool = True, engine: Engine | None = None
) -> AsyncIterator[Engine]:
    """Start the engine (and Telegram if enabled); stop both on the way out."""
    engine = engine or await Engine.open(config)
    bot = None
    standby: asyncio.Task[None] | None = None
    try:
        # The bot subscribes first, so errors arriving as the links connect get a message.
        # On a store the team shares, one console runs the bot: this one waits for the
        # role (at once on SQLite) and takes it over when the console holding it goes away.
        if config.telegram.enabled:
            from console.telegram import TelegramBot

            bot = TelegramBot(engine, config.telegram)
            held = asyncio.ensure_future(engine.store.hold_bot())
            done, _ = await asyncio.wait({held}, timeout=BOT_ELECTION_SECONDS)
            if done:
                await held
                await bot.start()
            else:
                standby = asyncio.create_task(_bot_on_takeover(held, bot), name="telegram-standby")
        await engine.start(links=links)
        yield engine
    finally:
        if standby is not None:
            standby.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await standby
        if bot is not None:
            await bot.stop()
        await engine.stop()


async def _bot_on_takeover(held: asyncio.Future[None], bot: TelegramBot) -> None:
    try:
        await held
    except asyncio.CancelledError:
        held.cancel()
        raise
    await bot.start()
