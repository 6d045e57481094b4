"""Real `autofix-agent run` and `stream` processes for tests, and what they left behind.

The daemon tests, the fuzz tests and the journald tests all drive the agent the way an
operator does: a config file on disk, `run` as a subprocess, `stream` read line by line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agent.wire import ErrorEvent, decode

AGENT = [sys.executable, "-m", "agent.cli"]


def write_config(tmp_path: Path, logs: Path, **detection: float) -> Path:
    """A config following ``logs/*.log`` from the beginning, with short settle windows."""
    settings = {"settle_seconds": 0.3, "max_settle_seconds": 5, "update_seconds": 0.3}
    settings.update(detection)
    det = "\n".join(f"{k} = {v}" for k, v in settings.items())
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\nhost = "test-host"\n'
        f'[detection]\n{det}\nmin_severity = "low"\n'
        f"[stream]\nheartbeat_seconds = 0.5\n"
        f'[[sources]]\nservice = "PA"\npaths = ["{logs}/*.log"]\nfrom_beginning = true\n'
    )
    return path


class Agent:
    """A running `autofix-agent run` process; its stderr is appended to ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*AGENT, "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def kill9_while(self, writer: subprocess.Popen[bytes], seed: int, pause: float) -> int:
        """``kill -9`` and restart the agent at random moments (pauses of ``pause`` / 3
        to ``pause`` s) until ``writer`` exits; returns how often it was killed."""
        rng = random.Random(seed)
        kills = 0
        self.start()
        while writer.poll() is None:
            time.sleep(rng.uniform(pause / 3, pause))
            self.kill9()
            kills += 1
            self.start()
        return kills

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_stream(
    config: Path,
    since: int,
    until: float,
    want: int,
    done: Callable[[list], bool] | None = None,
) -> list:
    """Run `stream` and collect decoded lines until ``want`` error/update events, until
    ``done(lines)`` holds, or until ``until`` seconds have passed."""
    proc = subprocess.Popen(
        [*AGENT, "stream", "--since", str(since), "--config", str(config)],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    lines: list = []
    buf = b""
    deadline = time.monotonic() + until
    try:
        while time.monotonic() < deadline:
            chunk = proc.stdout.read()
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                lines += [decode(line) for line in complete]
            if sum(isinstance(e, ErrorEvent) for e in lines) >= want:
                break
            if done is not None and done(lines):
                break
            time.sleep(0.02)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)
    return lines


def group_counts(db: Path) -> dict[str, int]:
    """Counts in the outbox by the function of each group's first stack frame."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT stack, count FROM groups").fetchall()
    except sqlite3.OperationalError:  # the agent has not created its tables yet
        rows = []
    finally:
        conn.close()
    out: dict[str, int] = {}
    for stack_json, count in rows:
        stack = json.loads(stack_json)
        frame = next((s for s in stack if s.strip().startswith("at ")), "")
        words = frame.split()
        name = words[1] if len(words) > 1 else frame
        out[name] = out.get(name, 0) + count
    return out


def wait_for_exact_counts(db: Path, expected: dict[str, int], timeout: float = 60) -> None:
    """Wait for the outbox to hold exactly ``expected``, then check it stays there."""
    wait_for(
        lambda: db.exists() and group_counts(db) == expected,
        timeout,
        f"counts never reached {expected}; last {group_counts(db) if db.exists() else None}",
    )
    time.sleep(1.0)
    assert group_counts(db) == expected, "counts moved past the exact total"


def wait_for(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)
