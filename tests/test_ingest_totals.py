"""Ingest against a model of what the store must keep, for any mix of batches: replays,
seqs repeated inside a batch, seqs out of order, the same error from several hosts.

The model is the definition written plainly: an event is stored once per (host, seq), the
first time it arrives; a host's total for an error is the count its highest stored seq
carried; the error's count is the sum over hosts; first_seen is the earliest, last_seen
the latest and severity the most severe of the stored events.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire import SEVERITIES, ErrorEvent
from console.models import IngestResult
from console.store import Store

FINGERPRINTS = ("a1" * 8, "b2" * 8, "c3" * 8)
TIMES = tuple(f"2026-01-01T00:00:{s:02d}.000Z" for s in range(0, 60, 7))


def _event(host: str, seq: int, fp: int, count: int, severity: str, first: str, last: str):
    return ErrorEvent(
        type="update",
        seq=seq,
        host=host,
        service="shop-api",
        fingerprint=FINGERPRINTS[fp],
        count=count,
        severity=severity,  # type: ignore[arg-type]
        message=f"boom {fp}",
        error_type="TypeError",
        stack=[f"    at f{fp} (/srv/app.js:1:1)"],
        route=None,
        first_seen=min(first, last),
        last_seen=max(first, last),
    )


_EVENT = st.builds(
    _event,
    host=st.sampled_from(["web-1", "web-2"]),
    seq=st.integers(1, 12),
    fp=st.integers(0, len(FINGERPRINTS) - 1),
    count=st.integers(1, 50),
    severity=st.sampled_from(SEVERITIES),
    first=st.sampled_from(TIMES),
    last=st.sampled_from(TIMES),
)
# Each batch comes from one host, as a link hands them over.
_BATCHES = st.lists(st.lists(_EVENT, max_size=8), min_size=1, max_size=5)


@dataclass
class _Expected:
    """What the store must hold for one error."""

    totals: dict[str, tuple[int, int]] = field(default_factory=dict)  # host -> (seq, count)
    first_seen: str = "~"
    last_seen: str = ""
    rank: int = -1

    def take(self, e: ErrorEvent) -> None:
        seq, _ = self.totals.get(e.host, (0, 0))
        if e.seq > seq:
            self.totals[e.host] = (e.seq, e.count)
        self.first_seen = min(self.first_seen, e.first_seen)
        self.last_seen = max(self.last_seen, e.last_seen)
        self.rank = max(self.rank, SEVERITIES.index(e.severity))


def _expect(
    batches: list[tuple[str, list[ErrorEvent]]],
) -> tuple[list[list[tuple[bool, bool]]], dict[str, _Expected], dict[tuple[str, int], str]]:
    """(created, duplicate) per event, each error's expected row, and the stored
    occurrences: (host, seq) -> fingerprint."""
    flags: list[list[tuple[bool, bool]]] = []
    errors: dict[str, _Expected] = {}
    stored: dict[tuple[str, int], str] = {}
    for host, events in batches:
        batch_flags = []
        for e in events:
            if (host, e.seq) in stored:
                batch_flags.append((False, True))
                continue
            stored[(host, e.seq)] = e.fingerprint
            batch_flags.append((e.fingerprint not in errors, False))
            errors.setdefault(e.fingerprint, _Expected()).take(e)
        flags.append(batch_flags)
    return flags, errors, stored


async def _ingest_all(
    store: Store, batches: list[tuple[str, list[ErrorEvent]]]
) -> list[list[IngestResult]]:
    return [await store.ingest(host, events) for host, events in batches]


def _assert_store_matches(
    path: Path,
    batches: list[tuple[str, list[ErrorEvent]]],
    results: list[list[IngestResult]],
) -> None:
    flags, expected, stored = _expect(batches)
    assert [[(r.created, r.duplicate) for r in rs] for rs in results] == flags
    assert all(r.refused is None for rs in results for r in rs)
    db = sqlite3.connect(path)
    try:
        ids = dict(db.execute("SELECT fingerprint, id FROM errors").fetchall())
        occurrences = {
            (host, seq): error_id
            for host, seq, error_id in db.execute("SELECT host, seq, error_id FROM occurrences")
        }
        assert occurrences == {key: ids[fp] for key, fp in stored.items()}
        for (host, events), rs in zip(batches, results, strict=True):
            for e, r in zip(events, rs, strict=True):
                assert r.seq == e.seq
                assert r.error_id == occurrences[(host, e.seq)]
        rows = db.execute(
            "SELECT fingerprint, count, first_seen, last_seen, severity FROM errors"
        ).fetchall()
        assert {fp: (count, first, last, sev) for fp, count, first, last, sev in rows} == {
            fp: (
                sum(count for _, count in want.totals.values()),
                want.first_seen,
                want.last_seen,
                SEVERITIES[want.rank],
            )
            for fp, want in expected.items()
        }
        hosts = dict(db.execute("SELECT name, last_seq FROM hosts").fetchall())
        for host in {h for h, _ in batches}:
            want_seq = max((seq for h, seq in stored if h == host), default=0)
            assert hosts.get(host, 0) == want_seq
    finally:
        db.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_BATCHES)
def test_any_mix_of_batches_keeps_exact_counts_and_stores_each_seq_once(
    tmp_path: Path, raw_batches: list[list[ErrorEvent]]
) -> None:
    batches = [(events[0].host if events else "web-1", events) for events in raw_batches]
    # A batch is one host's: give every event in it that host.
    batches = [
        (host, [ErrorEvent(**{**e.__dict__, "host": host}) for e in events])
        for host, events in batches
    ]

    async def run() -> None:
        path = tmp_path / f"model-{os.urandom(6).hex()}.db"
        async with await Store.open(path) as store:
            results = await _ingest_all(store, batches)
        _assert_store_matches(path, batches, results)

    asyncio.run(run())


def test_a_seq_repeated_in_a_batch_with_another_error_counts_only_the_first(
    tmp_path: Path,
) -> None:
    first = _event("web-1", 1, 0, 3, "low", TIMES[0], TIMES[1])
    again = _event("web-1", 1, 1, 9, "critical", TIMES[0], TIMES[2])
    later = _event("web-1", 2, 0, 4, "medium", TIMES[1], TIMES[3])
    batches = [("web-1", [later, first, again])]

    async def run() -> None:
        path = tmp_path / "console.db"
        async with await Store.open(path) as store:
            results = await _ingest_all(store, batches)
        _assert_store_matches(path, batches, results)
        db = sqlite3.connect(path)
        try:
            # The repeated seq names no error of its own: nothing was stored for it.
            assert db.execute("SELECT COUNT(*) FROM errors").fetchone() == (1,)
        finally:
            db.close()

    asyncio.run(run())
