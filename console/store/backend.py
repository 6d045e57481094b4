"""What the Store needs from a database engine: the interface SQLite and PostgreSQL implement.

The Store's API and every query it runs are written once (``console.store.db``); a backend
supplies transactions, reads, the ingest path and the few spots where the SQL dialects
differ (:class:`Dialect`). Queries use ``?`` placeholders; a backend whose driver wants
another style translates them. That keeps one set of semantics -- compare-and-set
transitions, idempotent ingest -- for both, checked by one test suite run against each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from agent.wire import ErrorEvent
from console.storable import Received

T = TypeVar("T")


def host_role(host: str) -> str:
    """The role a console holds while it reads ``host`` (see :meth:`Backend.hold`)."""
    return f"host {host}"


@dataclass
class Hold:
    """A role this store session holds among the sessions sharing the database.

    ``lost`` is set the moment the role stops being held -- on PostgreSQL when the
    connection holding its lock ends (a server restart, a network drop, the backend
    terminated), which frees the lock for another console at once -- so the holder stops
    acting on it and asks for it again. A SQLite store's roles are never lost.
    """

    name: str
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class Row(Protocol):
    """A result row: by position, by column name, and unpackable (``sqlite3.Row``'s shape)."""

    def keys(self) -> list[str]: ...

    def __getitem__(self, key: Any, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Dialect:
    """The SQL that differs between the engines, as fragments the Store's queries splice in.

    ``lock_row`` follows a ``SELECT`` of the row a compare-and-set is about to change (SQLite
    needs nothing: ``BEGIN IMMEDIATE`` already serialises every writer); ``claim_row`` follows
    the ``SELECT`` that claims an error for a new attempt, so of two consoles claiming at once
    one gets the row and the other skips it instead of waiting. ``json_text`` is an
    expression reading one top-level text field of a JSON text column.
    """

    name: str
    lock_row: str
    claim_row: str
    json_text: Callable[[str, str], str]
    # A condition on an attempts row: the console that runs it has gone.
    runner_gone: str
    # A statement announcing a change (its one parameter: "<kind> <id>") to the other
    # consoles sharing the database as the transaction commits; None where none share it.
    announce: str | None = None


class Tx(Protocol):
    """One open transaction (or a read) on a backend's async connection."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class SyncTx(Protocol):
    """The ingest thread's connection: blocking calls, transactions of its own."""

    # What the driver raises for a value it cannot store (not a lost connection or a lock).
    data_errors: tuple[type[BaseException], ...]

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Append rows to a table the fastest way the engine has (the bulk of ingest)."""
        ...

    def upsert_rows(
        self,
        table: str,
        columns: Sequence[str],
        conflict: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Insert rows, or where one's ``conflict`` columns (a unique key; distinct within
        ``rows``) match a stored row, set that row's other columns to the new values."""
        ...

    def update_rows(
        self,
        table: str,
        columns: Sequence[str],
        key: str,
        rows: Sequence[Sequence[Any]],
        *,
        added: Collection[str] = (),
    ) -> None:
        """For each row (its ``columns`` then its ``key``; keys distinct), set the stored
        row's columns to its values, or raise them by its values for the ``added`` ones.
        Stored rows are locked in key order, so writers sharing rows never deadlock."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction: committed on exit, rolled back on an exception."""
        ...

    def exclude_other_ingests(self) -> None:
        """Wait until no other console's ingest transaction runs, and keep them out until
        this one ends. Batches of hosts that share errors lock those rows and create new ones;
        two at once could each wait on a row the other holds (a deadlock that rolls one back)."""
        ...

    def for_update(self, alias: str) -> str:
        """A clause ending a SELECT that locks the rows of ``alias`` it reads until the
        transaction ends, so a write computed from them loses no other console's change
        made in between ('' where the write transaction already excludes every writer)."""
        ...


class Backend(Protocol):
    """A database the Store runs on. ``where`` names it in messages (never with a password)."""

    where: str
    dialect: Dialect
    # This open store's own id (in the attempts it runs; unique per open).
    session: str

    def watch_session(self, session: str, on_gone: Callable[[], Awaitable[None]]) -> None:
        """Call ``on_gone`` once the store session ``session`` (another console) has gone."""
        ...

    def on_change(self, listener: Callable[[str, int], None]) -> None:
        """Call ``listener(kind, id)`` for every change another store session commits: kind
        ``error``, ``attempt`` or ``transcript`` (an attempt's id: it has new lines). A
        change may be told more than once (after a lost connection), never not at all."""
        ...

    async def hold(self, name: str) -> Hold:
        """Return once this session alone holds the role ``name`` (reading a host, polling
        the Telegram bot) among the sessions sharing the database; held until it closes or
        until the returned hold is ``lost``. While a host's role is lost, ingesting that
        host's events raises :class:`console.store.schema.HoldLost`."""
        ...

    async def write(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one write transaction; rolled back whole if it raises."""
        ...

    async def read(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``body``'s reads; several reads in one body see one state of the data."""
        ...

    async def ingest(
        self,
        body: Callable[[SyncTx, str, Sequence[ErrorEvent | Received]], T],
        host: str,
        events: Sequence[ErrorEvent | Received],
    ) -> T:
        """Run the ingest function off the event loop on the backend's ingest connection."""
        ...

    async def schema_version(self) -> int: ...

    async def integrity_check(self) -> list[str]:
        """The engine's own verdict on the data (``["ok"]`` when healthy)."""
        ...

    async def close(self) -> None: ...
