"""The SQLite backend: one file, the embedded default for one developer.

- Every write is one ``BEGIN IMMEDIATE`` transaction. The write lock is taken before
  anything is read, so a compare-and-set (``UPDATE ... WHERE state = expected``) cannot race
  another connection or another process.
- One aiosqlite connection serves the event loop, behind an asyncio lock; ingest, the hot
  path, runs on a thread of its own with its own connection, under the same lock, so the
  UI's loop never waits on it.
- ``synchronous=NORMAL`` under WAL can lose the last commits on power loss but never corrupts
  the file; the relay resumes from the stored position and the agent still holds those
  events, so nothing is lost for good.
- Ingest does not checkpoint the WAL itself: a checkpoint copies pages into the file and
  syncs both, which made a batch's commit wait on the disk. A checkpoint thread with its own
  connection runs a passive checkpoint (it never blocks a writer or a reader) after every
  :data:`CHECKPOINT_BYTES` of ingested lines; the ingest connection still checkpoints on
  its own past :data:`WAL_BACKSTOP_PAGES`, so the WAL stays bounded if that thread cannot
  keep up. Crash safety is the WAL's either way: a commit is in the WAL when it returns.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from agent.wire import ErrorEvent
from console.storable import Received
from console.store.backend import Dialect, Hold, Row, SyncTx, Tx
from console.store.migrate import migrate, schema_version
from console.store.schema import StoreError

T = TypeVar("T")

log = logging.getLogger(__name__)

# Ingested wire text between two passive checkpoints: about SQLite's own default of 1,000
# pages of WAL, most of which are the occurrences' lines.
CHECKPOINT_BYTES = 4 * 1024 * 1024
# The WAL length (in pages) past which the ingest connection checkpoints on its own commit.
WAL_BACKSTOP_PAGES = 10_000

DIALECT = Dialect(
    name="sqlite",
    lock_row="",
    claim_row="",
    json_text=lambda column, key: f"json_extract({column}, '$.{key}')",
    # One console per file (the state directory's lock): at startup every runner has gone.
    runner_gone="1 = 1",
)


class _AsyncTx:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self._db.execute_fetchall(sql, tuple(params)))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._db.execute(sql, tuple(params))
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._db.executemany(sql, rows)


class _SyncTx:
    # What SQLite or the driver raise for a value they cannot store (as opposed to a full
    # disk or a lock).
    data_errors: tuple[type[BaseException], ...] = (
        ValueError,
        TypeError,
        OverflowError,
        sqlite3.DataError,
        sqlite3.IntegrityError,
        sqlite3.InterfaceError,
    )

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        marks = ", ".join("?" * len(columns))
        self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def upsert_rows(
        self,
        table: str,
        columns: Sequence[str],
        conflict: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        marks = ", ".join("?" * len(columns))
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in conflict)
        self._conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}",
            rows,
        )

    def update_rows(
        self,
        table: str,
        columns: Sequence[str],
        key: str,
        rows: Sequence[Sequence[Any]],
        *,
        added: Collection[str] = (),
    ) -> None:
        """A statement per row: ``BEGIN IMMEDIATE`` already keeps every other writer out."""
        sets = ", ".join(f"{c} = {c} + ?" if c in added else f"{c} = ?" for c in columns)
        self._conn.executemany(f"UPDATE {table} SET {sets} WHERE {key} = ?", rows)

    def exclude_other_ingests(self) -> None:
        pass  # BEGIN IMMEDIATE: no other writer until this transaction ends

    def for_update(self, alias: str) -> str:
        return ""  # BEGIN IMMEDIATE: no other writer until this transaction ends

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


class SqliteBackend:
    """One console database file."""

    dialect = DIALECT

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self.where = str(path)
        self.session = uuid.uuid4().hex
        self._lock = asyncio.Lock()
        self._ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="store-ingest")
        self._ingest_conn: sqlite3.Connection | None = None
        self._checkpoint_pool = ThreadPoolExecutor(1, thread_name_prefix="store-checkpoint")
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_due = CHECKPOINT_BYTES
        self._checkpoint: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, path: str | Path, migrations: Sequence[str]) -> SqliteBackend:
        """Open (creating if needed) and migrate the file; refuse one we cannot read."""
        path = Path(path).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create its directory: {exc.strerror}") from None
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not a database file")
        try:
            db = await aiosqlite.connect(str(path), isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open database: {exc}") from None
        db.row_factory = sqlite3.Row
        try:
            await migrate(db, path, list(migrations))
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def write(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._lock:
            db = self._db
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await body(_AsyncTx(db))
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise
            return result

    async def read(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._lock:
            return await body(_AsyncTx(self._db))

    async def ingest(
        self,
        body: Callable[[SyncTx, str, Sequence[ErrorEvent | Received]], T],
        host: str,
        events: Sequence[ErrorEvent | Received],
    ) -> T:
        async with self._lock:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._ingest_pool, lambda: body(_SyncTx(self._ingest_connection()), host, events)
            )
        self._checkpoint_due -= sum(
            len(x.line) if isinstance(x, Received) else 1024 for x in events
        )
        if self._checkpoint_due <= 0 and (self._checkpoint is None or self._checkpoint.done()):
            self._checkpoint_due = CHECKPOINT_BYTES
            self._checkpoint = loop.run_in_executor(self._checkpoint_pool, self._checkpoint_wal)
        return results

    async def checkpointed(self) -> None:
        """Wait for the checkpoint under way, if any (for close, and for tests)."""
        if self._checkpoint is not None:
            await asyncio.shield(self._checkpoint)

    def _checkpoint_wal(self) -> None:
        """A passive checkpoint on the checkpoint thread's connection: it copies what no
        reader still needs and leaves the rest for the next one."""
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = sqlite3.connect(self.path, isolation_level=None)
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            # The next one, or the ingest connection's own past the backstop, catches up.
            log.warning("%s: WAL checkpoint failed: %s", self.path, exc)

    def _ingest_connection(self) -> sqlite3.Connection:
        """The ingest thread's connection, opened there on first use (same pragmas)."""
        if self._ingest_conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
            self._ingest_conn = conn
        return self._ingest_conn

    def _close_ingest(self) -> None:
        if self._ingest_conn is not None:
            self._ingest_conn.close()
            self._ingest_conn = None

    def _close_checkpoint(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    def watch_session(self, session: str, on_gone: Callable[[], Awaitable[None]]) -> None:
        """No other console shares the file while this one runs: nothing to watch."""

    def on_change(self, listener: Callable[[str, int], None]) -> None:
        """Every change to the file is this console's own: nothing to announce."""

    async def hold(self, name: str) -> Hold:
        """The only console on the file holds every role (reads every host, runs the bot)."""
        return Hold(name)

    async def schema_version(self) -> int:
        async with self._lock:
            return await schema_version(self._db)

    async def integrity_check(self) -> list[str]:
        async with self._lock:
            return [r[0] for r in await self._db.execute_fetchall("PRAGMA integrity_check")]

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._checkpoint_pool, self._close_checkpoint)
        self._checkpoint_pool.shutdown(wait=False)
        await loop.run_in_executor(self._ingest_pool, self._close_ingest)
        self._ingest_pool.shutdown(wait=False)
        await self._db.close()
