"""The ingest hot path: a batch of relayed events from one host becomes rows in one transaction.

It is idempotent on (host, instance, seq) so the relay can resend after a reconnect, it does
a fixed number of statements per batch (``executemany``; on PostgreSQL the errors' and host
counts' changes are one statement each, see ``SyncTx.update_rows``) and works per distinct
fingerprint rather than per event. The agent sends running totals per host; each host's
latest total is kept and the error's count is their sum, so replays and several hosts never
double count.

Each occurrence keeps the wire line it arrived as (:class:`console.storable.Received`), so
nothing is encoded again here. Everything in this module is synchronous and runs on the
store's ingest thread with its own connection (SQLite's or PostgreSQL's, see
:class:`console.store.backend.SyncTx`): a burst of events costs the event loop (and
the console's screen) one hand-off per batch, not a thread hop per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any

from agent.sanitize import dumps
from agent.wire import SEVERITIES, ErrorEvent
from console.models import ErrorRow, IngestOutcome, IngestResult
from console.storable import MAX_INTEGER, Received, received, refusals, seq_shown
from console.store.backend import SyncTx
from console.store.schema import (
    ERROR_COLUMNS,
    KEYS_PER_QUERY,
    error_row,
    errors_by_id_sql,
    fold_host_totals,
    host_totals_sql,
    now_iso,
    placeholders,
)

_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_OCCURRENCE_COLUMNS = ("host", "instance", "seq", "error_id", "type", "count", "received_at", "raw")
_HOST_COUNT_COLUMNS = ("error_id", "host", "instance", "count", "last_seq")
_HOST_COUNT_KEY = ("error_id", "host", "instance")
_ERROR_ROW_NAMES = tuple(name.strip() for name in ERROR_COLUMNS.split(","))
# What a batch changes on an error (the count by the rise of this host's total).
_ERROR_COLUMNS = ("severity", "first_seen", "last_seen", "updated_at", "count")

# An error the batch names: id, severity, first_seen, last_seen, and this host's running
# total and the seq that carried it.
_Known = tuple[int, str, str, str, int, int]


def _refused(host: str, e: ErrorEvent, problem: str) -> IngestResult:
    seq = e.seq if type(e.seq) is int and 0 < e.seq <= MAX_INTEGER else 0
    message = f"{host}: event seq {seq_shown(e)} not stored: {problem}"
    return IngestResult(seq, 0, False, False, message)


class _Span:
    """What one batch says about one error, folded over its fresh events: the earliest
    first_seen, the latest last_seen and the most severe severity."""

    __slots__ = ("first_seen", "last_seen", "rank", "severity")

    def __init__(self, e: ErrorEvent) -> None:
        self.severity: str = e.severity
        self.rank = _SEVERITY_RANK.get(e.severity, 0)
        self.first_seen = e.first_seen
        self.last_seen = e.last_seen

    def take(self, e: ErrorEvent) -> None:
        """Fold one more event of this error in."""
        if e.last_seen > self.last_seen:
            self.last_seen = e.last_seen
        if e.first_seen < self.first_seen:
            self.first_seen = e.first_seen
        if e.severity != self.severity:
            rank = _SEVERITY_RANK.get(e.severity, 0)
            if rank > self.rank:
                self.rank, self.severity = rank, e.severity


def _new_error_row(e: ErrorEvent, now: str) -> tuple[Any, ...]:
    return (
        e.service,
        e.fingerprint,
        e.error_type,
        e.message,
        dumps(e.stack),
        e.route,
        e.severity,
        e.first_seen,
        e.last_seen,
        now,
        now,
        dumps(e.in_app) if e.in_app else None,
    )


def _fresh(
    items: Sequence[Received], stored: dict[int, int]
) -> tuple[list[Received], dict[int, int], bool]:
    """The events to store (neither stored already nor a seq repeated in the batch), the
    position in ``items`` of each one left out, and whether the fresh seqs rise.

    The usual batch, rising seqs none of which is stored, costs two C-level passes.
    """
    seqs = [x.event.seq for x in items]
    if not stored and all(map(int.__lt__, seqs, seqs[1:])):
        return list(items), {}, True
    fresh: list[Received] = []
    left_out: dict[int, int] = {}
    seen: set[int] = set()
    for i, (item, seq) in enumerate(zip(items, seqs, strict=True)):
        if seq in stored or seq in seen:
            left_out[i] = seq
        else:
            seen.add(seq)
            fresh.append(item)
    fresh_seqs = [x.event.seq for x in fresh]
    return fresh, left_out, all(map(int.__lt__, fresh_seqs, fresh_seqs[1:]))


def ingest(conn: SyncTx, host: str, items: Sequence[ErrorEvent | Received]) -> list[IngestResult]:
    """Store a batch of events from one host; see :meth:`console.store.Store.ingest`.

    Screening runs first, over the whole batch, so the transaction sees only storable
    events; what the database still refuses is found by halving (:func:`_isolating`).
    """
    if not items:
        return []
    refused = refusals(items)
    good = (
        [received(x) for i, x in enumerate(items) if i not in refused]
        if refused
        else [received(x) for x in items]
    )
    results = _isolating(conn, host, good)
    if not refused:
        return results
    merged: list[IngestResult] = []
    stored = iter(results)
    for i, item in enumerate(items):
        if i in refused:
            event = item.event if isinstance(item, Received) else item
            merged.append(_refused(host, event, refused[i]))
        else:
            merged.append(next(stored))
    return merged


def ingest_counted(
    conn: SyncTx, host: str, items: Sequence[ErrorEvent | Received]
) -> IngestOutcome:
    """:func:`ingest`, then the errors the batch counted again, read on the same connection
    once the batch is committed (what :meth:`console.store.Store.errors_by_id` would read)."""
    results = ingest(conn, host, items)
    created = {r.error_id for r in results if r.created}
    counted = list(
        dict.fromkeys(
            r.error_id
            for r in results
            if r.refused is None and not r.duplicate and r.error_id not in created
        )
    )
    return IngestOutcome(results, _error_rows(conn, counted))


def _error_rows(conn: SyncTx, error_ids: list[int]) -> list[ErrorRow]:
    out: list[ErrorRow] = []
    for i in range(0, len(error_ids), KEYS_PER_QUERY):
        chunk = error_ids[i : i + KEYS_PER_QUERY]
        rows = conn.fetch(errors_by_id_sql(len(chunk)), chunk)
        hosts = fold_host_totals(conn.fetch(host_totals_sql(len(chunk)), chunk), {})
        for row in rows:
            values = dict(zip(_ERROR_ROW_NAMES, row, strict=True))
            out.append(error_row(values, hosts.get(values["id"], {})))
    return out


def _isolating(conn: SyncTx, host: str, items: list[Received]) -> list[IngestResult]:
    """One transaction for the batch; if the database refuses its data, halve the batch until
    the event it refuses is alone (screening catches the known cases before this)."""
    if not items:
        return []
    try:
        with conn.transaction():
            return _ingest(conn, host, items)
    except conn.data_errors as exc:
        if len(items) == 1:
            return [_refused(host, items[0].event, f"the database refused it: {exc}")]
        middle = len(items) // 2
        return _isolating(conn, host, items[:middle]) + _isolating(conn, host, items[middle:])


def _ingest(conn: SyncTx, host: str, items: Sequence[Received]) -> list[IngestResult]:
    now = now_iso()
    conn.exclude_other_ingests()
    # Creates the host on its first batch; one statement either way.
    ((instance, last_seq),) = conn.fetch(
        "INSERT INTO hosts (name) VALUES (?) ON CONFLICT (name) DO UPDATE "
        "SET name = excluded.name RETURNING instance, last_seq",
        (host,),
    )
    stored = _stored(conn, host, instance, [x.event.seq for x in items if x.event.seq <= last_seq])
    fresh, left_out, rising = _fresh(items, stored)
    events = [x.event for x in fresh]
    keys = [(e.service, e.fingerprint) for e in events]

    # Resolve every error the batch names first, creating the new ones (in the order the
    # batch names them), so the rows and results below are built a column at a time.
    firsts = dict(zip(reversed(keys), reversed(events), strict=True))
    named = list(dict.fromkeys(keys))
    known = _error_ids(conn, host, instance, named)
    created_keys = [key for key in named if key not in known]
    if created_keys:
        conn.executemany(
            "INSERT INTO errors (service, fingerprint, error_type, message, stack, route, "
            "severity, first_seen, last_seen, created_at, updated_at, in_app) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            # Another host's ingest may create the same errors at the same moment: in key
            # order, so on PostgreSQL the two wait on each other's keys in one order.
            "ON CONFLICT (service, fingerprint) DO NOTHING",
            [_new_error_row(firsts[key], now) for key in sorted(created_keys)],
        )
        known.update(_error_ids(conn, host, instance, created_keys))
    id_of = {key: row[0] for key, row in known.items()}
    error_ids = list(map(id_of.__getitem__, keys))
    seqs = [e.seq for e in events]

    fresh_results = list(map(IngestResult, seqs, error_ids, repeat(False), repeat(False)))
    if created_keys:
        first_at = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
        for key in created_keys:
            fresh_results[first_at[key]].created = True
    occurrence_rows = list(
        zip(
            repeat(host),
            repeat(instance),
            seqs,
            error_ids,
            [e.type for e in events],
            [e.count for e in events],
            repeat(now),
            [x.line for x in fresh],
        )
    )

    # The agent sends running totals: the highest seq carries the host's current one.
    by_seq = events if rising else sorted(events, key=lambda e: e.seq)
    latest = {(e.service, e.fingerprint): e for e in by_seq}
    spans: dict[tuple[str, str], _Span] = {}
    for key, e in zip(keys, events, strict=True):
        span = spans.get(key)
        if span is None:
            spans[key] = _Span(e)
        else:
            span.take(e)

    # The error's count is the sum of its hosts' running totals; only this host's changes,
    # so the sum moves by the difference (both are read and written under the write lock).
    count_rows = []
    error_rows = []
    for key, span in spans.items():
        error_id, severity, first_seen, last_seen, host_count, host_seq = known[key]
        if span.rank > _SEVERITY_RANK.get(severity, 0):
            severity = span.severity
        rise = 0
        top = latest[key]
        if top.seq > host_seq:
            rise = top.count - host_count
            count_rows.append((error_id, host, instance, top.count, top.seq))
        error_rows.append(
            (
                severity,
                min(first_seen, span.first_seen),
                max(last_seen, span.last_seen),
                now,
                rise,
                error_id,
            )
        )
    conn.upsert_rows("host_counts", _HOST_COUNT_COLUMNS, _HOST_COUNT_KEY, count_rows)
    # Locked in id order by the backend, so two hosts' batches lock shared errors alike.
    conn.update_rows("errors", _ERROR_COLUMNS, "id", error_rows, added=("count",))
    conn.insert_rows("occurrences", _OCCURRENCE_COLUMNS, occurrence_rows)
    if occurrence_rows:
        top_seq = max(seqs)
        conn.execute(
            "UPDATE hosts SET last_seq = CASE WHEN last_seq > ? THEN last_seq ELSE ? END, "
            "last_seen_at = ? WHERE name = ?",
            (top_seq, top_seq, now, host),
        )
    if not left_out:
        return fresh_results
    return _with_left_out(items, fresh_results, left_out, stored)


def _stored(conn: SyncTx, host: str, instance: str, seqs: list[int]) -> dict[int, int]:
    """The error id of each of ``seqs`` already stored for the host: only seqs up to the
    host's position can be, so only a replay needs this lookup."""
    stored: dict[int, int] = {}
    old = sorted(set(seqs))
    for i in range(0, len(old), KEYS_PER_QUERY):
        chunk = old[i : i + KEYS_PER_QUERY]
        found = conn.fetch(
            f"SELECT seq, error_id FROM occurrences WHERE host = ? AND instance = ? "
            f"AND seq IN ({placeholders(len(chunk))})",
            (host, instance, *chunk),
        )
        stored.update((seq, error_id) for seq, error_id in found)
    return stored


def _with_left_out(
    items: Sequence[Received],
    fresh_results: list[IngestResult],
    left_out: dict[int, int],
    stored: dict[int, int],
) -> list[IngestResult]:
    """Every item's result in batch order: a left-out event is a duplicate of the stored
    occurrence with its seq, or of the event before it in the batch with that seq."""
    kept = {r.seq: r.error_id for r in fresh_results}
    results: list[IngestResult] = []
    stored_ones = iter(fresh_results)
    for i in range(len(items)):
        seq = left_out.get(i)
        if seq is None:
            results.append(next(stored_ones))
        else:
            results.append(IngestResult(seq, stored.get(seq) or kept[seq], False, True))
    return results


def _error_ids(
    conn: SyncTx, host: str, instance: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], _Known]:
    """The errors the batch names, each with this host's running total as stored.

    The error rows are locked as they are read (in key order, so consoles ingesting hosts
    that share errors wait for each other in one order): the batch writes severity and
    first and last seen computed from them, and another console's batch committing in
    between would otherwise be overwritten."""
    found: dict[tuple[str, str], _Known] = {}
    keys = sorted(keys)
    for i in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[i : i + KEYS_PER_QUERY]
        params = [host, instance, *(part for key in chunk for part in key)]
        rows = conn.fetch(
            "SELECT e.service, e.fingerprint, e.id, e.severity, e.first_seen, e.last_seen, "
            "COALESCE(h.count, 0), COALESCE(h.last_seq, 0) FROM errors AS e "
            "LEFT JOIN host_counts AS h ON h.error_id = e.id AND h.host = ? AND h.instance = ? "
            f"WHERE (e.service, e.fingerprint) IN (VALUES {', '.join(['(?, ?)'] * len(chunk))}) "
            f"ORDER BY e.service, e.fingerprint{conn.for_update('e')}",
            params,
        )
        for service, fingerprint, *known in rows:
            found[(service, fingerprint)] = tuple(known)  # type: ignore[assignment]
    return found
