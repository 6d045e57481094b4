"""The agent sees a service start in its log (agent/starts.py) and relays it as a
``start`` line: the real daemon tailing a file, the real stream reading its outbox."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.config import parse_config
from agent.starts import DEFAULT_START_PATTERN, LINE_LIMIT, StartLines
from agent.wire import ErrorEvent, Start, decode, encode
from tests.agent_process import read_stream, write_config

# Start lines as the frameworks print them, and lines that must not count as one.
STARTS = [
    "2026-01-02T03:04:05.678Z INFO listening on http://127.0.0.1:3000",
    '{"level":30,"time":1,"pid":7,"msg":"Server listening at http://0.0.0.0:3000"}',
    "[Nest] 12  - 01/02/2026, 3:04:05 AM     LOG [NestApplication] Nest application "
    "successfully started +3ms",
    "ready - started server on 0.0.0.0:3000, url: http://localhost:3000",
    "  ✓ Ready in 1843ms",
    "Server running at: http://localhost:3000",
]
NOT_STARTS = [
    "ERROR GET /api/users/999 TypeError: Cannot read properties of undefined",
    "INFO inventory sync done errors=0",
    "WARN the reader is not listening",
]


def test_the_default_pattern_knows_the_common_start_lines_and_nothing_else() -> None:
    found = StartLines(DEFAULT_START_PATTERN).feed(
        "k", "\n".join(STARTS + NOT_STARTS).encode() + b"\n"
    )
    assert found == [line.strip()[:LINE_LIMIT] for line in STARTS]


@given(
    lines=st.lists(st.sampled_from(STARTS + NOT_STARTS), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_a_start_line_split_between_reads_is_found_once(lines: list[str], cuts: list[int]) -> None:
    data = ("\n".join(lines) + "\n").encode()
    whole = StartLines(DEFAULT_START_PATTERN).feed("k", data)
    starts = StartLines(DEFAULT_START_PATTERN)
    found: list[str] = []
    at = 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        found += starts.feed("k", data[at:cut])
        at = cut
    assert found == whole == [line.strip() for line in lines if line in STARTS]


@given(line=st.text(max_size=400))
def test_any_start_line_round_trips_through_the_wire(line: str) -> None:
    event = Start(seq=3, host="h", service="PA", at="2026-01-02T03:04:05.678Z", line=line)
    assert decode(encode(event)) == event


def test_an_empty_start_pattern_turns_the_detection_off_and_a_bad_one_names_the_key() -> None:
    base = {"sources": [{"service": "PA", "paths": ["/var/log/pa/*.log"]}]}
    assert parse_config(base).sources[0].start_pattern == DEFAULT_START_PATTERN
    off = {"sources": [{**base["sources"][0], "start_pattern": ""}]}
    assert parse_config(off).sources[0].start_pattern == ""
    bad = {"sources": [{**base["sources"][0], "start_pattern": "listening ("}]}
    try:
        parse_config(bad)
    except ValueError as exc:
        assert "sources[0].start_pattern" in str(exc)
    else:
        raise AssertionError("a bad start_pattern was accepted")


def test_the_daemon_relays_a_start_line_of_a_followed_file(agent_factory, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = write_config(tmp_path, logs)
    agent = agent_factory(config, tmp_path / "agent.err")
    log = logs / "pa.log"
    log.write_text("INFO booting\n")
    agent.start()
    time.sleep(1.0)
    with log.open("a") as out:
        out.write("2026-01-02T03:04:05.678Z INFO listening on http://127.0.0.1:3000\n")
        out.write("token=ghp_abcdefghijklmnopqrstuvwxyz0123456789 INFO server started\n")
    lines = read_stream(
        config, 0, 60, want=99, done=lambda got: sum(isinstance(e, Start) for e in got) >= 2
    )
    starts = [e for e in lines if isinstance(e, Start)]
    assert [s.service for s in starts] == ["PA", "PA"], agent.said()
    assert "listening on http://127.0.0.1:3000" in starts[0].line
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123456789" not in starts[1].line, "redacted"
    assert starts[0].seq < starts[1].seq and starts[0].host == "test-host"
    assert not any(isinstance(e, ErrorEvent) for e in lines)
