"""Agent benchmark: scan throughput against grep, and the daemon's footprint.

Run by hand or with `make bench`; prints a table and the ratios the README quotes. Every
number is measured in this one run, against a baseline on the same machine and file:

- scan throughput vs `grep -c -iE 'error|exception'` on each mix of ``mixes.py`` (the median
  of several runs of each, checking that scan counted every error record the mix holds),
  and how scan time grows with the size of one mix;
- peak RSS of `run` tailing 100 files, and its CPU while the logs are quiet.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mixes import MIXES  # noqa: E402

AGENT = [sys.executable, "-m", "agent.cli"]
AGENT_PACKAGE = HERE.parent.parent / "agent"


def compile_agent() -> None:
    """Write the agent's bytecode, as installing it does, so no timed run compiles source.

    With PYTHONDONTWRITEBYTECODE set (or a read-only checkout) every run would otherwise
    compile each module again, which is no part of what an installed agent pays.
    """
    compileall.compile_dir(str(AGENT_PACKAGE), quiet=1)


def timed(argv: list[str]) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds of the process and its children, its output) of one run.

    The output is read through a pipe, not sent to /dev/null: GNU grep notices /dev/null
    and stops at the first match.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # stderr (scan's summary) is dropped: it is neither timed output nor this report's.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = []
    while chunk := proc.stdout.read(1 << 20):
        out.append(chunk)
    if proc.wait() != 0:
        raise SystemExit(f"{argv[0]} exited with {proc.returncode}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, b"".join(out)


def median_of(runs: int, argv: list[str]) -> tuple[float, float, bytes]:
    """Median wall and CPU seconds over ``runs`` runs, and the output of the last one."""
    times = [timed(argv) for _ in range(runs)]
    wall = statistics.median(t[0] for t in times)
    return wall, statistics.median(t[1] for t in times), times[-1][2]


def _records(scan_output: bytes) -> int:
    return sum(json.loads(line)["count"] for line in scan_output.splitlines() if line.strip())


@dataclass(frozen=True)
class ScanTiming:
    """scan against grep on one file, both measured in the same run."""

    mix: str
    size_mb: float
    grep_mb_s: float
    scan_mb_s: float
    # Per CPU second of each: scan reads a large file in parallel parts, and on a busy
    # machine CPU time moves less than wall time.
    grep_cpu_mb_s: float
    scan_cpu_mb_s: float

    @property
    def ratio(self) -> float:
        return self.scan_mb_s / self.grep_mb_s

    @property
    def cpu_ratio(self) -> float:
        return self.scan_cpu_mb_s / self.grep_cpu_mb_s

    def row(self) -> str:
        return (
            f"{self.mix:<12} {self.size_mb:5.0f} MB  grep {self.grep_mb_s:6.1f} MB/s  "
            f"scan {self.scan_mb_s:6.1f} MB/s  ratio {self.ratio:.2f}x  "
            f"(per CPU s: grep {self.grep_cpu_mb_s:6.1f}, scan {self.scan_cpu_mb_s:6.1f}, "
            f"{self.cpu_ratio:.2f}x)"
        )


def time_scan(log: Path, mix: str, runs: int, records: int | None = None) -> ScanTiming:
    """Time grep and scan on ``log``; with ``records``, scan must have found that many."""
    size = log.stat().st_size / 1e6
    grep, grep_cpu, _ = median_of(runs, ["grep", "-c", "-iE", "error|exception", str(log)])
    scan, scan_cpu, out = median_of(runs, [*AGENT, "scan", "--service", "PA", str(log)])
    if records is not None and _records(out) != records:
        raise SystemExit(f"{mix}: scan counted {_records(out)} error records, not {records}")
    return ScanTiming(
        mix, size, size / grep, size / scan, size / max(grep_cpu, 1e-3), size / scan_cpu
    )


def startup_cpu(work: Path, runs: int) -> float:
    """Median CPU seconds of scan over an empty file: what every scan pays before its input."""
    empty = work / "empty.log"
    empty.touch()
    return median_of(runs, [*AGENT, "scan", "--service", "PA", str(empty)])[1]


def head_of(source: Path, target: Path, size_mb: float) -> Path:
    """The first ``size_mb`` MiB of ``source`` up to a line end, written to ``target``."""
    limit = int(size_mb * 1024 * 1024)
    with source.open("rb") as src, target.open("wb") as out:
        data = src.read(limit)
        out.write(data[: data.rfind(b"\n") + 1] if len(data) == limit else data)
    return target


def bench_scan(work: Path, mixes: list[str], size_mb: float, runs: int) -> Iterator[ScanTiming]:
    """Each mix's timing, as soon as it is measured."""
    for mix in mixes:
        log = work / f"{mix}.log"
        records = MIXES[mix](log, size_mb, 0)
        yield time_scan(log, mix, runs, records)
        log.unlink()


def bench_growth(work: Path, mix: str, sizes: list[float], runs: int) -> Iterator[ScanTiming]:
    """The same mix at growing sizes: each file is the start of the largest one."""
    full = work / f"{mix}-growth.log"
    MIXES[mix](full, max(sizes), 0)
    for size in sizes:
        log = head_of(full, work / f"{mix}-{size:g}.log", size)
        yield time_scan(log, mix, runs)
        log.unlink()
    full.unlink()


def write_config(work: Path, logs: str, **detection: float) -> Path:
    det = "\n".join(f"{k} = {v}" for k, v in detection.items())
    path = work / f"agent-{len(list(work.glob('agent-*.toml')))}.toml"
    path.write_text(
        f'state_dir = "{work / ("state-" + path.stem)}"\nhost = "bench"\n'
        f'[detection]\n{det}\nmin_severity = "low"\n'
        f'[[sources]]\nservice = "PA"\npaths = ["{logs}"]\nfrom_beginning = true\n'
    )
    return path


def word(i: int) -> str:
    """A distinct lowercase name per number (digits would be normalised out of messages)."""
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(97 + r) + letters
    return letters


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
    config = write_config(work, f"{logs}/*.log", settle_seconds=1, max_settle_seconds=5)
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


def load() -> str:
    """The 1-minute load average, printed beside each row: a busy machine moves the times."""
    return f"load {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller files, fewer runs")
    parser.add_argument("--size-mb", type=float, help="size of each mix (default 100, quick 20)")
    parser.add_argument("--runs", type=int, help="runs per timing, median kept (default 5)")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES), help="default: all")
    parser.add_argument("--growth-mix", default="realistic", choices=sorted(MIXES))
    parser.add_argument("--scan-only", action="store_true", help="skip the footprint")
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--quiet-seconds", type=float, default=10.0)
    args = parser.parse_args()
    size = args.size_mb or (20.0 if args.quick else 100.0)
    runs = args.runs or (3 if args.quick else 5)
    growth = [5.0, 25.0, 50.0] if args.quick else [20.0, 100.0, 200.0]
    compile_agent()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"scan start-up (an empty file): {startup_cpu(work, runs) * 1000:.0f} ms CPU")
        print(f"scan vs grep -c -iE 'error|exception', median of {runs} runs (target >= 0.5x)")
        for timing in bench_scan(work, args.mix or list(MIXES), size, runs):
            print(f"  {timing.row()}  {load()}", flush=True)
        print(f"growth of scan time on the {args.growth_mix} mix (must stay linear)")
        for timing in bench_growth(work, args.growth_mix, growth, runs):
            print(f"  {timing.row()}  {load()}", flush=True)
        if args.scan_only:
            return
        foot = bench_footprint(work, args.files, args.quiet_seconds)
        print(
            f"footprint: run tailing {args.files} files: peak RSS {foot['peak_rss_mb']:.1f} MB "
            f"(target < 60 MB), CPU while quiet {foot['quiet_cpu_percent']:.2f}% "
            f"over {args.quiet_seconds:.0f} s, {load()}"
        )


if __name__ == "__main__":
    main()
