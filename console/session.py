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
    from console.store.backend import Hold
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
    bot_role: asyncio.Task[None] | None = None
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
            bot_role = asyncio.create_task(
                _bot_role(engine, bot, held, running=bool(done)), name="telegram-role"
            )
        await engine.start(links=links)
        yield engine
    finally:
        if bot_role is not None:
            bot_role.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bot_role
        if bot is not None:
            await bot.stop()
        await engine.stop()


async def _bot_role(
    engine: Engine, bot: TelegramBot, held: asyncio.Future[Hold], *, running: bool
) -> None:
    """Run the bot while this console holds its role (``running``: it does already), and
    take the role over when the console holding it goes away. A lost role stops the bot at
    once -- another console's bot may be polling already -- and the role is asked again."""
    try:
        while True:
            hold = await held
            if not running:
                await bot.start()
            await hold.lost.wait()
            await bot.stop()
            engine.telegram = None
            running = False
            held = asyncio.ensure_future(engine.store.hold_bot())
    except asyncio.CancelledError:
        held.cancel()
        raise
