"""The ingest hot path: a batch of relayed events from one host becomes rows in one transaction.

It is idempotent on (host, instance, seq) so the relay can resend after a reconnect, it does
a fixed number of statements per batch (``executemany``) and works per distinct fingerprint
rather than per event. The agent sends running totals per host; each host's latest total is
kept and the error's count is their sum, so replays and several hosts never double count.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from json.encoder import encode_basestring
from typing import Any

import aiosqlite

from agent.wire import SEVERITIES, ErrorEvent
from console.models import IngestResult
from console.storable import MAX_INTEGER, seq_shown, unstorable
from console.store.schema import KEYS_PER_QUERY, now_iso, placeholders

# Runs a body in one write transaction of the store (Store._write).
Write = Callable[
    [Callable[[aiosqlite.Connection], Awaitable[list[IngestResult]]]],
    Awaitable[list[IngestResult]],
]

_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_INSERT_OCCURRENCE = (
    "INSERT INTO occurrences (host, instance, seq, error_id, type, count, received_at, raw) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_esc: Callable[[str], str] = encode_basestring


# What SQLite or the driver raise for a value they cannot store (as opposed to a full disk
# or a lock): only these make ingest look for the one bad event of a batch.
_DATA_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
)


def _refused(host: str, e: ErrorEvent, problem: str) -> IngestResult:
    seq = e.seq if type(e.seq) is int and 0 < e.seq <= MAX_INTEGER else 0
    message = f"{host}: event seq {seq_shown(e)} not stored: {problem}"
    return IngestResult(seq, 0, False, False, message)


def _json_list(items: list[str]) -> str:
    return f"[{','.join(map(_esc, items))}]"


class _Group:
    """The fresh events of one batch for one error, folded as ingest walks the batch.

    It also encodes each event's raw line: within one error the host, message, stack and
    the like rarely change between events, so those parts are escaped once and reused.
    """

    __slots__ = (
        "_head",
        "_source",
        "_stack",
        "_tail",
        "error_id",
        "first_seen",
        "last_seen",
        "latest",
        "rank",
        "severity",
    )

    def __init__(self, e: ErrorEvent, error_id: int) -> None:
        self.error_id = error_id
        self.latest = e
        self.severity: str = e.severity
        self.rank = _SEVERITY_RANK.get(e.severity, 0)
        self.first_seen = e.first_seen
        self.last_seen = e.last_seen
        self._encode_parts(e)

    def _encode_parts(self, e: ErrorEvent) -> None:
        # Runs on the first event and whenever one differs from the last encoded one, which
        # makes it the place to fold the fields that change that rarely.
        rank = _SEVERITY_RANK.get(e.severity, 0)
        if rank > self.rank:
            self.rank, self.severity = rank, e.severity
        if e.first_seen < self.first_seen:
            self.first_seen = e.first_seen
        self._source = (e.host, e.severity, e.message, e.error_type, e.route, e.first_seen)
        self._stack = e.stack
        route = "null" if e.route is None else _esc(e.route)
        self._head = (
            f',"host":{_esc(e.host)},"service":{_esc(e.service)},'
            f'"fingerprint":{_esc(e.fingerprint)},"count":'
        )
        self._tail = (
            f',"severity":{_esc(e.severity)},"message":{_esc(e.message)},'
            f'"error_type":{_esc(e.error_type)},"stack":{_json_list(e.stack)},'
            f'"route":{route},"first_seen":{_esc(e.first_seen)},"last_seen":'
        )

    def take(self, e: ErrorEvent) -> str:
        """Fold one event of this error in; return its line exactly as agent.wire.encode does."""
        source = (e.host, e.severity, e.message, e.error_type, e.route, e.first_seen)
        if source != self._source or e.stack != self._stack:
            self._encode_parts(e)
        # The agent sends running totals: the highest seq carries the host's current one.
        if e.seq > self.latest.seq:
            self.latest = e
        last_seen = e.last_seen
        if last_seen > self.last_seen:
            self.last_seen = last_seen
        # type is "error" or "update" and seq/count are plain ints: checked by ingest().
        tail = _esc(last_seen)
        return f'{{"type":"{e.type}","seq":{e.seq}{self._head}{e.count}{self._tail}{tail}}}'


def _new_error_row(e: ErrorEvent, now: str) -> tuple[Any, ...]:
    return (
        e.service,
        e.fingerprint,
        e.error_type,
        e.message,
        _dumps(e.stack),
        e.route,
        e.severity,
        e.first_seen,
        e.last_seen,
        now,
        now,
    )


def _fold(
    host: str,
    instance: str,
    now: str,
    events: Sequence[ErrorEvent],
    stored: dict[int, int],
    known: dict[tuple[str, str], tuple[int, str, str, str]],
    created_keys: set[tuple[str, str]],
) -> tuple[list[tuple[Any, ...]], list[IngestResult], dict[tuple[str, str], _Group], int]:
    """The ingest hot loop: drop duplicates, fold each error's events, build rows and results.

    Results come out in event order; ``top`` is the highest fresh seq.
    """
    occurrence_rows: list[tuple[Any, ...]] = []
    results: list[IngestResult] = []
    seen: set[int] | None = None  # built only if seqs stop increasing within the batch
    top = 0
    groups: dict[tuple[str, str], _Group] = {}
    for e in events:
        seq = e.seq
        if type(seq) is not int or type(e.count) is not int or seq <= 0 or e.count <= 0:
            raise ValueError(f"event from {host}: seq and count must be positive integers")
        if e.type != "error" and e.type != "update":
            raise ValueError(f"event seq {seq} from {host}: type {e.type!r} is not storable")
        if seq in stored:
            results.append(IngestResult(seq, stored[seq], False, True))
            continue
        key = (e.service, e.fingerprint)
        if seq > top:
            top = seq
            if seen is not None:
                seen.add(seq)
        else:
            if seen is None:
                seen = {row[2] for row in occurrence_rows}
            if seq in seen:
                results.append(IngestResult(seq, known[key][0], False, True))
                continue
            seen.add(seq)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(e, known[key][0])
            created = key in created_keys
        else:
            created = False
        occurrence_rows.append(
            (host, instance, seq, group.error_id, e.type, e.count, now, group.take(e))
        )
        results.append(IngestResult(seq, group.error_id, created, False))

    return occurrence_rows, results, groups, top


async def ingest(write: Write, host: str, events: Sequence[ErrorEvent]) -> list[IngestResult]:
    """Store a batch of relayed events from one host in one transaction.

    Idempotent on (host, instance, seq), so the relay can resend after a reconnect. The
    result, one per event in order, tells the engine which errors are new, and which
    events could not be stored (``refused`` says which and why, naming host and seq).
    A bad event never costs the rest of its batch: the others are stored, so the
    host's position never moves past a valid event that was not stored.
    """
    if not events:
        return []
    refused: dict[int, str] = {}
    for i, e in enumerate(events):
        problem = unstorable(e)
        if problem is not None:
            refused[i] = problem
    good = [e for i, e in enumerate(events) if i not in refused] if refused else events
    results = await _isolating(write, host, good)
    if not refused:
        return results
    merged: list[IngestResult] = []
    stored = iter(results)
    for i, e in enumerate(events):
        if i in refused:
            merged.append(_refused(host, e, refused[i]))
        else:
            merged.append(next(stored))
    return merged


async def _isolating(write: Write, host: str, events: Sequence[ErrorEvent]) -> list[IngestResult]:
    """One transaction for the batch; if SQLite refuses its data, halve the batch until
    the event it refuses is alone (screening catches the known cases before this)."""
    if not events:
        return []
    try:
        return await write(lambda db: _ingest(db, host, events))
    except _DATA_ERRORS as exc:
        if len(events) == 1:
            return [_refused(host, events[0], f"the database refused it: {exc}")]
        middle = len(events) // 2
        first = await _isolating(write, host, events[:middle])
        return first + await _isolating(write, host, events[middle:])


async def _ingest(
    db: aiosqlite.Connection,
    host: str,
    events: Sequence[ErrorEvent],
) -> list[IngestResult]:
    now = now_iso()
    # Creates the host on its first batch; one round trip either way.
    rows = list(
        await db.execute_fetchall(
            "INSERT INTO hosts (name) VALUES (?) ON CONFLICT (name) DO UPDATE "
            "SET name = excluded.name RETURNING instance, last_seq",
            (host,),
        )
    )
    instance, last_seq = rows[0]

    # Seqs above the host's last_seq cannot be stored yet; only replays need a lookup.
    stored: dict[int, int] = {}
    old = sorted({e.seq for e in events if e.seq <= last_seq})
    for i in range(0, len(old), KEYS_PER_QUERY):
        chunk = old[i : i + KEYS_PER_QUERY]
        found = await db.execute_fetchall(
            f"SELECT seq, error_id FROM occurrences WHERE host = ? AND instance = ? "
            f"AND seq IN ({placeholders(len(chunk))})",
            (host, instance, *chunk),
        )
        stored.update((seq, error_id) for seq, error_id in found)

    # Resolve every error the batch names first, creating the new ones, so that the
    # per-event pass below can build the occurrence rows and results in one go.
    keys = {(e.service, e.fingerprint) for e in events if e.seq not in stored}
    known = await _error_ids(db, list(keys))
    created_keys = keys.difference(known)
    if created_keys:
        firsts: dict[tuple[str, str], ErrorEvent] = {}
        for e in events:
            key = (e.service, e.fingerprint)
            if key in created_keys and key not in firsts and e.seq not in stored:
                firsts[key] = e
        await db.executemany(
            "INSERT INTO errors (service, fingerprint, error_type, message, stack, route, "
            "severity, first_seen, last_seen, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_new_error_row(e, now) for e in firsts.values()],
        )
        known.update(await _error_ids(db, list(created_keys)))

    # A synchronous pass with the garbage collector paused: it allocates a few objects
    # per event and nothing in it can form a cycle, so collections would be pure cost.
    # No other coroutine runs while it does, so the pause is invisible elsewhere.
    paused = gc.isenabled()
    gc.disable()
    try:
        occurrence_rows, results, groups, top = _fold(
            host, instance, now, events, stored, known, created_keys
        )
    finally:
        if paused:
            gc.enable()

    count_rows = []
    error_rows = []
    for key, group in groups.items():
        error_id, severity, first_seen, last_seen = known[key]
        if _SEVERITY_RANK.get(group.severity, 0) > _SEVERITY_RANK.get(severity, 0):
            severity = group.severity
        count_rows.append((error_id, host, instance, group.latest.count, group.latest.seq))
        error_rows.append(
            (
                severity,
                min(first_seen, group.first_seen),
                max(last_seen, group.last_seen),
                now,
                error_id,
                error_id,
            )
        )
    await db.executemany(
        "INSERT INTO host_counts (error_id, host, instance, count, last_seq) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (error_id, host, instance) DO UPDATE SET "
        "count = excluded.count, last_seq = excluded.last_seq "
        "WHERE excluded.last_seq > host_counts.last_seq",
        count_rows,
    )
    await db.executemany(
        "UPDATE errors SET severity = ?, first_seen = ?, last_seen = ?, updated_at = ?, "
        "count = (SELECT COALESCE(SUM(count), 0) FROM host_counts WHERE error_id = ?) "
        "WHERE id = ?",
        error_rows,
    )
    await db.executemany(_INSERT_OCCURRENCE, occurrence_rows)
    if occurrence_rows:
        await db.execute(
            "UPDATE hosts SET last_seq = MAX(last_seq, ?), last_seen_at = ? WHERE name = ?",
            (top, now, host),
        )

    return results


async def _error_ids(
    db: aiosqlite.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str, str, str]]:
    found: dict[tuple[str, str], tuple[int, str, str, str]] = {}
    for i in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[i : i + KEYS_PER_QUERY]
        params = [part for key in chunk for part in key]
        rows = await db.execute_fetchall(
            "SELECT service, fingerprint, id, severity, first_seen, last_seen FROM errors "
            f"WHERE (service, fingerprint) IN (VALUES {', '.join(['(?, ?)'] * len(chunk))})",
            params,
        )
        for service, fingerprint, error_id, severity, first_seen, last_seen in rows:
            found[(service, fingerprint)] = (error_id, severity, first_seen, last_seen)
    return found
