"""Settle windows, classification at settle, relay rules and durability of the outbox."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import AgentConfig, DetectionConfig, RetentionConfig
from agent.occurrence import Occurrence
from agent.outbox import Outbox, OutboxError, OutboxReader
from agent.record import ErrorRecord
from agent.tail import Position

DET = DetectionConfig(settle_seconds=30, max_settle_seconds=300, update_seconds=10)
T0 = 1_800_000_000.0


def occ(fp: str = "a" * 16, message: str = "boom", error_type: str = "Error") -> Occurrence:
    record = ErrorRecord(error_type=error_type, message=message, stack=["    at f (/app/x.js:1:1)"])
    return Occurrence(service="PA", fingerprint=fp, record=record)


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox.open(tmp_path / "state" / "agent.db", "prod-1")
    yield box
    box.close()


def test_error_is_relayed_only_after_the_settle_window_closes(outbox: Outbox) -> None:
    for i in range(3):
        outbox.ingest([occ()], now=T0 + i)
    assert outbox.settle(DET, now=T0 + 2 + 29) == []
    events = outbox.settle(DET, now=T0 + 2 + 30)
    assert [(e.type, e.count, e.severity) for e in events] == [("error", 3, "medium")]
    assert events[0].host == "prod-1" and events[0].service == "PA"


def test_each_new_occurrence_resets_the_settle_window(outbox: Outbox) -> None:
    for i in range(3):
        outbox.ingest([occ()], now=T0 + i * 20)
    # 30 s after the first occurrence, but only 10 s after the last one.
    assert outbox.settle(DET, now=T0 + 50) == []
    assert outbox.next_due(DET) == pytest.approx(T0 + 40 + 30)
    assert len(outbox.settle(DET, now=T0 + 70)) == 1


def test_an_error_that_never_stops_is_reported_at_the_cap(outbox: Outbox) -> None:
    t = T0
    events = []
    while t <= T0 + 310 and not events:
        outbox.ingest([occ()], now=t)
        events = outbox.settle(DET, now=t)
        t += 10
    assert events, "a continuous error must be relayed once max_settle_seconds has passed"
    assert events[0].type == "error"
    assert T0 + 300 <= t - 10 < T0 + 310


def test_below_minimum_severity_is_kept_but_not_relayed_until_it_grows(outbox: Outbox) -> None:
    outbox.ingest([occ()], now=T0)
    assert outbox.settle(DET, now=T0 + 31) == []
    [group] = outbox.groups()
    assert group.count == 1 and group.severity == "low" and not group.relayed
    outbox.ingest([occ(), occ()], now=T0 + 100)
    events = outbox.settle(DET, now=T0 + 131)
    assert [(e.type, e.count, e.severity) for e in events] == [("error", 3, "medium")]


def test_critical_pattern_is_relayed_on_first_occurrence(outbox: Outbox) -> None:
    outbox.ingest([occ(message="connect ECONNREFUSED 127.0.0.1:27017")], now=T0)
    events = outbox.settle(DET, now=T0 + 30)
    assert [(e.type, e.severity, e.count) for e in events] == [("error", "critical", 1)]


def test_later_occurrences_become_batched_count_updates(outbox: Outbox) -> None:
    for _ in range(3):
        outbox.ingest([occ()], now=T0)
    assert outbox.settle(DET, now=T0 + 30)[0].type == "error"
    for i in range(7):
        outbox.ingest([occ()], now=T0 + 40 + i)
    assert outbox.settle(DET, now=T0 + 45) == []
    events = outbox.settle(DET, now=T0 + 50)
    assert [(e.type, e.count, e.severity) for e in events] == [("update", 10, "high")]
    assert outbox.settle(DET, now=T0 + 100) == []


def test_seq_is_monotonic_and_never_reused_after_retention(tmp_path: Path, outbox: Outbox) -> None:
    config = AgentConfig(state_dir=tmp_path / "state", retention=RetentionConfig(max_events=100))
    seqs = []
    for i in range(150):
        outbox.ingest([occ(fp=f"{i:016x}", message="ECONNREFUSED")], now=T0 + i)
        seqs += [e.seq for e in outbox.settle(DET, now=T0 + i + 31)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 150
    assert outbox.prune(config, now=T0 + 200) == 50
    outbox.ingest([occ(fp="f" * 16, message="ECONNREFUSED")], now=T0 + 300)
    [event] = outbox.settle(DET, now=T0 + 331)
    assert event.seq == seqs[-1] + 1
    reader = OutboxReader(tmp_path / "state" / "agent.db")
    assert reader.bounds() == (seqs[50], event.seq)
    reader.close()


def test_events_survive_reopen_and_positions_commit_with_occurrences(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    box = Outbox.open(path, "h")
    pos = Position(key="1:2", path="/var/log/pa/app.log", sig="ab", sig_len=1, offset=42)
    box.ingest([occ(message="ECONNREFUSED")], [("PA", pos)], now=T0)
    instance = box.instance
    box.close()
    again = Outbox.open(path, "h")
    assert again.instance == instance and len(instance) == 32
    assert again.positions("PA") == {"1:2": pos}
    assert again.positions("other") == {}
    assert [e.count for e in again.settle(DET, now=T0 + 30)] == [1]
    again.ingest([], forget=[("PA", "1:2")], now=T0 + 31)
    assert again.positions("PA") == {}
    again.close()


def test_database_from_a_newer_agent_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    Outbox.open(path, "h").close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="schema version 99"):
        Outbox.open(path, "h")


def test_reader_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    box = Outbox.open(path, "h")
    box.ingest([occ(message="ECONNREFUSED")], now=T0)
    box.settle(DET, now=T0 + 30)
    reader = OutboxReader(path)
    [(seq, payload)] = list(reader.events_after(0))
    assert seq == 1 and '"ECONNREFUSED"' in payload
    with pytest.raises(sqlite3.OperationalError):
        reader._connect().execute("DELETE FROM events")  # type: ignore[union-attr]
    reader.close()
    box.close()


def test_detection_thresholds_come_from_config(outbox: Outbox) -> None:
    det = replace(DET, medium_count=2, high_count=4, min_severity="high")
    for _ in range(3):
        outbox.ingest([occ()], now=T0)
    assert outbox.settle(det, now=T0 + 30) == []
    outbox.ingest([occ()], now=T0 + 40)
    assert [(e.severity, e.count) for e in outbox.settle(det, now=T0 + 70)] == [("high", 4)]


def test_stream_lines_decode_to_exactly_the_settled_events(outbox: Outbox, tmp_path: Path) -> None:
    from agent.wire import decode, with_seq

    outbox.ingest([occ(message='quote " comma, brace } ECONNREFUSED')], now=T0)
    [event] = outbox.settle(DET, now=T0 + 30)
    reader = OutboxReader(tmp_path / "state" / "agent.db")
    [(seq, payload)] = list(reader.events_after(0))
    assert decode(with_seq(payload, seq)) == event
    reader.close()


PYTHON_CHAINED = """Traceback (most recent call last):
  File "/srv/app/handlers.py", line 10, in load
    return cache[key]
KeyError: 'user'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/handlers.py", line 12, in load
    return fetch(key)
  File "/usr/lib/python3.11/site-packages/requests/api.py", line 73, in get
    return request("get", url)
ConnectionError: no route to host"""

GO_PANIC = """panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]

goroutine 1 [running]:
main.loadUser(0x0)
	/srv/app/main.go:21 +0x1d
runtime.goexit()
	/usr/local/go/src/runtime/asm_amd64.s:1650 +0x1"""

NODE_STACK = """TypeError: Cannot read properties of undefined (reading 'id')
    at getUser (/srv/app/lib/users.js:12:7)
    at Layer.handle (/srv/app/node_modules/express/lib/router/layer.js:95:5)
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"""


def _frames_shown(stack: list[str], in_app: list[bool | None]) -> dict[str, bool]:
    return {
        line.strip(): flag for line, flag in zip(stack, in_app, strict=True) if flag is not None
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            NODE_STACK,
            {
                "at getUser (/srv/app/lib/users.js:12:7)": True,
                "at Layer.handle (/srv/app/node_modules/express/lib/router/layer.js:95:5)": False,
                "at process.processTicksAndRejections "
                "(node:internal/process/task_queues:95:5)": False,
            },
        ),
        (
            PYTHON_CHAINED,
            {
                'File "/srv/app/handlers.py", line 12, in load': True,
                'File "/usr/lib/python3.11/site-packages/requests/api.py", line 73, in get': False,
            },
        ),
        (
            GO_PANIC,
            {
                "/srv/app/main.go:21 +0x1d": True,
                "/usr/local/go/src/runtime/asm_amd64.s:1650 +0x1": False,
            },
        ),
    ],
    ids=["node", "python-chained", "go"],
)
def test_the_settled_event_says_which_stack_lines_are_app_frames_as_the_parser_saw_them(
    outbox: Outbox, tmp_path: Path, text: str, expected: dict[str, bool]
) -> None:
    from agent.parse import parse_lines
    from agent.wire import decode, with_seq

    [record] = parse_lines(text.splitlines())
    outbox.ingest([Occurrence(service="PA", fingerprint="c" * 16, record=record)], now=T0)
    [event] = outbox.settle(replace(DET, min_severity="low"), now=T0 + 30)
    assert len(event.in_app) == len(event.stack)
    assert _frames_shown(event.stack, event.in_app) == expected
    reader = OutboxReader(tmp_path / "state" / "agent.db")
    [(seq, payload)] = list(reader.events_after(0))
    reader.close()
    assert decode(with_seq(payload, seq)).in_app == event.in_app


def test_a_group_stored_by_an_agent_without_in_app_still_settles(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agent.db"
    Outbox.open(path, "prod-1").close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE g AS SELECT * FROM groups; DROP TABLE groups;"
        "CREATE TABLE groups (service TEXT NOT NULL, fingerprint TEXT NOT NULL,"
        " error_type TEXT NOT NULL, message TEXT NOT NULL, stack TEXT NOT NULL, route TEXT,"
        " count INTEGER NOT NULL, pending INTEGER NOT NULL, first_seen TEXT NOT NULL,"
        " last_seen TEXT NOT NULL, pending_since REAL, last_arrival REAL NOT NULL,"
        " relayed INTEGER NOT NULL DEFAULT 0, severity TEXT NOT NULL DEFAULT 'low',"
        " PRIMARY KEY (service, fingerprint)); DROP TABLE g;"
        "INSERT INTO groups VALUES ('PA', 'dddddddddddddddd', 'Error', 'old', '[\"at f\"]',"
        f" NULL, 5, 5, 't', 't', {T0}, {T0}, 0, 'low');"
    )
    conn.close()
    box = Outbox.open(path, "prod-1")
    try:
        [event] = box.settle(replace(DET, min_severity="low"), now=T0 + 30)
    finally:
        box.close()
    assert event.message == "old" and event.in_app == []
