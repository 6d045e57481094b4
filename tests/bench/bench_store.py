"""Store size: how long a big console database takes to open and show its first page.

The file is built the way years of use would leave it: ``--errors`` errors (100,000) and
``--occurrences`` occurrences (1,000,000) spread over them and over a few hosts, written
with plain executemany straight into the store's own schema. Then, in a fresh process
state, ``Store.open`` (pragmas, the migration check) and the first page of the error list
(``errors(limit=100)``, what the console shows first) are timed. Target: open < 1 s.

Then the console itself runs on that file (headless, Textual's run_test, a real engine and
store): the time until its main screen is ready with the errors table filled, and then a key
press every 50 ms (down, and now and then page down, page up, end and home) through the
table, each timed from the press until a frame paints the highlight on the newly selected
row, as in ``bench_tui``. Target: press -> painted p99 < 50 ms.

Run: .venv/bin/python tests/bench/bench_store.py [--errors N] [--occurrences N] [--presses N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from console.app import AutofixApp  # noqa: E402
from console.engine import Engine  # noqa: E402
from console.store import Store  # noqa: E402
from console.widgets.errors_table import ErrorsTable  # noqa: E402
from tests.snapshot_store import config_for  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tui import LOST_SECONDS, FrameLog, percentile  # noqa: E402

TARGET_OPEN_SECONDS = 1.0
TARGET_PRESS_MS = 50.0
PRESS_EVERY_SECONDS = 0.05
# The keys pressed, in turn: mostly single steps, now and then a jump.
KEYS = ("down",) * 12 + ("pagedown", "pagedown", "pageup", "end", "home")
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


@dataclass(frozen=True)
class Scrolling:
    """The console on the big store: start-up and key presses through the errors table."""

    ready_seconds: float
    rows: int
    presses: int
    lost: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    # The first press, made as soon as the screen is ready: it waits for what the console
    # still does after filling the table (its first frames, the first selection's panes).
    first_ms: float
    # The slowest presses: (milliseconds, key), slowest last.
    slowest: tuple[tuple[float, str], ...]


async def time_console(state_dir: Path, presses: int) -> Scrolling:
    """Start the console on the store in ``state_dir`` and press keys through its table."""
    config = config_for(state_dir)
    start = time.perf_counter()
    store = await Store.open(config.db_path)
    app = AutofixApp(Engine(config, store))
    painted: list[float] = []
    slowest: list[tuple[float, str]] = []
    lost = 0
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            while not app.main_screen.ready:
                await pilot.pause(0.01)
            table = app.main_screen.query_one(ErrorsTable)
            ready = time.perf_counter() - start
            frames = FrameLog(app, table)
            for i in range(presses):
                key = KEYS[i % len(KEYS)]
                before = table.selected_error.id if table.selected_error else None
                first_frame = len(frames.frames)
                pressed = time.perf_counter()
                app.simulate_key(key)
                while True:
                    now = time.perf_counter()
                    selected = table.selected_error.id if table.selected_error else None
                    # end and home may find the highlight on that row already.
                    if selected != before or key in ("end", "home"):
                        at = frames.painted_since(first_frame, selected)
                        if at is not None:
                            painted.append(at - pressed)
                            slowest.append((at - pressed, f"{key} (press {i + 1})"))
                            break
                    if now - pressed > LOST_SECONDS:
                        painted.append(LOST_SECONDS)
                        lost += 1
                        break
                    await asyncio.sleep(0.001)
                await asyncio.sleep(PRESS_EVERY_SECONDS)
            rows = table.row_count
    finally:
        await store.close()
    return Scrolling(
        ready,
        rows,
        len(painted),
        lost,
        statistics.median(painted) * 1000,
        percentile(painted, 0.99) * 1000,
        max(painted) * 1000,
        painted[0] * 1000,
        tuple((seconds * 1000, key) for seconds, key in sorted(slowest)[-5:]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", type=int, default=100_000)
    parser.add_argument("--occurrences", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--presses", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        state_dir = Path(tmp) / "console"
        path = config_for(state_dir).db_path
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        build(path, args.errors, args.occurrences)
        built = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        runs = [asyncio.run(time_open(path)) for _ in range(args.repeat)]
        scrolling = asyncio.run(time_console(state_dir, args.presses))
    opened = min(r[0] for r in runs)
    shown = min(r[1] for r in runs)
    verdict = "ok" if opened < TARGET_OPEN_SECONDS else "ABOVE TARGET"
    print(
        f"store:     {args.errors:,} errors, {args.occurrences:,} occurrences "
        f"({size_mb:.0f} MB, built in {built:.0f} s): open {opened * 1000:.0f} ms, "
        f"open + first page of errors {shown * 1000:.0f} ms "
        f"(target open < {TARGET_OPEN_SECONDS * 1000:.0f} ms) {verdict}"
    )
    scrolled = scrolling.p99_ms < TARGET_PRESS_MS and not scrolling.lost
    print(
        f"console:   main screen ready in {scrolling.ready_seconds * 1000:.0f} ms with "
        f"{scrolling.rows:,} rows in the errors table; {scrolling.presses} key presses "
        f"(down, page down/up, end, home) -> highlight painted: p50 {scrolling.p50_ms:.1f} ms, "
        f"p99 {scrolling.p99_ms:.1f} ms, max {scrolling.max_ms:.1f} ms (the first press "
        f"{scrolling.first_ms:.0f} ms), never painted within "
        f"{LOST_SECONDS:.0f} s: {scrolling.lost} (target p99 < {TARGET_PRESS_MS:.0f} ms) "
        f"{'ok' if scrolled else 'ABOVE TARGET'}; load average {os.getloadavg()[0]:.1f}"
    )
    slow = ", ".join(f"{key} {ms:.0f} ms" for ms, key in reversed(scrolling.slowest))
    print(f"           slowest presses: {slow}")
    return 0 if verdict == "ok" and scrolled else 1


if __name__ == "__main__":
    sys.exit(main())
