"""The PostgreSQL backend: one database a team's consoles and ``autofix serve`` share.

psycopg 3 is the driver: its async API runs on the console's event loop, its pool
(psycopg_pool) keeps a few connections ready, and a plain blocking connection serves the
ingest thread, so ingest runs the same synchronous code as on SQLite.

- A write is one transaction on a pooled connection. Compare-and-set transitions read the
  error row ``FOR UPDATE`` first, so two consoles deciding at once are ordered by the row
  lock and the second sees the first's result; a claim (a new attempt) reads it ``FOR
  UPDATE SKIP LOCKED`` (see :meth:`console.store.db.Store.create_attempt`).
- Migrations run in a transaction holding an advisory lock, so consoles opening a new
  database at the same moment apply each migration once.
- Consoles sharing the database learn of each other through the server alone: a trigger
  announces every error and attempt change on a channel each store LISTENs on; an open
  store holds an advisory lock on its session (its attempts' ``runner_session``) and one
  per role it holds (each host it reads, the Telegram bot), and the others wait on those
  locks, which the server grants the moment the holder's connection ends.
- A role's connection can end while this store stays open (a server restart, a network
  drop, ``pg_terminate_backend``): the server hands the lock to a waiting console at that
  instant, so the holder is told (``Hold.lost``) and asks again, and every ingest
  transaction for a host checks before it commits that this session's lock connection
  still holds the host's lock. A batch read after the loss is rolled back, never stored
  beside the new holder's.
- The password is never part of the DSN: it is passed to libpq separately (the config
  names an environment variable or a file, see ``store_password_env``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool

from agent.wire import ErrorEvent
from console.storable import Received
from console.store.backend import Dialect, Hold, Row, SyncTx, Tx, host_role
from console.store.schema import HoldLost, StoreError, now_iso

T = TypeVar("T")
log = logging.getLogger(__name__)

# Every change to an error or an attempt is announced here (see pg_schema migration 7), and
# new transcript lines by the Store itself (Dialect.announce).
CHANGES_CHANNEL = "autofix_changes"
DIALECT = Dialect(
    name="postgresql",
    lock_row=" FOR UPDATE",
    claim_row=" FOR UPDATE SKIP LOCKED",
    json_text=lambda column, key: f"({column}::json ->> '{key}')",
    # Each open store holds the advisory lock on its session id for as long as it is open
    # (see Presence); a lock this transaction can take belongs to a console that has gone.
    runner_gone=(
        "(runner_session IS NULL OR pg_try_advisory_xact_lock(hashtextextended(runner_session, 0)))"
    ),
    # The same shape as the trigger's announcements: "<kind> <id> <application name>".
    announce=(
        f"SELECT pg_notify('{CHANGES_CHANNEL}', ? || ' ' || current_setting('application_name'))"
    ),
)
# Announcements reach only a connection that is listening: one that ends loses those made
# meanwhile. So before each LISTEN the listener marks the oldest transaction still running
# (the xmin of a snapshot, as a 32-bit xid), and after it reads back every row written by
# transactions since the previous mark (a row's xmin, compared by age so xid wraparound is
# no matter) -- a superset of what was missed; a change told twice is only read twice.
SNAPSHOT_MARK = "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text"
CHANGED_SINCE = """
WITH mark AS (SELECT age(%s::xid) AS age)
SELECT 'error', id FROM errors, mark WHERE age(errors.xmin) <= mark.age
UNION ALL SELECT 'attempt', id FROM attempts, mark WHERE age(attempts.xmin) <= mark.age
UNION ALL SELECT DISTINCT 'transcript', attempt_id FROM transcripts, mark
    WHERE age(transcripts.xmin) <= mark.age
"""
APPLICATION_PREFIX = "autofix "
LISTENING = "listening"  # the listener's application_name: "autofix <session> listening"
# How long a lost listening or watching connection waits before connecting again.
RECONNECT_SECONDS = 1.0
# For the connections holding a lock other consoles wait on: the server probes an idle client
# after 5 s and drops it after 3 unanswered probes 2 s apart, so a console whose machine
# vanished frees its hosts and attempts in about 11 s (a killed process: at once).
KEEPALIVE_OPTIONS = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
)
# The same probes from this side, so a lock connection whose network vanished ends here
# too (and its role is given up) instead of waiting on a socket that will never answer.
CLIENT_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
# Whether the backend ``pid`` holds the session advisory lock named by the text key (a
# bigint key is shown split in two 32-bit halves, objsubid 1).
HOLDS_LOCK = (
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s "
    "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)"
)
# Taken while migrating, so two consoles opening one new database apply a migration once.
_MIGRATION_LOCK = 0x4C657641  # "LevA"
POOL_SIZE = 8
CONNECT_TIMEOUT_SECONDS = 30.0


class PgRow(tuple[Any, ...]):
    """A result row shaped like ``sqlite3.Row``: by position, by name, and ``keys()``.

    Each result shape has a subclass of its own holding the names (:func:`_row_class`), so
    making a row is the tuple alone -- reads of many rows (an error's hosts) make one per
    row -- and a name is found by a dict, not a search of the names."""

    _names: tuple[str, ...] = ()
    _index: dict[str, int] = {}  # each subclass has its own

    def keys(self) -> list[str]:
        return list(self._names)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)  # the first of two same-named columns, as sqlite3.Row
    return type("PgRow", (PgRow,), {"_names": names, "_index": index})


def _row_factory(cursor: Any) -> RowMaker[PgRow]:
    return _row_class(tuple(c.name for c in cursor.description or ()))


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The Store's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def dsn_problem(dsn: str) -> str | None:
    """Why ``dsn`` is not a usable store DSN (unparsable, or holding a password), or None."""
    try:
        parts = pg_conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        return f"not a valid PostgreSQL connection string: {str(exc).strip()}"
    if parts.get("password"):
        return "holds a password; name an environment variable or a file for it instead"
    return None


class _AsyncTx:
    def __init__(self, conn: psycopg.AsyncConnection[PgRow]) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = await self._conn.execute(translate(sql), tuple(params))
        if cursor.description is None:
            return []
        return list(await cursor.fetchall())

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(translate(sql), tuple(params))
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._conn.cursor() as cursor:
            await cursor.executemany(translate(sql), list(rows))


class _SyncTx:
    data_errors: tuple[type[BaseException], ...] = (
        ValueError,
        TypeError,
        OverflowError,
        psycopg.DataError,
        psycopg.IntegrityError,
    )

    def __init__(
        self,
        conn: psycopg.Connection[PgRow],
        fence: Callable[[psycopg.Connection[PgRow]], None] | None = None,
        column_types: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self._conn = conn
        # Run last in every transaction, before it commits (see PostgresBackend._fence).
        self._fence = fence
        # Each table's column types, read once per store (for the arrays below).
        self._column_types = {} if column_types is None else column_types

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        cursor = self._conn.execute(translate(sql), tuple(params))
        return list(cursor.fetchall()) if cursor.description is not None else []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(translate(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cursor:
                cursor.executemany(translate(sql), rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """By ``COPY``: one stream for the batch instead of a statement per row."""
        if not rows:
            return
        with (
            self._conn.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def upsert_rows(
        self,
        table: str,
        columns: Sequence[str],
        conflict: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """One statement for the batch: the rows go as one array per column (``unnest``)."""
        if not rows:
            return
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in conflict)
        self._conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM "
            f"{self._unnest(table, columns)} ON CONFLICT ({', '.join(conflict)}) "
            f"DO UPDATE SET {sets}",
            _columns_of(rows, len(columns)),
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
        """Two statements for the batch: one locking the rows in key order (a join may
        visit them in any order, and two consoles ingesting hosts that share errors must
        not lock those in opposite orders), then one ``UPDATE ... FROM unnest(...)``."""
        if not rows:
            return
        arrays = _columns_of(rows, len(columns) + 1)
        key_type = self._types(table)[key]
        self._conn.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {key} = ANY(%s::{key_type}[]) "
            f"ORDER BY {key} FOR UPDATE) AS locked",
            (arrays[-1],),
        )
        sets = ", ".join(
            f"{c} = {table}.{c} + v.{c}" if c in added else f"{c} = v.{c}" for c in columns
        )
        self._conn.execute(
            f"UPDATE {table} SET {sets} FROM {self._unnest(table, [*columns, key])} "
            f"WHERE {table}.{key} = v.{key}",
            arrays,
        )

    def _unnest(self, table: str, columns: Sequence[str]) -> str:
        """``unnest`` of one array parameter per column, typed as the table's columns."""
        types = self._types(table)
        arrays = ", ".join(f"%s::{types[c]}[]" for c in columns)
        return f"unnest({arrays}) AS v({', '.join(columns)})"

    def _types(self, table: str) -> dict[str, str]:
        known = self._column_types.get(table)
        if known is None:
            rows = self._conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            ).fetchall()
            known = self._column_types[table] = {str(n): str(t) for n, t in rows}
        return known

    def exclude_other_ingests(self) -> None:
        # A transaction-level advisory lock, released at commit or rollback; its key is a
        # text no session id (a uuid) can be.
        self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('ingest', 0))")

    def for_update(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias}"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield
            if self._fence is not None:
                self._fence(self._conn)


def _columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (each becomes an array parameter)."""
    return [[row[i] for row in rows] for i in range(width)]


class _Role:
    """A role held on a connection of its own; ``pid`` is that connection's server backend
    while it holds the lock, None from the moment it is known to be lost (the role stays
    in the store's table then, so its host's ingest stays fenced off until held again)."""

    def __init__(self, hold: Hold, conn: psycopg.AsyncConnection[Any]) -> None:
        self.hold = hold
        self.conn = conn
        self.pid: int | None = conn.info.backend_pid


class PostgresBackend:
    """A console store in a PostgreSQL database (``postgresql://user@host/db``)."""

    dialect = DIALECT

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        dsn: str,
        password: str | None,
        session: str,
        presence: psycopg.AsyncConnection[Any],
        mark: str,
    ) -> None:
        self._pool = pool
        self.dsn = dsn
        self.where = dsn
        self.session = session
        self._password = password
        self._presence = presence
        self._background: set[asyncio.Task[None]] = set()
        self._watched: set[str] = set()
        self._listeners: list[Callable[[str, int], None]] = []
        self._listening: asyncio.Task[None] | None = None
        # Changes since this mark are read back when listening (re)starts (SNAPSHOT_MARK).
        self._mark = mark
        self._roles: dict[str, _Role] = {}  # the roles held now, by name
        self._ingest_lock = asyncio.Lock()
        # Ingest runs on a thread of its own with its own blocking connection.
        self._ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="store-ingest")
        self._ingest_conn: psycopg.Connection[PgRow] | None = None
        self._column_types: dict[str, dict[str, str]] = {}

    @classmethod
    async def open(
        cls, dsn: str, password: str | None, migrations: Sequence[str]
    ) -> PostgresBackend:
        problem = dsn_problem(dsn)
        if problem is not None:
            raise StoreError(f"store: the DSN {problem}")
        session = uuid.uuid4().hex
        kwargs = cls._connect_kwargs(password, session)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            kwargs=kwargs,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
        try:
            # One direct connection first: a wrong host or password fails here with
            # libpq's own message, where the pool would only time out.
            first = await psycopg.AsyncConnection.connect(
                dsn,
                connect_timeout=int(CONNECT_TIMEOUT_SECONDS),
                **kwargs,
                options=KEEPALIVE_OPTIONS,
            )
        except psycopg.Error as exc:
            raise StoreError(f"{dsn}: cannot connect: {str(exc).strip()}") from None
        try:
            await migrate(first, dsn, list(migrations))
            mark = await snapshot_mark(first)
            # This connection stays open with the store, holding the lock that tells the
            # other consoles this session (and the attempts it runs) is alive.
            await first.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (session,))
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except BaseException:
            await first.close()
            await pool.close()
            raise
        return cls(pool, dsn, password, session, first, mark)

    @staticmethod
    def _connect_kwargs(password: str | None, session: str) -> dict[str, Any]:
        """Every connection names the session (``application_name``), so the change
        announcements it causes say whose they are."""
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": _row_factory,
            "application_name": APPLICATION_PREFIX + session,
        }
        if password is not None:
            kwargs["password"] = password
        return kwargs

    async def _connect(
        self, *, keepalive: bool = False, purpose: str = ""
    ) -> psycopg.AsyncConnection[Any]:
        """A connection of its own; ``keepalive`` for one holding a lock other consoles wait
        for, so the server notices within seconds when this console's host vanishes. A
        ``purpose`` follows the session in ``application_name`` (the server's view of who is
        connected); only a connection that writes nothing may have one, as announcements
        name their origin by it."""
        kwargs = self._connect_kwargs(self._password, self.session)
        if keepalive:
            kwargs["options"] = KEEPALIVE_OPTIONS
            kwargs.update(CLIENT_KEEPALIVES)
        if purpose:
            kwargs["application_name"] += f" {purpose}"
        return await psycopg.AsyncConnection.connect(
            self.dsn, connect_timeout=int(CONNECT_TIMEOUT_SECONDS), **kwargs
        )

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- other consoles ---------------------------------------------------------------------

    def watch_session(self, session: str, on_gone: Callable[[], Awaitable[None]]) -> None:
        """Wait, on a connection of its own, for the advisory lock ``session`` holds while
        its store is open: the server grants it the moment that console's connection ends
        (a clean close, ``kill -9``, a lost network), and ``on_gone`` runs then."""
        if session in self._watched:
            return
        self._watched.add(session)
        self._spawn(self._watch(session, on_gone), f"store-watch-{session[:8]}")

    async def _watch(self, session: str, on_gone: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(
                        "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (session,)
                    )
                    await conn.execute(
                        "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (session,)
                    )
                break
            except psycopg.Error:
                await asyncio.sleep(RECONNECT_SECONDS)
        self._watched.discard(session)
        try:
            await on_gone()
        except Exception:
            log.exception("handling the end of store session %s failed", session)

    async def hold(self, name: str) -> Hold:
        """Return once this session holds the advisory lock named ``name`` (at once if no
        other console does, else the moment its holder goes away). It is kept on a
        connection of its own until the store closes or that connection ends; then the
        hold is ``lost`` and the caller asks again."""
        while True:
            try:
                conn = await self._connect(keepalive=True)
            except psycopg.Error:
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            try:
                await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
            except psycopg.Error:
                await conn.close()
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            except BaseException:
                await conn.close()
                raise
            role = self._roles[name] = _Role(Hold(name), conn)
            self._spawn(self._keep(role), f"store-hold-{name}")
            return role.hold

    async def _keep(self, role: _Role) -> None:
        """Wait on the role's connection for its end: nothing is listened for on it, so
        waiting for notifications returns only with the error that ends it (the server's
        "terminating connection", a closed socket, the keepalive giving up)."""
        try:
            async for _ in role.conn.notifies():
                pass
        except psycopg.Error as exc:
            log.warning("%s: the lock on %s was lost (%s)", self.dsn, role.hold.name, exc)
        except asyncio.CancelledError:
            await role.conn.close()  # the store is closing
            raise
        role.pid = None  # kept until hold() takes the role again: ingest stays fenced off
        role.hold.lost.set()
        await role.conn.close()

    def _fence(self, host: str) -> Callable[[psycopg.Connection[PgRow]], None] | None:
        """The check that ends each ingest transaction for ``host`` when this store reads it
        under its lock: the lock is still held by this session's lock connection, or the
        transaction is rolled back (:class:`HoldLost`). The row lock the ingest took on the
        host comes first, so a console that takes the host over after this check stores its
        batch after this one commits, never beside it."""
        name = host_role(host)
        if name not in self._roles:
            return None  # not read under a lock here (an import, a test's direct ingest)

        def check(conn: psycopg.Connection[PgRow]) -> None:
            role = self._roles.get(name)
            pid = role.pid if role is not None else None
            if pid is None or conn.execute(HOLDS_LOCK, (pid, name)).fetchone() is None:
                raise HoldLost(
                    f"{self.dsn}: this console no longer holds {name}; the batch was not "
                    f"stored (the console holding the host now stores it)"
                )

        return check

    def on_change(self, listener: Callable[[str, int], None]) -> None:
        """Listen on the change channel (one connection, started with the first listener):
        the server pushes each announcement as its transaction commits."""
        self._listeners.append(listener)
        if self._listening is None:
            self._listening = self._spawn(self._listen(), "store-listen")

    async def _listen(self) -> None:
        own = APPLICATION_PREFIX + self.session
        while True:
            try:
                async with await self._connect(purpose=LISTENING) as conn:
                    mark = await snapshot_mark(conn)
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    cursor = await conn.execute(CHANGED_SINCE, (self._mark,))
                    for kind, number in await cursor.fetchall():
                        self._tell(str(kind), int(number))
                    self._mark = mark
                    async for note in conn.notifies():
                        kind, _, rest = note.payload.partition(" ")
                        number, _, origin = rest.partition(" ")
                        if origin != own and number.isdigit():
                            self._tell(kind, int(number))
            except psycopg.Error as exc:
                log.warning("%s: listening for changes stopped (%s); reconnecting", self.dsn, exc)
                await asyncio.sleep(RECONNECT_SECONDS)

    def _tell(self, kind: str, number: int) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, number)
            except Exception:
                log.exception("a store change listener failed")

    async def write(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._pool.connection() as conn, conn.transaction():
            return await body(_AsyncTx(conn))

    async def read(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._pool.connection() as conn:
            return await body(_AsyncTx(conn))

    async def ingest(
        self,
        body: Callable[[SyncTx, str, Sequence[ErrorEvent | Received]], T],
        host: str,
        events: Sequence[ErrorEvent | Received],
    ) -> T:
        async with self._ingest_lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._ingest_pool, self._ingest_on_thread, body, host, events
            )

    def _ingest_on_thread(
        self,
        body: Callable[[SyncTx, str, Sequence[ErrorEvent | Received]], T],
        host: str,
        events: Sequence[ErrorEvent | Received],
    ) -> T:
        conn = self._ingest_conn
        if conn is None or conn.closed:
            conn = self._ingest_conn = psycopg.connect(
                self.dsn,
                connect_timeout=int(CONNECT_TIMEOUT_SECONDS),
                **self._connect_kwargs(self._password, self.session),
            )
        return body(_SyncTx(conn, self._fence(host), self._column_types), host, events)

    async def schema_version(self) -> int:
        async with self._pool.connection() as conn:
            return await schema_version(conn)

    async def integrity_check(self) -> list[str]:
        """Indexes left invalid (a failed build) and constraints never validated, if any."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT 'index ' || c.relname || ' is invalid' FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND NOT i.indisvalid "
                "UNION ALL SELECT 'constraint ' || conname || ' is not validated' "
                "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace "
                "AND NOT convalidated"
            )
            problems = [str(r[0]) for r in await cursor.fetchall()]
        return problems or ["ok"]

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._pool.close()
        for role in list(self._roles.values()):
            await role.conn.close()
        await self._presence.close()
        await asyncio.get_running_loop().run_in_executor(self._ingest_pool, self._close_ingest)
        self._ingest_pool.shutdown(wait=False)

    def _close_ingest(self) -> None:
        if self._ingest_conn is not None:
            self._ingest_conn.close()
            self._ingest_conn = None


async def snapshot_mark(conn: psycopg.AsyncConnection[Any]) -> str:
    """The oldest transaction running now, as the 32-bit xid ``CHANGED_SINCE`` compares."""
    cursor = await conn.execute(SNAPSHOT_MARK)
    row = await cursor.fetchone()
    assert row is not None
    return str(row[0])


async def schema_version(conn: psycopg.AsyncConnection[Any]) -> int:
    cursor = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: psycopg.AsyncConnection[Any], dsn: str, migrations: list[str]) -> None:
    """Apply the migrations the database lacks, each in a transaction with its version row.

    A database holding other tables but no ``schema_migrations`` is not a console's and is
    refused untouched, as is one written by a newer console.
    """
    for target in range(1, len(migrations) + 2):
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                cursor = await conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
                tables = {r[0] for r in await cursor.fetchall()}
                if tables and "schema_migrations" not in tables:
                    raise StoreError(
                        f"{dsn}: the database holds tables but is not a LevAutoFix console "
                        f"database (no schema_migrations table); refusing to touch it"
                    )
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
                )
                version = await schema_version(conn)
                if version > len(migrations):
                    raise StoreError(
                        f"{dsn}: written by a newer version of the console (schema version "
                        f"{version}; this version knows up to {len(migrations)}); "
                        f"upgrade LevAutoFix"
                    )
                if version >= target or target > len(migrations):
                    continue
                await conn.execute(migrations[target - 1].encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (target, now_iso()),
                )
        except psycopg.Error as exc:
            raise StoreError(
                f"{dsn}: schema migration {target} failed and was rolled back: {str(exc).strip()}"
            ) from None
