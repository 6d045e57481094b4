"""Team benchmark: two consoles sharing one PostgreSQL store, 20 local agents, 50,000 events.

1. Ingest: 20 agent outboxes (2,500 events each by default, the same 200 errors on every
   host) are streamed by real ``autofix-agent stream`` processes (local links) into two
   engines on one PostgreSQL database; each host is read by whichever console holds its
   advisory lock. Checked: every event stored once (no loss), every error's count the sum of
   its hosts' running totals (no double count), both consoles told of every error. Reported
   as events/s and as a ratio to a plain ``COPY`` of the same rows into a table of the same
   shape on the same server, in the same run.
2. Claims: both consoles claim every error at the same moment (``Store.create_attempt``:
   ``SELECT ... FOR UPDATE SKIP LOCKED`` and a compare-and-set); exactly one wins each, and
   the claim latency p50/p99 is over every claim of both.

The server is a throwaway cluster (tests/postgres_server.py: Debian's initdb and pg_ctl,
a Unix socket in a temp dir).

Run: .venv/bin/python tests/bench/bench_team.py [--hosts 20] [--events 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT, ROOT / "tests", ROOT / "tests" / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import psycopg  # noqa: E402
from bench_console import payload, seed_outbox  # noqa: E402
from postgres_server import PostgresServer  # noqa: E402

from agent.sanitize import dumps  # noqa: E402
from console.config import parse_config  # noqa: E402
from console.engine import Engine  # noqa: E402
from console.events import ErrorChanged  # noqa: E402
from console.models import State  # noqa: E402

FINGERPRINTS = 200


def host_name(i: int) -> str:
    return f"host-{i:02d}"


def copy_baseline(dsn: str, hosts: int, per_host: int) -> float:
    """The least a store could do: one COPY of the same rows into an occurrences-shaped
    table, one transaction, on the same server."""
    rows = [
        (host_name(h), i + 1, str(p["fingerprint"]), int(p["count"]), dumps(p), str(p["type"]))
        for h in range(hosts)
        for i, p in ((i, payload(i, FINGERPRINTS, host_name(h))) for i in range(per_host))
    ]
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE occ (host TEXT, seq BIGINT, fingerprint TEXT, count BIGINT, raw TEXT,"
            " type TEXT, UNIQUE (host, seq))"
        )
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY occ FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - start


def expected_counts(hosts: int, per_host: int) -> dict[str, int]:
    """Each error's count as the sum over hosts of the last running total each sent."""
    last: dict[str, int] = {}
    for i in range(per_host):
        p = payload(i, FINGERPRINTS)
        last[str(p["fingerprint"])] = int(p["count"])
    return {fp: count * hosts for fp, count in last.items()}


async def run(work: Path, dsn: str, hosts: int, per_host: int) -> None:
    host_configs = []
    for h in range(hosts):
        state = work / f"agent-{h}"
        state.mkdir()
        seed_outbox(state, per_host, FINGERPRINTS, host_name(h))
        toml = work / f"agent-{h}.toml"
        toml.write_text(
            f'state_dir = "{state}"\nhost = "{host_name(h)}"\n'
            f'[[sources]]\nservice = "PA"\npaths = ["{work}/none/*.log"]\n'
        )
        host_configs.append(
            {
                "name": host_name(h),
                "local": True,
                "agent_command": f"{sys.executable} -m agent.cli stream",
                "agent_config": str(toml),
            }
        )
    consoles = []
    told: list[set[int]] = []
    for name in ("a", "b"):
        config = parse_config(
            {"state_dir": str(work / f"console-{name}"), "store": dsn, "hosts": host_configs}
        )
        engine = await Engine.open(config)
        seen: set[int] = set()
        engine.subscribe(
            lambda e, seen=seen: seen.add(e.error.id) if isinstance(e, ErrorChanged) else None
        )
        consoles.append(engine)
        told.append(seen)
    store = consoles[0].store
    total = hosts * per_host
    start = time.perf_counter()
    await asyncio.gather(*(engine.start() for engine in consoles))

    async def stored() -> int:
        return sum(h.last_seq for h in await store.hosts())

    while await stored() < total:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    errors = await store.errors(limit=10 * FINGERPRINTS)
    await asyncio.sleep(1.0)  # the last announcements reach the other console
    readers = [sum(1 for link in engine.link_statuses().values() if link.state == "connected")
               for engine in consoles]  # fmt: skip

    def rows(sql: str) -> int:
        with psycopg.connect(dsn) as conn:
            return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]

    occurrences = rows("SELECT COUNT(*) FROM occurrences")
    counts = {e.fingerprint: e.count for e in errors}
    ids = {e.id for e in errors}
    base = copy_baseline(dsn, hosts, per_host)
    print(
        f"ingest:    {total} events from {hosts} local agents into two consoles on one "
        f"PostgreSQL store in {elapsed:.2f} s = {total / elapsed:,.0f} events/s; plain COPY "
        f"{total / base:,.0f} events/s; ratio {base / elapsed:.2f}; hosts read by each "
        f"console: {readers[0]} + {readers[1]}"
    )
    print(
        f"checks:    occurrences {occurrences} of {total} (no loss: {occurrences == total}); "
        f"counts as the hosts' totals: {counts == expected_counts(hosts, per_host)}; "
        f"both consoles told of every error: {all(ids <= seen for seen in told)}"
    )

    async def claim(engine: Engine, error_id: int, who: str) -> tuple[float, bool]:
        begin = time.perf_counter()
        attempt = await engine.store.create_attempt(
            error_id, expected=State.AWAITING_APPROVAL, actor=who
        )
        return time.perf_counter() - begin, attempt is not None

    latencies: list[float] = []
    single = 0
    for error in errors:
        results = await asyncio.gather(
            claim(consoles[0], error.id, "keyboard:a@bench"),
            claim(consoles[1], error.id, "keyboard:b@bench"),
        )
        latencies += [seconds for seconds, _ in results]
        single += sum(won for _, won in results) == 1
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"claims:    {len(errors)} errors claimed by both consoles at once: exactly one "
        f"attempt for {single} of {len(errors)}; claim latency p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over "
        f"{len(latencies)} claims"
    )
    for engine in consoles:
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--events", type=int, default=50_000, help="in all, over the hosts")
    args = parser.parse_args()
    # The claimed attempts of the console stopped first are interrupted by the other: true,
    # and not what is measured.
    logging.getLogger("console").setLevel(logging.ERROR)
    server = PostgresServer.start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(Path(tmp), server.dsn("bench"), args.hosts, args.events // args.hosts))
    finally:
        server.stop()
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
