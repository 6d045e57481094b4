"""`autofix-agent run` and `stream` as operators run them: real processes, real files."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.wire import ErrorEvent, Heartbeat, Hello, decode
from tests.conftest import SERVICE_DIR, require_node_modules, require_tool

AGENT = [sys.executable, "-m", "agent.cli"]


def write_config(tmp_path: Path, logs: Path, **detection: float) -> Path:
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
    """A running `autofix-agent run` process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*AGENT, "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def agent_factory() -> Iterator:
    agents: list[Agent] = []

    def make(config: Path, log: Path) -> Agent:
        agent = Agent(config, log)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


def read_stream(config: Path, since: int, until: float, want: int) -> list:
    """Run `stream` and collect decoded lines until `want` error/update events or timeout."""
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
            time.sleep(0.02)
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)
    return lines


def group_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT stack, count FROM groups").fetchall()
    conn.close()
    out: dict[str, int] = {}
    for stack_json, count in rows:
        stack = json.loads(stack_json)
        frame = next((s for s in stack if s.strip().startswith("at ")), "")
        out[frame.strip().split()[1]] = count
    return out


def wait_for(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)


def test_errors_from_a_real_node_service_arrive_on_the_stream(
    tmp_path: Path, agent_factory
) -> None:
    node = require_tool("node")
    require_node_modules()
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, logs)
    agent = agent_factory(config, tmp_path / "agent.err")
    agent.start()
    time.sleep(1.0)
    for _ in range(3):
        subprocess.run(
            [
                node,
                str(SERVICE_DIR / "app.js"),
                "--once",
                "users",
                "--logger",
                "pino",
                "--log-dir",
                str(logs),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    lines = read_stream(config, 0, until=30, want=1)
    assert isinstance(lines[0], Hello) and lines[0].host == "test-host"
    errors = [e for e in lines if isinstance(e, ErrorEvent)]
    assert errors, f"no error event; agent said: {(tmp_path / 'agent.err').read_text()}"
    first = errors[0]
    assert first.type == "error" and first.service == "PA" and first.error_type == "TypeError"
    assert "reading" in first.message
    assert first.stack and any("at " in line for line in first.stack)
    # A reader resuming after that seq gets nothing old again.
    later = read_stream(config, first.seq, until=1.5, want=1)
    assert all(e.seq > first.seq for e in later if isinstance(e, ErrorEvent))
    assert any(isinstance(e, Heartbeat) for e in later)


ERROR_KINDS = 4


def _writer_script(path: Path, total: int) -> str:
    return f"""
import os, random, time
random.seed(7)
fd = os.open({str(path)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range({total}):
    k = i % {ERROR_KINDS}
    os.write(fd, f"INFO request {{i}} ok errors=0\\n".encode())
    record = (f"TypeError: broken thing {{i}}\\n"
              f"    at handler{{k}} (/srv/pa/src/h{{k}}.js:{{i % 50 + 1}}:7)\\n"
              f"    at Layer.handle (/srv/pa/node_modules/express/lib/router/layer.js:95:5)\\n")
    # Split some records across two writes so a kill can land mid-record.
    cut = random.randrange(1, len(record)) if i % 3 == 0 else len(record)
    os.write(fd, record[:cut].encode())
    if cut < len(record):
        time.sleep(0.002)
        os.write(fd, record[cut:].encode())
    time.sleep(0.004)
os.close(fd)
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_neither_loses_nor_double_counts(
    tmp_path: Path, agent_factory
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, logs)
    total = 1200
    writer = subprocess.Popen([sys.executable, "-c", _writer_script(logs / "pa.log", total)])
    agent = agent_factory(config, tmp_path / "agent.err")
    rng = random.Random(11)
    kills = 0
    agent.start()
    while writer.poll() is None:
        time.sleep(rng.uniform(0.2, 0.9))
        agent.kill9()
        kills += 1
        agent.start()
    writer.wait()
    db = tmp_path / "state" / "agent.db"
    expected = {f"handler{k}": total // ERROR_KINDS for k in range(ERROR_KINDS)}
    wait_for(
        lambda: db.exists() and group_counts(db) == expected,
        60,
        f"counts never reached {expected}; last {group_counts(db) if db.exists() else None}",
    )
    time.sleep(1.0)
    assert group_counts(db) == expected, "counts moved past the exact total"
    assert kills >= 3
    # Every relayed event carries a running total that never goes backwards.
    lines = read_stream(config, 0, until=5, want=10**6)
    per_fp: dict[str, list[int]] = {}
    for e in lines:
        if isinstance(e, ErrorEvent):
            per_fp.setdefault(e.fingerprint, []).append(e.count)
    assert len(per_fp) == ERROR_KINDS
    for counts in per_fp.values():
        assert counts == sorted(counts)
    assert sorted(c[-1] for c in per_fp.values()) == sorted(expected.values())


def test_bad_input_is_skipped_with_a_message_and_the_agent_keeps_running(
    tmp_path: Path, agent_factory
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, logs)
    agent = agent_factory(config, tmp_path / "agent.err")
    agent.start()
    time.sleep(1.0)
    with (logs / "garbage.log").open("wb") as fh:
        fh.write(b"ERROR " + b"x" * (10 * 1024 * 1024) + b"\n")
        fh.write(os.urandom(200_000).replace(b"\n", b"") + b"\n")
        fh.write(b"ERROR invalid \xff\xfe utf-8 \xc3\x28 here\n")
        fh.write(b'{"level":50,"msg":"truncated json\n')
    secret = logs / "secret.log"
    secret.write_text("ERROR hidden\n")
    secret.chmod(0)
    sub = logs / "gone"
    sub.mkdir()
    sub.rmdir()
    time.sleep(1.0)
    with (logs / "after.log").open("w") as fh:
        fh.write("TypeError: still alive\n    at survivor (/srv/pa/src/s.js:1:1)\n\n")
    lines = read_stream(config, 0, until=20, want=10)
    messages = [e.message for e in lines if isinstance(e, ErrorEvent)]
    assert agent.proc is not None and agent.proc.poll() is None, "agent died"
    assert any("still alive" in m for m in messages), messages
    assert any("invalid" in m and "utf-8" in m for m in messages), messages
    cut = [m for m in messages if m.startswith("x" * 100)]
    assert cut and all(len(m) < 100_000 for m in cut), "the 10 MB line is kept, cut"
    said = (tmp_path / "agent.err").read_text()
    if os.geteuid() != 0:  # root can read a mode-0 file, so only others see the refusal
        assert "secret.log" in said


def test_stream_under_a_forced_command_refuses_anything_but_a_stream(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, logs)
    for original in (
        "cat /etc/passwd",
        "autofix-agent stream --since 1; rm -rf /",
        "autofix-agent run",
        "autofix-agent stream --since -4",
        "autofix-agent stream --config /etc/other.toml",
    ):
        proc = subprocess.run(
            [*AGENT, "stream", "--config", str(config)],
            env={**os.environ, "SSH_ORIGINAL_COMMAND": original},
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert proc.returncode == 2, original
        assert "refused" in proc.stderr and proc.stdout == ""


def test_stream_exits_when_its_reader_goes_away(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, logs)
    proc = subprocess.Popen(
        [*AGENT, "stream", "--config", str(config)],
        env={**os.environ, "SSH_ORIGINAL_COMMAND": "autofix-agent stream --since 0"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    hello = decode(proc.stdout.readline())
    assert isinstance(hello, Hello) and hello.last_seq == 0
    proc.stdin.close()
    assert proc.wait(10) == 0
    proc.stdout.close()
    # A closed stdout (reader gone, stdin still open) also ends it cleanly.
    proc = subprocess.Popen(
        [*AGENT, "stream", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(10) == 0
    assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def test_scan_reports_each_error_group_of_the_shipped_sample() -> None:
    sample = Path(__file__).resolve().parent.parent / "agent" / "samples" / "pa-error.log"
    proc = subprocess.run(
        [*AGENT, "scan", "--service", "PA", str(sample)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    groups = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(groups) >= 3
    for g in groups:
        assert set(g) >= {
            "fingerprint",
            "count",
            "severity",
            "message",
            "type",
            "stack",
            "route",
            "service",
            "first_seen",
            "last_seen",
        }
        assert len(g["fingerprint"]) == 16 and g["service"] == "PA" and g["count"] >= 1
    assert len({g["fingerprint"] for g in groups}) == len(groups)
    assert Counter(g["severity"] for g in groups)
