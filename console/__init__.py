"""LevAutoFix console: the developer-side engine, terminal UI and Telegram bot."""

__version__ = "0.1.0"
