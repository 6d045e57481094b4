"""One running console: the engine plus, when configured, the Telegram bot beside it.

The TUI, ``autofix serve`` and ``autofix demo`` all run through here, so the bot is on the
same loop and sees the same engine in every mode, and everything stops in the right order
(the bot before the engine, which closes the store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from console.config import ConsoleConfig
from console.engine import Engine


@asynccontextmanager
async def running(
    config: ConsoleConfig, *, links: bool = True, engine: Engine | None = None
) -> AsyncIterator[Engine]:
    """Start the engine (and Telegram if enabled); stop both on the way out."""
    engine = engine or await Engine.open(config)
    bot = None
    try:
        # The bot subscribes first, so errors arriving as the links connect get a message.
        if config.telegram.enabled:
            from console.telegram import TelegramBot

            bot = TelegramBot(engine, config.telegram)
            await bot.start()
        await engine.start(links=links)
        yield engine
    finally:
        if bot is not None:
            await bot.stop()
        await engine.stop()
