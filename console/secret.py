"""Reading a secret (the bot token, the store's password) from a file or an environment
variable, never from the config text.

A problem is reported by naming the place that was looked in -- the file and its config key,
or the variable and the key that names it -- and never by echoing what was found there.
"""

from __future__ import annotations

import os
from pathlib import Path

from console.config import ConsoleConfig


class SecretError(ValueError):
    """The secret could not be read, or is empty; the message says where it was looked for."""


def read_secret(
    *, file: Path | None, file_key: str, env: str, env_key: str, unset_hint: str
) -> tuple[str, str]:
    """The secret, stripped, and the place it came from (for messages about its value).

    ``file`` wins when set, as it is the explicit choice; otherwise the variable ``env``;
    ``unset_hint`` ends the message for a variable that is not set.
    """
    if file is not None:
        where = f"{file_key} {file}"
        try:
            raw = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SecretError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SecretError(f"{where}: cannot read it ({reason})") from None
    else:
        where = f"environment variable {env} ({env_key})"
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"{where} is not set; {unset_hint}")
        raw = value
    secret = raw.strip()
    if not secret:
        raise SecretError(f"{where} is empty")
    return secret, where


def store_password(config: ConsoleConfig) -> str | None:
    """The PostgreSQL store's password, from ``store_password_file`` or
    ``store_password_env``; None when neither is set (libpq's own ways then apply: a
    ``~/.pgpass`` file, ``PGPASSWORD``, or a server that needs none)."""
    if config.store_password_file is None and config.store_password_env is None:
        return None
    secret, _ = read_secret(
        file=config.store_password_file,
        file_key="store_password_file",
        env=config.store_password_env or "",
        env_key="store_password_env",
        unset_hint="export the database password there, or set store_password_file",
    )
    return secret
