"""Console benchmark: ingest from a local agent, and error-to-Claude latency.

1. Ingest: N events (default 50,000) stored in a real agent outbox are streamed by the real
   `autofix-agent stream` (local subprocess link) into the console's store through the
   engine. Reported as events/s and as a ratio to a plain sqlite3 executemany of the same
   occurrence rows into a table of the store's occurrences shape, measured in the same run
   (target >= 0.5).
2. Latency: a settled error reaching the console (auto-approved) until the Claude process
   starts: snapshot of the main checkout, fetch, worktree, prompt, process start (target
   < 300 ms whatever the repository's size). Measured on a small repository and on one of
   5,000 files, each with the worktree checked out per attempt (``worktree.keep_ready =
   false``) and from the spare checkout (the default), in the same run. The "CLI" here is
   a shell script that records the moment it starts, because what is measured is the
   console's own overhead. Each error arrives once the previous attempt has ended and the
   spare is ready again, as errors minutes apart do.

Run: .venv/bin/python tests/bench/bench_console.py [--events N] [--files N,N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.outbox import Outbox  # noqa: E402
from agent.wire import ErrorEvent, with_seq  # noqa: E402
from console.config import parse_config  # noqa: E402
from console.engine import Engine  # noqa: E402
from console.models import State  # noqa: E402
from console.store import Store, now_iso  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import occurrences_ddl  # noqa: E402


def payload(i: int, fingerprints: int, host: str = "bench") -> dict[str, object]:
    """The ``i``-th event of a host's stream: ``fingerprints`` errors in turn, each event
    carrying that error's running total on the host."""
    fp = i % fingerprints
    return {
        "type": "error" if i < fingerprints else "update",
        "host": host,
        "service": "PA",
        "fingerprint": f"{fp:016x}",
        "count": i // fingerprints + 1,
        "severity": "medium",
        "message": f"Cannot read properties of undefined (reading 'id') #{fp}",
        "error_type": "TypeError",
        "stack": [
            f"TypeError: Cannot read properties of undefined (reading 'id') #{fp}",
            "    at getUserProfile (/srv/pa/lib/users.js:16:21)",
            "    at dispatch (/srv/pa/app.js:78:50)",
        ],
        "route": "GET /api/users/42",
        "first_seen": "2026-11-26T02:00:00.000Z",
        "last_seen": "2026-11-26T02:05:00.000Z",
    }


def seed_outbox(state: Path, events: int, fingerprints: int = 200, host: str = "bench") -> None:
    """Fill an agent outbox with events in the agent's own stored form."""
    Outbox.open(state / "agent.db", host).close()
    conn = sqlite3.connect(state / "agent.db")
    now = time.time()
    conn.executemany(
        "INSERT INTO events (created, payload) VALUES (?, ?)",
        (
            (now, json.dumps(payload(i, fingerprints, host), separators=(",", ":")))
            for i in range(events)
        ),
    )
    conn.commit()
    conn.close()


def baseline(path: Path, events: int, fingerprints: int = 200) -> float:
    """The least a store could do with the same rows: the occurrence rows the store writes
    (each with the wire line the agent sends as its raw text) inserted with one
    ``executemany`` in one transaction, into a table of the store's own occurrences shape
    (columns and indexes), on the same kind of file (WAL, synchronous=NORMAL)."""
    now = now_iso()
    rows = []
    for i in range(events):
        p = payload(i, fingerprints)
        line = with_seq(json.dumps(p, separators=(",", ":")), i + 1)
        rows.append(("bench", "", i + 1, i % fingerprints + 1, p["type"], p["count"], now, line))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(occurrences_ddl())
    start = time.perf_counter()
    with conn:
        conn.executemany(
            "INSERT INTO occurrences (host, instance, seq, error_id, type, count, received_at, "
            "raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


@dataclass(frozen=True)
class IngestRun:
    """Wall seconds of a console ingest, and the CPU seconds each side spent on it.

    On a busy machine the wall time includes waiting for a core; the CPU seconds say what
    the console and the agent's stream themselves cost."""

    seconds: float
    console_cpu: float
    agent_cpu: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def ingest_from_agent(work: Path, events: int) -> IngestRun:
    state = work / "agent"
    state.mkdir()
    seed_outbox(state, events)
    toml = work / "agent.toml"
    toml.write_text(
        f'state_dir = "{state}"\nhost = "bench"\n'
        f'[[sources]]\nservice = "PA"\npaths = ["{work}/none/*.log"]\n'
    )
    config = parse_config(
        {
            "state_dir": str(work / "console"),
            "hosts": [
                {
                    "name": "bench",
                    "local": True,
                    "agent_command": f"{sys.executable} -m agent.cli stream",
                    "agent_config": str(toml),
                }
            ],
        }
    )
    engine = Engine(config, await Store.open(config.db_path))
    children = _children_cpu()
    cpu = time.process_time()
    start = time.perf_counter()
    await engine.start()
    while await engine.store.last_seq("bench") < events:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    await engine.stop()
    return IngestRun(elapsed, cpu, _children_cpu() - children)


FAKE_CLAUDE = """#!/bin/sh
date +%s.%N >> '{marker}'
echo '{{"type":"result","subtype":"success","is_error":true,"result":"benchmark stand-in"}}'
exit 1
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_big_repo(work: Path, files: int) -> Path:
    bare = work / f"origin-{files}.git"
    repo = work / f"repo-{files}"
    git(work, "init", "-q", "--bare", "-b", "main", str(bare))
    (repo / "lib").mkdir(parents=True)
    (repo / "test").mkdir()
    (repo / "lib" / "users.js").write_text(
        "function getUserProfile(id) {\n  const user = undefined;\n  return user.id;\n}\n"
        "module.exports = { getUserProfile };\n"
    )
    for i in range(files):
        d = repo / "src" / f"m{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.js").write_text(f"module.exports = {i};\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "add", ".")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "big")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    return repo


async def claude_start_latency(
    work: Path, repo: Path, runs: int, *, keep_ready: bool, first: int = 0
) -> list[float]:
    """Latencies of ``runs`` errors; ``first`` numbers their fingerprints apart from
    earlier calls on the same repository (a known fingerprint would only be counted)."""
    name = f"{repo.name}-{'ready' if keep_ready else 'checkout'}"
    marker = work / f"claude-started-{name}"
    fake = work / "fake-claude"
    fake.write_text(FAKE_CLAUDE.format(marker=str(marker)))
    fake.chmod(0o755)
    config = parse_config(
        {
            "state_dir": str(work / f"console-latency-{name}"),
            "auto_approve": ["low", "medium", "high", "critical"],
            "services": [{"name": "PA", "repo": str(repo), "test_command": "true"}],
            "claude": {"command": str(fake)},
            "worktree": {"keep_ready": keep_ready},
        }
    )
    engine = Engine(config, await Store.open(config.db_path))
    await engine.start(links=False)
    await engine.wait_ready_worktrees()
    latencies = []
    for run in range(first, first + runs):
        fields = payload(run, 10**6)
        fields["type"] = "error"
        event = ErrorEvent(seq=run + 1, **fields)  # type: ignore[arg-type]
        before = marker.read_text().count("\n") if marker.exists() else 0
        start = time.time()
        await engine.ingest("bench", [event])
        while not marker.exists() or marker.read_text().count("\n") == before:
            await asyncio.sleep(0.002)
        started = float(marker.read_text().splitlines()[-1])
        latencies.append(started - start)
        await engine.wait_idle()
        await engine.wait_ready_worktrees()
        rows = await engine.store.errors(limit=1, state=State.FAILED)
        assert rows, "the stand-in run should end as a failed attempt"
    await engine.stop()
    return latencies


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = baseline(work / "baseline.db", args.events)
        run = await ingest_from_agent(work, args.events)
        ours = run.seconds
        print(
            f"ingest:    {args.events} events from a local agent stream into the store in "
            f"{ours:.2f} s = {args.events / ours:,.0f} events/s; plain sqlite3 executemany "
            f"{args.events / base:,.0f} events/s; ratio {base / ours:.2f} (target >= 0.5); "
            f"CPU: console {run.console_cpu:.2f} s, agent stream {run.agent_cpu:.2f} s"
        )
        for files in args.files:
            repo = make_big_repo(work, files)
            for i, keep_ready in enumerate((False, True)):
                lat = await claude_start_latency(
                    work, repo, args.runs, keep_ready=keep_ready, first=i * args.runs
                )
                how = "from the spare checkout" if keep_ready else "checked out per attempt"
                print(
                    f"latency:   settled error -> Claude process start, repo of {files} files, "
                    f"worktree {how}: median {statistics.median(lat) * 1000:.0f} ms, "
                    f"max {max(lat) * 1000:.0f} ms over {len(lat)} runs (target < 300 ms)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument(
        "--files",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[50, 5_000],
        help="repository sizes, comma-separated",
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
