"""Approving, skipping and watching fixes from Telegram.

``TelegramBot`` runs on the console's loop next to the engine; ``resolve_bot_token`` finds
the token in the configured environment variable or file.
"""

from console.telegram.bot import TelegramBot
from console.telegram.token import TelegramTokenError, resolve_bot_token

__all__ = ["TelegramBot", "TelegramTokenError", "resolve_bot_token"]
