"""Agent benchmark: scan throughput against grep, tail latency, and the daemon's footprint.

Run by hand or with `make bench`; prints a table and the ratios the README quotes. Every
number is measured in this one run, against a baseline on the same machine and file:

- scan throughput on a generated mixed log (default 200 MB) vs `grep -c -iE 'error|exception'`;
- tail latency: append of an error to its event on `stream`, settle 0, p50/p99 of N appends;
- peak RSS of `run` tailing 100 files, and its CPU while the logs are quiet.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_log import generate  # noqa: E402

AGENT = [sys.executable, "-m", "agent.cli"]


def best_of(runs: int, argv: list[str]) -> float:
    """Best wall time of a command whose output is read through a pipe.

    Not /dev/null: GNU grep notices /dev/null and stops at the first match.
    """
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        while proc.stdout.read(1 << 20):
            pass
        proc.wait()
        best = min(best, time.perf_counter() - start)
    return best


def bench_scan(work: Path, size_mb: int) -> dict[str, float]:
    log = work / "mixed.log"
    generate(log, size_mb)
    size = log.stat().st_size / 1e6
    grep = best_of(3, ["grep", "-c", "-iE", "error|exception", str(log)])
    scan = best_of(3, [*AGENT, "scan", "--service", "PA", str(log)])
    return {"size_mb": size, "grep_mb_s": size / grep, "scan_mb_s": size / scan}


def _config(work: Path, logs: str, **detection: float) -> Path:
    det = "\n".join(f"{k} = {v}" for k, v in detection.items())
    path = work / f"agent-{len(list(work.glob('agent-*.toml')))}.toml"
    path.write_text(
        f'state_dir = "{work / ("state-" + path.stem)}"\nhost = "bench"\n'
        f'[detection]\n{det}\nmin_severity = "low"\n'
        f'[[sources]]\nservice = "PA"\npaths = ["{logs}"]\nfrom_beginning = true\n'
    )
    return path


def _name(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(97 + r) + letters
    return letters


def bench_latency(work: Path, appends: int) -> dict[str, float]:
    logs = work / "latency"
    logs.mkdir()
    log = logs / "app.log"
    log.touch()
    config = _config(
        work, f"{logs}/*.log", settle_seconds=0, max_settle_seconds=0, update_seconds=0
    )
    run = subprocess.Popen([*AGENT, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    stream = subprocess.Popen(
        [*AGENT, "stream", "--config", str(config)],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert stream.stdout is not None
    stream.stdout.readline()  # hello
    latencies = []
    try:
        with log.open("a") as fh:
            for i in range(appends):
                marker = f"bench-{_name(i)}"
                fh.write(
                    f"TypeError: {marker} failed\n    at {_name(i)}Handler (/srv/pa/x.js:1:1)\n"
                )
                fh.flush()
                start = time.perf_counter()
                while True:
                    line = stream.stdout.readline()
                    if not line:
                        raise RuntimeError("stream ended")
                    if marker.encode() in line:
                        break
                latencies.append((time.perf_counter() - start) * 1000)
    finally:
        stream.stdin.close()  # type: ignore[union-attr]
        stream.terminate()
        run.terminate()
        run.wait()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "appends": float(len(latencies)),
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_footprint(work: Path, files: int, quiet_seconds: float) -> dict[str, float]:
    logs = work / "many"
    logs.mkdir()
    for i in range(files):
        (logs / f"svc{i:03d}.log").write_text(
            "".join(f"INFO request {j} ok\n" for j in range(200))
            + "TypeError: x\n    at f (/srv/a.js:1:1)\n"
        )
    config = _config(work, f"{logs}/*.log", settle_seconds=1, max_settle_seconds=5)
    run = subprocess.Popen([*AGENT, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)
        for i in range(files):
            with (logs / f"svc{i:03d}.log").open("a") as fh:
                fh.write("INFO more\n" * 50)
        time.sleep(2)
        cpu0 = _cpu_seconds(run.pid)
        time.sleep(quiet_seconds)
        cpu1 = _cpu_seconds(run.pid)
        status = Path(f"/proc/{run.pid}/status").read_text()
        peak_kb = int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1])
    finally:
        run.terminate()
        run.wait()
    return {"peak_rss_mb": peak_kb / 1024, "quiet_cpu_percent": 100 * (cpu1 - cpu0) / quiet_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--quiet-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scan = bench_scan(work, args.size_mb)
        print(
            f"scan:      {scan['scan_mb_s']:.1f} MB/s on {scan['size_mb']:.0f} MB; "
            f"grep -c -iE: {scan['grep_mb_s']:.1f} MB/s; "
            f"ratio {scan['scan_mb_s'] / scan['grep_mb_s']:.2f} (target >= 0.25)"
        )
        lat = bench_latency(work, args.appends)
        print(
            f"latency:   append -> stream event, settle 0, {lat['appends']:.0f} appends: "
            f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms (target p99 < 200 ms)"
        )
        foot = bench_footprint(work, args.files, args.quiet_seconds)
        print(
            f"footprint: run tailing {args.files} files: peak RSS {foot['peak_rss_mb']:.1f} MB "
            f"(target < 60 MB), CPU while quiet {foot['quiet_cpu_percent']:.2f}% "
            f"over {args.quiet_seconds:.0f} s"
        )


if __name__ == "__main__":
    main()
