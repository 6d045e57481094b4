"""Which backend a store address names: a ``postgresql://`` DSN, or else a SQLite file path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from console.store.backend import Backend
from console.store.schema import MIGRATIONS, StoreError

DSN_PREFIXES = ("postgresql://", "postgres://")


def is_dsn(where: str | Path) -> bool:
    return isinstance(where, str) and where.startswith(DSN_PREFIXES)


async def open_backend(
    where: str | Path,
    *,
    password: str | None = None,
    migrations: Sequence[str] | None = None,
) -> Backend:
    """Open and migrate the store at ``where``; ``password`` is for PostgreSQL only.

    psycopg is imported only here, for a DSN, so the SQLite console needs no part of the
    ``team`` extra.
    """
    if is_dsn(where):
        try:
            from console.store.pg_schema import PG_MIGRATIONS
            from console.store.postgres import PostgresBackend
        except ImportError as exc:
            raise StoreError(
                f"a PostgreSQL store needs the team extra (pip install 'levautofix[team]'): {exc}"
            ) from None
        return await PostgresBackend.open(
            str(where), password, PG_MIGRATIONS if migrations is None else migrations
        )
    from console.store.sqlite import SqliteBackend

    return await SqliteBackend.open(where, MIGRATIONS if migrations is None else migrations)
