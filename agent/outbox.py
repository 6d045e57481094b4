"""The agent's durable outbox: error groups, relayed events and source positions in SQLite.

Everything the agent knows lives in one SQLite file in its state directory (WAL mode).
Occurrences are counted into their group in the same transaction that advances the
source position they were read from, so a ``kill -9`` at any moment neither loses nor
double-counts an occurrence: after a restart the tailer resumes exactly where the last
committed transaction left it. Events get their ``seq`` from an AUTOINCREMENT key, so a
seq is never reused, even after retention has deleted old events.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.classify import classify, error_text, meets
from agent.config import AgentConfig, DetectionConfig
from agent.occurrence import Occurrence
from agent.record import in_app_flags
from agent.sanitize import dumps, safe_text
from agent.tail import Position
from agent.wire import ErrorEvent, Start, encode_unsequenced, iso

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    sig TEXT NOT NULL,
    sig_len INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (service, key)
);
CREATE TABLE IF NOT EXISTS groups (
    service TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    stack TEXT NOT NULL,
    route TEXT,
    count INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    pending_since REAL,
    last_arrival REAL NOT NULL,
    relayed INTEGER NOT NULL DEFAULT 0,
    severity TEXT NOT NULL DEFAULT 'low',
    in_app TEXT,
    host TEXT,
    PRIMARY KEY (service, fingerprint)
);
CREATE INDEX IF NOT EXISTS groups_pending ON groups (pending) WHERE pending > 0;
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_health (
    source TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    last_failure REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    digest TEXT PRIMARY KEY,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    payload TEXT NOT NULL
);
"""


# How long the digest of a received OTLP batch is kept to recognise a retried copy:
# shippers give up retrying within minutes.
RECEIPT_SECONDS = 86400.0
# Columns added since a database was first created, with their types.
_ADDED_COLUMNS = (("in_app", "TEXT"), ("host", "TEXT"))


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Columns added since a database was created: nullable, so an older agent can still
    read and write the file."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(groups)")}
    for column, kind in _ADDED_COLUMNS:
        if column not in columns:
            conn.execute(f"ALTER TABLE groups ADD COLUMN {column} {kind}")


@dataclass(frozen=True)
class GroupState:
    service: str
    fingerprint: str
    error_type: str
    message: str
    stack: list[str]
    route: str | None
    count: int
    pending: int
    first_seen: str
    last_seen: str
    relayed: bool
    severity: str


@dataclass(frozen=True)
class SourceHealth:
    """What ``run`` last recorded about a source that failed: ``state`` is ``failed``
    while it waits to be restarted and ``running`` once it runs again."""

    source: str
    state: str
    failures: int
    last_error: str
    last_failure: float


@dataclass(frozen=True)
class NotStored:
    """An occurrence the database refused even in its safe form, and why."""

    occurrence: Occurrence
    reason: str


class OutboxError(RuntimeError):
    """The state directory or its database cannot be used; the message says why."""


class Outbox:
    """Single-writer access to the agent's state database (the ``run`` daemon)."""

    def __init__(self, conn: sqlite3.Connection, host: str) -> None:
        self._conn = conn
        self.host = host
        self.instance = self._meta("instance") or ""

    @classmethod
    def open(cls, path: Path, host: str) -> Outbox:
        """Open (creating if needed) the outbox; refuse a database from a newer agent."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            _add_missing_columns(conn)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open state database {path}: {exc}") from None
        outbox = cls(conn, host)
        version = outbox._meta("schema_version")
        if version is None:
            with outbox._tx():
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (uuid.uuid4().hex,)
                )
            outbox.instance = outbox._meta("instance") or ""
        elif int(version) > SCHEMA_VERSION:
            conn.close()
            raise OutboxError(
                f"state database {path} has schema version {version}, newer than this agent "
                f"understands ({SCHEMA_VERSION}); upgrade the agent"
            )
        return outbox

    def close(self) -> None:
        self._conn.close()

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            if exc_type is None:
                self.conn.execute("COMMIT")
            else:
                self.conn.execute("ROLLBACK")

    def _tx(self) -> Outbox._Tx:
        return Outbox._Tx(self._conn)

    # --- positions -------------------------------------------------------------------

    def positions(self, service: str) -> dict[str, Position]:
        """The saved read positions of one service's file source, by file key."""
        rows = self._conn.execute(
            "SELECT key, path, sig, sig_len, offset FROM positions WHERE service = ?", (service,)
        )
        return {
            r[0]: Position(key=r[0], path=r[1], sig=r[2], sig_len=r[3], offset=r[4]) for r in rows
        }

    # --- ingest ----------------------------------------------------------------------

    def ingest(
        self,
        occurrences: Sequence[Occurrence],
        positions: Iterable[tuple[str, Position]] = (),
        forget: Iterable[tuple[str, str]] = (),
        now: float | None = None,
        cursors: Iterable[tuple[str, str]] = (),
        starts: Iterable[tuple[str, str]] = (),
    ) -> list[NotStored]:
        """Count occurrences and advance source positions in one transaction.

        ``positions`` are (service, position) pairs; ``forget`` lists (service, key) pairs
        of files that are finished (rotated away and drained), removed in the same
        transaction; ``cursors`` are (source, cursor) pairs of sources that resume from a
        cursor of their own (journald). An occurrence the database refuses is left out
        and returned, and the positions still advance: one record must never hold a
        source back. A failure of the transaction itself (disk full) raises, and nothing
        of it is stored. ``starts`` are (service, line) pairs of start lines the sources
        showed: each becomes a ``start`` event at once (it needs no settling).
        """
        arrival = time.time() if now is None else now
        with self._tx() as conn:
            refused = self._count_all(conn, occurrences, arrival)
            for service, line in starts:
                event = Start(seq=0, host=self.host, service=service, at=iso(arrival), line=line)
                conn.execute(
                    "INSERT INTO events (created, payload) VALUES (?, ?)",
                    (arrival, encode_unsequenced(event)),
                )
            for service, pos in positions:
                conn.execute(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)",
                    (service, pos.key, pos.path, pos.sig, pos.sig_len, pos.offset),
                )
            for service, key in forget:
                conn.execute("DELETE FROM positions WHERE service = ? AND key = ?", (service, key))
            for source, cursor in cursors:
                conn.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (source, cursor))
        return refused

    def ingest_once(
        self, receipt: str, occurrences: Sequence[Occurrence], now: float | None = None
    ) -> list[NotStored] | None:
        """Count occurrences that arrived together under ``receipt`` (a digest of what the
        sender sent), unless that receipt was already committed: then nothing is counted
        and None is returned. The receipt is kept in the same transaction as the counts,
        so a sender retrying a batch whose answer it never got is counted once."""
        arrival = time.time() if now is None else now
        with self._tx() as conn:
            known = conn.execute(
                "INSERT OR IGNORE INTO receipts VALUES (?, ?)", (receipt, arrival)
            ).rowcount
            if not known:
                return None
            return self._count_all(conn, occurrences, arrival)

    def _count_all(
        self, conn: sqlite3.Connection, occurrences: Sequence[Occurrence], arrival: float
    ) -> list[NotStored]:
        """Count each occurrence; one the database refuses is left out and returned."""
        arrival_iso = iso(arrival)
        refused: list[NotStored] = []
        for occ in occurrences:
            try:
                self._count(conn, occ, arrival, arrival_iso)
            except (sqlite3.DataError, sqlite3.IntegrityError, ValueError) as exc:
                # SQLite undoes just the failed statement; the transaction goes on.
                refused.append(NotStored(occ, f"{type(exc).__name__}: {exc}"))
        return refused

    @staticmethod
    def _count(conn: sqlite3.Connection, occ: Occurrence, arrival: float, arrival_iso: str) -> None:
        rec = occ.record
        seen = rec.timestamp or arrival_iso
        conn.execute(
            """
            INSERT INTO groups (service, fingerprint, error_type, message, stack, route,
                count, pending, first_seen, last_seen, pending_since, last_arrival, in_app,
                host)
            VALUES (?, ?, ?, ?, ?, ?, 1, 1, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (service, fingerprint) DO UPDATE SET
                count = count + 1,
                pending = pending + 1,
                message = excluded.message,
                stack = excluded.stack,
                in_app = excluded.in_app,
                route = COALESCE(excluded.route, route),
                first_seen = MIN(first_seen, excluded.first_seen),
                last_seen = MAX(last_seen, excluded.last_seen),
                pending_since = COALESCE(pending_since, excluded.pending_since),
                last_arrival = excluded.last_arrival,
                host = excluded.host
            """,
            (
                occ.service,
                occ.fingerprint,
                rec.error_type,
                rec.message,
                dumps(rec.stack, compact=False),
                rec.route,
                seen,
                seen,
                arrival,
                arrival,
                dumps(in_app_flags(rec.stack, rec.frames)),
                occ.host,
            ),
        )

    def cursor(self, source: str) -> str | None:
        """The saved cursor of a source that keeps its own (journald), or None."""
        row = self._conn.execute(
            "SELECT cursor FROM cursors WHERE source = ?", (source,)
        ).fetchone()
        return row[0] if row else None

    # --- source health -----------------------------------------------------------------

    def source_failed(self, source: str, error: str, now: float | None = None) -> None:
        """Record that a source's task failed (it is restarted after a back-off)."""
        at = time.time() if now is None else now
        with self._tx() as conn:
            conn.execute(
                """INSERT INTO source_health VALUES (?, 'failed', 1, ?, ?)
                   ON CONFLICT (source) DO UPDATE SET state = 'failed',
                       failures = failures + 1, last_error = excluded.last_error,
                       last_failure = excluded.last_failure""",
                (source, safe_text(error, 1000), at),
            )

    def source_running(self, source: str) -> None:
        """Record that a source that had failed runs again."""
        with self._tx() as conn:
            conn.execute("UPDATE source_health SET state = 'running' WHERE source = ?", (source,))

    # --- settle ----------------------------------------------------------------------

    def _due_clause(self) -> str:
        return """
            pending > 0 AND (
                (relayed = 0 AND (last_arrival + :settle <= :now OR pending_since + :cap <= :now))
                OR (relayed = 1 AND pending_since + :update <= :now)
            )
        """

    def settle(self, detection: DetectionConfig, now: float | None = None) -> list[ErrorEvent]:
        """Emit events for every group whose settle window has closed, in one transaction.

        A group that has never been relayed is classified; at or above the minimum
        severity it becomes an ``error`` event, below it the occurrences stay counted but
        nothing is relayed until a later burst lifts it. A relayed group gets an
        ``update`` with its running total.
        """
        at = time.time() if now is None else now
        params = {
            "now": at,
            "settle": detection.settle_seconds,
            "cap": detection.max_settle_seconds,
            "update": detection.update_seconds,
        }
        events: list[ErrorEvent] = []
        with self._tx() as conn:
            rows = conn.execute(
                f"""SELECT service, fingerprint, error_type, message, stack, route, count,
                           first_seen, last_seen, relayed, in_app, host
                    FROM groups WHERE {self._due_clause()}
                    ORDER BY last_arrival""",
                params,
            ).fetchall()
            for row in rows:
                service, fp, etype, message, stack_json, route, count, first, last = row[:9]
                relayed, in_app, sender = row[9], row[10], row[11]
                # A group that came over OTLP names the host its latest occurrence came from.
                host = sender or self.host
                stack = json.loads(stack_json)
                severity = classify(error_text(etype, message, stack), count, detection)
                if relayed or meets(severity, detection.min_severity):
                    event = ErrorEvent(
                        type="update" if relayed else "error",
                        seq=0,  # the row's key, known once it is written
                        host=host,
                        service=service,
                        fingerprint=fp,
                        count=count,
                        severity=severity,  # type: ignore[arg-type]
                        message=message,
                        error_type=etype,
                        stack=stack,
                        route=route,
                        first_seen=first,
                        last_seen=last,
                        in_app=json.loads(in_app) if in_app else [],
                    )
                    cur = conn.execute(
                        "INSERT INTO events (created, payload) VALUES (?, ?)",
                        (at, encode_unsequenced(event)),
                    )
                    assert cur.lastrowid is not None
                    events.append(replace(event, seq=cur.lastrowid))
                conn.execute(
                    """UPDATE groups SET pending = 0, pending_since = NULL, severity = ?,
                           relayed = relayed OR ?
                       WHERE service = ? AND fingerprint = ?""",
                    (severity, relayed or meets(severity, detection.min_severity), service, fp),
                )
        return events

    def next_due(self, detection: DetectionConfig) -> float | None:
        """Epoch time at which the next settle is due, or None when nothing is pending."""
        row = self._conn.execute(
            """SELECT MIN(CASE WHEN relayed = 0
                          THEN MIN(last_arrival + ?, pending_since + ?)
                          ELSE pending_since + ? END)
               FROM groups WHERE pending > 0""",
            (detection.settle_seconds, detection.max_settle_seconds, detection.update_seconds),
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    # --- retention & reading ---------------------------------------------------------

    def prune(self, config: AgentConfig, now: float | None = None) -> int:
        """Drop events past the configured age or count; seqs are never reused."""
        at = time.time() if now is None else now
        cutoff = at - config.retention.max_age_days * 86400
        with self._tx() as conn:
            removed = conn.execute("DELETE FROM events WHERE created < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM receipts WHERE received < ?", (at - RECEIPT_SECONDS,))
            row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
            if row and row[0] is not None:
                removed += conn.execute(
                    "DELETE FROM events WHERE seq <= ?", (row[0] - config.retention.max_events,)
                ).rowcount
        return removed

    def groups(self) -> list[GroupState]:
        rows = self._conn.execute(
            """SELECT service, fingerprint, error_type, message, stack, route, count, pending,
                      first_seen, last_seen, relayed, severity FROM groups ORDER BY first_seen"""
        )
        return [
            GroupState(
                service=r[0],
                fingerprint=r[1],
                error_type=r[2],
                message=r[3],
                stack=json.loads(r[4]),
                route=r[5],
                count=r[6],
                pending=r[7],
                first_seen=r[8],
                last_seen=r[9],
                relayed=bool(r[10]),
                severity=r[11],
            )
            for r in rows
        ]


class OutboxReader:
    """Read-only view of the outbox for ``stream``; never writes to the database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA query_only = 1")
            try:
                conn.execute("SELECT 1 FROM events LIMIT 1")
            except sqlite3.OperationalError:
                conn.close()
                return None
            self._conn = conn
        return self._conn

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap "anything new?" probe."""
        conn = self._connect()
        if conn is None:
            return -1
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def bounds(self) -> tuple[int, int]:
        conn = self._connect()
        if conn is None:
            return (0, 0)
        row = conn.execute("SELECT MIN(seq), MAX(seq) FROM events").fetchone()
        seq_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        last = seq_row[0] if seq_row else 0
        return (row[0] or 0, last or 0)

    def instance(self) -> str:
        conn = self._connect()
        if conn is None:
            return ""
        row = conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        return row[0] if row else ""

    def events_after(self, seq: int, limit: int = 1000) -> Iterator[tuple[int, str]]:
        """(seq, payload JSON) pairs in seq order; payloads lack ``seq``, added on output."""
        conn = self._connect()
        if conn is None:
            return iter(())
        return iter(
            conn.execute(
                "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        )

    def source_health(self) -> list[SourceHealth]:
        """Every source ``run`` has recorded a failure for (an older database: none)."""
        conn = self._connect()
        if conn is None:
            return []
        try:
            rows = conn.execute(
                "SELECT source, state, failures, last_error, last_failure FROM source_health"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        return [SourceHealth(*row) for row in rows]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
