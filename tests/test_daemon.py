"""`autofix-agent run` and `stream` as operators run them: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.daemon import _directory_is_watched
from agent.wire import ErrorEvent, Heartbeat, Hello, decode
from tests.agent_process import (
    AGENT,
    group_counts,
    read_stream,
    wait_for_exact_counts,
    write_config,
)
from tests.conftest import SERVICE_DIR, require_node_modules, require_tool


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
    later = read_stream(
        config,
        first.seq,
        until=15,
        want=10**6,
        done=lambda ls: any(isinstance(e, Heartbeat) for e in ls),
    )
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
    kills = agent.kill9_while(writer, seed=11, pause=0.9)
    writer.wait()
    db = tmp_path / "state" / "agent.db"
    expected = {f"handler{k}": total // ERROR_KINDS for k in range(ERROR_KINDS)}
    wait_for_exact_counts(db, expected)
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


# What JSON.stringify writes for a string cut inside an emoji: a lone high surrogate.
SURROGATE_LINES = (
    '{"level":50,"time":1795428000000,"msg":"comment rejected: \\ud83d"}',
    '{"level":50,"time":1795428000000,"msg":"bad url","req":{"method":"GET","url":"/c/\\ud83d"}}',
    '{"level":50,"time":1795428000000,"msg":"bad stack","err":{"type":"TypeError",'
    '"message":"bad stack","stack":"TypeError: bad stack \\udc00\\n'
    '    at cut (/srv/pa/src/\\ud83d.js:1:1)"}}',
)


def _trace(name: str, i: int) -> str:
    return f"TypeError: {name} {i}\n    at {name} (/srv/pa/src/{name}.js:1:1)\n\n"


def _stream_counts(config: Path, want: dict[str, int], until: float = 30) -> dict[str, int]:
    """The latest count per first-frame function seen on the stream, once ``want`` holds."""

    def latest(lines: list) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in lines:
            if isinstance(e, ErrorEvent):
                frame = next((s for s in e.stack if s.strip().startswith("at ")), e.message)
                out[frame.strip().split()[1] if frame.strip().startswith("at ") else frame] = (
                    e.count
                )
        return out

    lines = read_stream(
        config, 0, until=until, want=10**6, done=lambda ls: _contains(latest(ls), want)
    )
    return latest(lines)


def _contains(counts: dict[str, int], want: dict[str, int]) -> bool:
    return all(counts.get(k) == v for k, v in want.items())


@pytest.mark.parametrize("bad", SURROGATE_LINES, ids=["msg", "req.url", "err.stack"])
def test_a_lone_surrogate_in_a_json_log_does_not_blind_the_agent(
    tmp_path: Path, agent_factory, bad: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, logs)
    a, b = logs / "a.log", logs / "b.log"
    a.write_text(_trace("before", 0))
    b.write_text(_trace("other", 0))
    agent = agent_factory(config, tmp_path / "agent.err")
    agent.start()
    assert _contains(_stream_counts(config, {"before": 1, "other": 1}), {"before": 1})
    with a.open("a") as fh:
        fh.write(bad + "\n")
        fh.write(_trace("after", 1))
    with b.open("a") as fh:
        fh.write(_trace("other", 1))
    want = {"before": 1, "after": 1, "other": 2}
    seen = _stream_counts(config, want)
    assert _contains(seen, want), f"{seen}; agent said: {agent.said()}"
    relayed = read_stream(config, 0, until=5, want=10**6, done=lambda ls: False)
    bad_events = [e for e in relayed if isinstance(e, ErrorEvent) and "\ufffd" in repr(e)]
    assert bad_events, "the record with the surrogate is relayed, made safe"
    # A restart resumes after the bad line: nothing is counted twice, new lines arrive.
    agent.stop()
    agent.start()
    with a.open("a") as fh:
        fh.write(_trace("after", 2))
    with b.open("a") as fh:
        fh.write(_trace("other", 2))
    want = {"before": 1, "after": 2, "other": 3}
    seen = _stream_counts(config, want)
    assert _contains(seen, want), f"{seen}; agent said: {agent.said()}"
    assert agent.alive()
    assert "Traceback" not in agent.said()


@pytest.mark.parametrize("bad", SURROGATE_LINES, ids=["msg", "req.url", "err.stack"])
def test_scan_reports_a_record_with_a_lone_surrogate_made_safe(tmp_path: Path, bad: str) -> None:
    log = tmp_path / "pa.log"
    log.write_text(_trace("before", 0) + bad + "\n" + _trace("after", 0))
    proc = subprocess.run([*AGENT, "scan", str(log)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    groups = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert len(groups) == 3
    assert any("\ufffd" in json.dumps(g, ensure_ascii=False) for g in groups)
    assert {g["message"] for g in groups} >= {"before 0", "after 0"}


async def test_a_failed_source_task_is_restarted_and_the_others_keep_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from agent import daemon as daemon_module
    from agent.config import load_config
    from agent.outbox import OutboxReader

    monkeypatch.setattr(daemon_module, "MIN_BACKOFF", 0.2)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_path = tmp_path / "agent.toml"
    config_path.write_text(
        f'state_dir = "{tmp_path / "state"}"\nhost = "h"\n'
        "[detection]\nsettle_seconds = 0.2\nmin_severity = 'low'\n"
        f'[[sources]]\nservice = "A"\npaths = ["{tmp_path}/a/*.log"]\nfrom_beginning = true\n'
        f'[[sources]]\nservice = "B"\npaths = ["{tmp_path}/b/*.log"]\nfrom_beginning = true\n'
    )
    daemon = daemon_module.Daemon(load_config(config_path))
    failing = daemon.watches[0].files
    real_poll = failing.poll

    def poll_that_fails_once_data_arrives() -> list:
        chunks = real_poll()
        if any(c.data for c in chunks):
            raise RuntimeError("a fault inside the tailer")
        return chunks

    failing.poll = poll_that_fails_once_data_arrives  # type: ignore[method-assign]
    task = asyncio.create_task(daemon.run())
    await asyncio.sleep(0.5)
    (tmp_path / "a" / "a.log").write_text(_trace("alpha", 0))
    (tmp_path / "b" / "b.log").write_text(_trace("beta", 0))
    db = tmp_path / "state" / "agent.db"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and group_counts(db) != {"alpha": 1, "beta": 1}:
        await asyncio.sleep(0.1)
    assert group_counts(db) == {"alpha": 1, "beta": 1}
    assert daemon.watches[0].files is not failing, "the failed source was started over"
    reader = OutboxReader(db)
    health = reader.source_health()
    reader.close()
    assert [(h.source.split(":")[0], h.state, h.failures) for h in health] == [("A", "running", 1)]
    assert "a fault inside the tailer" in health[0].last_error
    check = subprocess.run(
        [*AGENT, "check", "--config", str(config_path)], capture_output=True, text=True
    )
    assert "warn sources[0] A: failed 1 time(s)" in check.stdout, check.stdout
    daemon.stop()
    await asyncio.wait_for(task, 10)
    said = capsys.readouterr().err
    assert "A: " in said and "source failed (RuntimeError: a fault inside the tailer" in said
    assert "source restarted" in said


def test_only_a_pattern_whose_files_sit_in_a_watched_directory_is_rescanned_seldom(
    tmp_path: Path,
) -> None:
    (tmp_path / "logs").mkdir()
    assert _directory_is_watched(f"{tmp_path}/logs/*.log")
    # inotify on logs/ does not see writes inside logs/svc/, nor a directory not there yet.
    assert not _directory_is_watched(f"{tmp_path}/logs/*/app.log")
    assert not _directory_is_watched(f"{tmp_path}/missing/*.log")


def test_a_log_in_a_subdirectory_matched_by_a_wildcard_is_followed_as_it_grows(
    tmp_path: Path, agent_factory
) -> None:
    logs = tmp_path / "logs"
    (logs / "svc").mkdir(parents=True)
    log = logs / "svc" / "app.log"
    log.write_text("TypeError: first fault\n    at run (/srv/a.js:1:1)\nINFO next\n")
    config = write_config(tmp_path, logs)
    config.write_text(config.read_text().replace(f"{logs}/*.log", f"{logs}/*/app.log"))
    agent = agent_factory(config, tmp_path / "agent.err")
    agent.start()
    first = [e for e in read_stream(config, 0, until=30, want=1) if isinstance(e, ErrorEvent)]
    assert [e.message for e in first] == ["first fault"], agent.said()
    # An append inside logs/svc/ sends no notice for logs/: the short rescan must find it,
    # each time (the first wait after the start is a short one whatever the pattern).
    seq = first[-1].seq
    for fault in ("RangeError: second fault", "SyntaxError: third fault"):
        with log.open("a") as fh:
            fh.write(f"{fault}\n    at run (/srv/a.js:2:1)\nINFO next\n")
        later = [e for e in read_stream(config, seq, until=12, want=1) if isinstance(e, ErrorEvent)]
        assert [e.message for e in later] == [fault.split(": ")[1]], agent.said()
        seq = later[-1].seq
