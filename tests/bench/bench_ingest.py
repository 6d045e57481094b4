"""Ingest speed: Store.ingest against a plain sqlite3 executemany of the same rows.

The baseline is the least a store could do: the occurrence rows (with their raw JSON lines
already encoded) inserted with one ``executemany`` into a table of the same shape, in one
transaction, on the same kind of file (WAL, synchronous=NORMAL). ``Store.ingest`` gets what a
link hands it (each decoded event with the wire line it came as), screens the batch, upserts
errors and per-host totals, stores the lines as they are and moves the host position. The
target is a ratio of at least 0.7.

With ``--batch N`` both sides work in batches of N events, one transaction each, the way the
relay feeds the store while a host streams.

Run: .venv/bin/python tests/bench/bench_ingest.py [--events N] [--batch N] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.wire import SEVERITIES, ErrorEvent, encode  # noqa: E402
from console.storable import Received  # noqa: E402
from console.store import MIGRATIONS, Store, now_iso  # noqa: E402

TARGET_RATIO = 0.7


@dataclass(frozen=True)
class BenchResult:
    events: int
    batch: int
    baseline_seconds: float
    store_seconds: float

    @property
    def ratio(self) -> float:
        """Store speed as a fraction of the baseline's speed (1.0 = as fast)."""
        return self.baseline_seconds / self.store_seconds


def make_events(n: int, fingerprints: int = 200, host: str = "web-1") -> list[ErrorEvent]:
    """A realistic stream: a few hundred fingerprints, each with a running total."""
    fps = [f"{i:016x}" for i in range(fingerprints)]
    totals = [0] * fingerprints
    events = []
    for seq in range(1, n + 1):
        i = (seq * 7919) % fingerprints
        totals[i] += 1
        events.append(
            ErrorEvent(
                type="error" if totals[i] == 1 else "update",
                seq=seq,
                host=host,
                service="shop-api",
                fingerprint=fps[i],
                count=totals[i],
                severity=SEVERITIES[i % len(SEVERITIES)],  # type: ignore[arg-type]
                message=f"Cannot read properties of undefined (reading 'id{i}')",
                error_type="TypeError",
                stack=[
                    f"    at handler{i}_{d} (/srv/app/lib/users.js:{d + 10}:7)" for d in range(8)
                ],
                route=f"/api/users/{i}",
                first_seen="2026-01-01T00:00:00.000Z",
                last_seen=f"2026-01-01T{(seq // 3600) % 24:02d}:{(seq // 60) % 60:02d}:"
                f"{seq % 60:02d}.000Z",
            )
        )
    return events


def occurrences_ddl() -> str:
    """The store's own occurrences table (and its indexes), so both sides write the same shape."""
    script = MIGRATIONS[0]
    start = script.index("CREATE TABLE occurrences")
    end = script.index("CREATE TABLE attempts")
    return script[start:end].replace("REFERENCES errors(id)", "")


def baseline(path: Path, events: list[ErrorEvent], batch: int) -> float:
    """Seconds for executemany of the pre-built occurrence rows, one transaction per batch."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(occurrences_ddl())
    now = now_iso()
    rows = [
        ("web-1", "", e.seq, (e.seq % 200) + 1, e.type, e.count, now, encode(e)) for e in events
    ]
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO occurrences (host, instance, seq, error_id, type, count, received_at, "
            "raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows[i : i + batch],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


async def store_ingest(path: Path, events: list[ErrorEvent], batch: int) -> float:
    """Seconds for Store.ingest of the same events, ``batch`` events per call."""
    received = [Received(e, encode(e)) for e in events]
    store = await Store.open(path)
    try:
        start = time.perf_counter()
        for i in range(0, len(events), batch):
            await store.ingest("web-1", received[i : i + batch])
        elapsed = time.perf_counter() - start
        stored = await store.last_seq("web-1")
        if stored != len(events):
            raise SystemExit(f"store kept {stored} events out of {len(events)}")
    finally:
        await store.close()
    return elapsed


def run(events: int, batch: int, repeat: int) -> BenchResult:
    """Best of ``repeat`` for each side, on fresh files, to keep machine noise out."""
    stream = make_events(events)
    base_times, store_times = [], []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for i in range(repeat):
            base_times.append(baseline(Path(tmp) / f"base{i}.db", stream, batch))
            store_times.append(asyncio.run(store_ingest(Path(tmp) / f"store{i}.db", stream, batch)))
    return BenchResult(events, batch, min(base_times), min(store_times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=0, help="events per ingest call (0 = all)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    batch = args.batch or args.events
    result = run(args.events, batch, args.repeat)
    print(f"events:               {result.events} (batches of {result.batch})")
    print(
        f"sqlite3 executemany:  {result.baseline_seconds:.3f} s "
        f"({result.events / result.baseline_seconds:,.0f} rows/s)"
    )
    print(
        f"Store.ingest:         {result.store_seconds:.3f} s "
        f"({result.events / result.store_seconds:,.0f} events/s)"
    )
    verdict = "ok" if result.ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"ratio:                {result.ratio:.2f}x (target >= {TARGET_RATIO}) {verdict}")
    return 0 if result.ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
