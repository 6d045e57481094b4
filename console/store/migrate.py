"""Bringing a console database file to this version's schema, once, at open.

Each migration runs in its own transaction together with its version row, so two consoles
opening one file at the same moment cannot both apply it, and a failed migration leaves
the file as it was. A file from a newer console, or a SQLite file that is not a console
database, is refused without being touched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from console.store.schema import StoreError, now_iso


async def schema_version(db: aiosqlite.Connection) -> int:
    """The highest migration applied to this file (0 for a new one)."""
    rows = await db.execute_fetchall("SELECT MAX(version) FROM schema_migrations")
    return int(next(iter(rows))[0] or 0)


async def migrate(db: aiosqlite.Connection, path: Path, migrations: list[str]) -> None:
    """Apply the migrations ``db`` lacks; raise :class:`StoreError` naming ``path``."""
    try:
        await db.execute("PRAGMA busy_timeout = 30000")
        # Off while migrating: a migration that rebuilds a table drops the original,
        # which other tables reference (SQLite's documented table-rebuild procedure).
        await db.execute("PRAGMA foreign_keys = OFF")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        tables = {r[0] for r in await db.execute_fetchall("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a usable SQLite database: {exc}") from None
    if tables and "schema_migrations" not in tables:
        raise StoreError(
            f"{path}: is a SQLite database but not a LevAutoFix console database "
            f"(no schema_migrations table); refusing to touch it"
        )
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    while True:
        version = await schema_version(db)
        if version > len(migrations):
            raise StoreError(
                f"{path}: written by a newer version of the console "
                f"(schema version {version}; this version knows up to {len(migrations)}); "
                f"upgrade LevAutoFix or point --config at another state_dir"
            )
        if version == len(migrations):
            await db.execute("PRAGMA foreign_keys = ON")
            return
        target = version + 1
        # The version row goes in first: if another process applied this migration
        # meanwhile, the primary key refuses it and the whole script rolls back.
        script = (
            "BEGIN IMMEDIATE;\n"
            f"INSERT INTO schema_migrations (version, applied_at) "
            f"VALUES ({target}, '{now_iso()}');\n"
            f"{migrations[target - 1]}\n;\nCOMMIT;"
        )
        try:
            await db.executescript(script)
        except sqlite3.Error as exc:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            if await schema_version(db) >= target:
                continue  # another process got there first
            raise StoreError(
                f"{path}: schema migration {target} failed and was rolled back: {exc}"
            ) from None
