"""Store size: how long a big console database takes to open and show its first page.

The file is built the way years of use would leave it: ``--errors`` errors (100,000) and
``--occurrences`` occurrences (1,000,000) spread over them and over a few hosts, written
with plain executemany straight into the store's own schema. Then, in a fresh process
state, ``Store.open`` (pragmas, the migration check) and the first page of the error list
(``errors(limit=100)``, what the console shows first) are timed. Target: open < 1 s.

Run: .venv/bin/python tests/bench/bench_store.py [--errors N] [--occurrences N]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from console.store import Store  # noqa: E402

TARGET_OPEN_SECONDS = 1.0
HOSTS = ("web-1", "web-2", "web-3", "worker-1")
STACK = '["    at handler (/srv/app/lib/users.js:12:7)","    at next (/srv/app/app.js:3:1)"]'


async def _create(path: Path) -> None:
    async with await Store.open(path):
        pass


def build(path: Path, errors: int, occurrences: int) -> None:
    """A store file with that many errors and occurrences, in the store's own schema."""
    asyncio.run(_create(path))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO errors (id, service, fingerprint, error_type, message, stack, route, "
        "severity, count, first_seen, last_seen, state, created_at, updated_at) "
        "VALUES (?, 'shop-api', ?, 'TypeError', ?, ?, '/api/users/:id', 'medium', ?, "
        "'2026-01-01T00:00:00.000Z', ?, 'awaiting_approval', "
        "'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        (
            (i, f"{i:016x}", f"Cannot read properties of undefined (reading 'f{i}')", STACK,
             occurrences // errors, f"2026-06-{1 + i % 28:02d}T00:00:00.000Z")
            for i in range(1, errors + 1)
        ),
    )  # fmt: skip
    db.executemany(
        "INSERT INTO host_counts (error_id, host, instance, count, last_seq) "
        "VALUES (?, ?, '', ?, ?)",
        ((i, HOSTS[i % len(HOSTS)], occurrences // errors, i) for i in range(1, errors + 1)),
    )
    db.executemany(
        "INSERT INTO occurrences (host, instance, seq, error_id, type, count, received_at, raw) "
        "VALUES (?, '', ?, ?, 'update', ?, '2026-06-01T00:00:00.000Z', ?)",
        (
            (HOSTS[seq % len(HOSTS)], seq, 1 + seq % errors, 1 + seq // errors,
             f'{{"type":"update","seq":{seq},"host":"{HOSTS[seq % len(HOSTS)]}",'
             f'"service":"shop-api","fingerprint":"{1 + seq % errors:016x}","count":'
             f'{1 + seq // errors},"last_seen":"2026-06-01T00:00:00.000Z"}}')
            for seq in range(1, occurrences + 1)
        ),
    )  # fmt: skip
    db.executemany(
        "INSERT INTO hosts (name, last_seq) VALUES (?, ?)",
        ((host, occurrences) for host in HOSTS),
    )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


async def time_open(path: Path) -> tuple[float, float]:
    """Seconds to open the store, and to open it and read the first page of errors."""
    start = time.perf_counter()
    store = await Store.open(path)
    opened = time.perf_counter() - start
    try:
        page = await store.errors(limit=100)
        shown = time.perf_counter() - start
        if len(page) != 100:
            raise SystemExit(f"the first page held {len(page)} errors, not 100")
    finally:
        await store.close()
    return opened, shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", type=int, default=100_000)
    parser.add_argument("--occurrences", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        path = Path(tmp) / "console.db"
        start = time.perf_counter()
        build(path, args.errors, args.occurrences)
        built = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        runs = [asyncio.run(time_open(path)) for _ in range(args.repeat)]
    opened = min(r[0] for r in runs)
    shown = min(r[1] for r in runs)
    verdict = "ok" if opened < TARGET_OPEN_SECONDS else "ABOVE TARGET"
    print(
        f"store:     {args.errors:,} errors, {args.occurrences:,} occurrences "
        f"({size_mb:.0f} MB, built in {built:.0f} s): open {opened * 1000:.0f} ms, "
        f"open + first page of errors {shown * 1000:.0f} ms "
        f"(target open < {TARGET_OPEN_SECONDS * 1000:.0f} ms) {verdict}"
    )
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
