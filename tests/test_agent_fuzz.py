"""No input stops the agent: random bytes, random JSON and random write splits at every
boundary where outside data enters (the parser, the record, every encoder), through
`scan` and through `run` + `stream`."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.guard import GuardedAssembler
from agent.outbox import Outbox
from agent.record import ErrorRecord, Frame
from agent.sanitize import (
    _UNSAFE,
    MAX_MESSAGE_CHARS,
    MAX_STACK_CHARS,
    _unsafe,
    clean_record,
    dumps,
)
from agent.scan import Scanner
from agent.wire import MAX_LINE_BYTES, ErrorEvent, decode, encode
from tests.agent_process import AGENT, Agent, group_counts, wait_for, write_config

# Any code point, lone surrogates and NUL included (hypothesis leaves surrogates out unless
# asked).
ANY_CHAR = st.characters(codec=None, blacklist_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=60)
HUGE_INT = st.integers(min_value=-(10**400), max_value=10**400)
JSON_SCALAR = (
    st.none()
    | st.booleans()
    | HUGE_INT
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)
LEVELS = st.sampled_from([50, 60, "error", "fatal", 30, "info", None])
FIELDS = st.sampled_from(["msg", "message", "err", "error", "stack", "req", "time", "level"])


@st.composite
def json_log_lines(draw: st.DrawFn) -> bytes:
    """One JSON log line as a logger might write it, with random values in the fields the
    parser reads. ``ensure_ascii`` writes a lone surrogate as a ``\\ud8xx`` escape, as
    JSON.stringify does; non-finite floats and huge integers come out as ``Infinity`` and
    400-digit literals."""
    obj: dict[str, object] = {}
    level = draw(LEVELS)
    if level is not None:
        obj["level"] = level
    for name in draw(st.lists(FIELDS, max_size=5)):
        obj[name] = draw(JSON_VALUE)
    if draw(st.booleans()):
        obj["err"] = {
            "type": draw(ANY_TEXT),
            "message": draw(ANY_TEXT),
            "stack": draw(ANY_TEXT) + "\n    at " + draw(ANY_TEXT) + " (/app/" + draw(ANY_TEXT),
        }
    if draw(st.booleans()):
        obj["req"] = {"method": draw(ANY_TEXT), "url": "/" + draw(ANY_TEXT)}
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass") + b"\n"


INPUT_LINES = (
    st.binary(max_size=200)
    | json_log_lines()
    | st.sampled_from(
        [
            b'{"level":50,"time":1795428000000,"msg":"comment rejected: \\ud83d"}\n',
            b'{"level":50,"msg":"nul \\u0000 in it","n":1e400}\n',
            b'{"level":50,"time":1' + b"0" * 400 + b',"msg":"huge time"}\n',
            b'{"level":50,"msg":"' + b"9" * 5000 + b'"}\n',
            b"[" * 100_000 + b"\n",
            b'{"level":50,"msg":' + b"[" * 100_000 + b"\n",
            b"Error: nul \x00 byte\n    at f (/app/\x00.js:1:1)\n",
        ]
    )
)


def _trace(name: str) -> bytes:
    return f"TypeError: {name} failed\n    at {name} (/srv/pa/src/{name}.js:1:1)\n\n".encode()


def _scan(data: bytes) -> Scanner:
    scanner = Scanner()
    scanner.scan_stream(io.BytesIO(data), "PA", "2026-11-01T00:00:00.000Z")
    return scanner


def _assert_encodable(result: dict[str, object]) -> None:
    line = dumps(result).encode("utf-8")
    assert json.loads(line) is not None
    assert b"\x00" not in line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(INPUT_LINES, max_size=6))
def test_scan_reports_the_errors_around_any_input(lines: list[bytes]) -> None:
    data = _trace("before") + b"".join(lines) + b"\n\n" + _trace("after")
    scanner = _scan(data)
    results = scanner.results()
    for result in results:
        _assert_encodable(result)
    messages = {r["message"] for r in results}
    assert "after failed" in messages
    assert "before failed" in messages or any("before failed" in str(r) for r in results)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_scan_survives_random_bytes(data: bytes) -> None:
    for result in _scan(data + b"\n" + _trace("tail")).results():
        _assert_encodable(result)


def _read_in_pieces(data: bytes, points: list[int]) -> tuple[list[ErrorRecord], int]:
    guard = GuardedAssembler(65536)
    records: list[ErrorRecord] = []
    for start, end in itertools.pairwise(points):
        records += guard.feed(data[start:end], start)
    return records + guard.flush(eof=True), guard.safe_offset


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(INPUT_LINES, min_size=1, max_size=5), cuts=st.lists(st.integers(0, 10**6)))
def test_a_record_split_across_writes_is_read_whatever_came_before(
    lines: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(lines) + b"\n\n" + _trace("whole") + b"\n\n"
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    records, safe = _read_in_pieces(data, points)
    assert ("TypeError", "whole failed") in [(r.error_type, r.message) for r in records]
    assert safe == len(data)


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(st.sampled_from(["alpha", "beta", "gamma"]), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 10**6)),
)
def test_records_split_anywhere_across_writes_read_as_in_one_piece(
    records: list[str], cuts: list[int]
) -> None:
    data = b"INFO ok\n".join(_trace(name) for name in records)
    whole, _ = _read_in_pieces(data, [0, len(data)])
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    split, _ = _read_in_pieces(data, points)
    assert [(r.error_type, r.message, r.stack) for r in split] == [
        (r.error_type, r.message, r.stack) for r in whole
    ]
    assert [r.message for r in whole] == [f"{name} failed" for name in records]


def test_a_header_and_its_frame_in_two_writes_read_as_in_one() -> None:
    data = b'{"lvl":50}\n    at \n\n' + _trace("whole") + b"\n\n"
    whole, _ = _read_in_pieces(data, [0, len(data)])
    split, _ = _read_in_pieces(data, [0, 11, len(data)])
    assert [(r.error_type, r.message) for r in split] == [(r.error_type, r.message) for r in whole]


def test_a_parser_failure_costs_only_the_line_it_failed_on() -> None:
    # A time stamp of 10**400 ms once made the parser itself raise; whatever such a line
    # does to the parser, the lines around it are still read and the offset moves on.
    bad = b'{"level":50,"time":1' + b"0" * 400 + b',"msg":"huge time"}\n'
    data = _trace("one") + bad + _trace("two")
    guard = GuardedAssembler(65536)
    records = guard.feed(data, 100) + guard.flush(eof=True)
    assert {"one failed", "two failed"} <= {r.message for r in records}
    assert guard.safe_offset == 100 + len(data)
    assert all(s.offset >= 100 for s in guard.take_skipped())


def test_a_json_error_with_an_impossible_time_is_read_without_its_time() -> None:
    bad = b'{"level":50,"time":1' + b"0" * 400 + b',"msg":"huge time"}\n'
    guard = GuardedAssembler(65536)
    [record] = guard.feed(bad, 0) + guard.flush(eof=True)
    assert record.message == "huge time" and record.timestamp is None
    assert guard.take_skipped() == []


def test_a_json_error_holding_a_number_of_thousands_of_digits_is_still_read() -> None:
    line = b'{"level":50,"attempts":' + b"9" * 5000 + b',"msg":"too many retries"}\n'
    guard = GuardedAssembler(65536)
    [record] = guard.feed(line, 0) + guard.flush(eof=True)
    assert record.message == "too many retries"


FRAMES = st.builds(
    Frame,
    function=ANY_TEXT,
    path=ANY_TEXT,
    line=st.none() | HUGE_INT,
    column=st.none() | st.integers(),
    in_app=st.booleans(),
)
RECORDS = st.builds(
    ErrorRecord,
    error_type=st.text(ANY_CHAR, max_size=400),
    message=st.text(ANY_CHAR, max_size=300) | st.just("m" * (MAX_MESSAGE_CHARS + 5)),
    stack=st.lists(ANY_TEXT, max_size=5) | st.just(["    at x (/a.js:1:1)" * 500] * 20),
    frames=st.lists(FRAMES, max_size=3),
    route=st.none() | ANY_TEXT,
    timestamp=st.none() | ANY_TEXT,
    raw=ANY_TEXT,
)


@settings(max_examples=300, deadline=None)
@given(record=RECORDS)
def test_a_cleaned_record_is_safe_to_store_and_send(record: ErrorRecord) -> None:
    clean = clean_record(record)
    texts = [clean.error_type, clean.message, clean.raw, *clean.stack]
    texts += [clean.route or "", clean.timestamp or ""]
    texts += [t for f in clean.frames for t in (f.function, f.path)]
    for text in texts:
        text.encode("utf-8")
        assert "\x00" not in text
    assert len(clean.message) <= MAX_MESSAGE_CHARS
    assert sum(len(line) for line in clean.stack) <= MAX_STACK_CHARS
    assert clean_record(clean) is clean
    event = ErrorEvent(
        type="error",
        seq=1,
        host="h",
        service="PA",
        fingerprint="0" * 16,
        count=1,
        severity="low",
        message=clean.message,
        error_type=clean.error_type,
        stack=clean.stack,
        route=clean.route,
        first_seen="x",
        last_seen="x",
    )
    line = encode(event).encode("utf-8")
    assert len(line) <= MAX_LINE_BYTES
    assert decode(line) == event


@settings(max_examples=200, deadline=None)
@given(first=FRAMES, second=FRAMES)
def test_a_frame_seen_clean_before_vouches_for_no_other_frame(first: Frame, second: Frame) -> None:
    # The clean check remembers frames it passed, by identity: the parser reuses them.
    seen = ErrorRecord(error_type="E", message="m", frames=[first])
    both = ErrorRecord(error_type="E", message="m", frames=[first, second])
    clean_record(seen)
    clean = clean_record(both)
    assert clean_record(clean) is clean
    for frame in clean.frames:
        for text in (frame.function, frame.path):
            text.encode("utf-8")
            assert "\x00" not in text
    alone = [
        clean_record(ErrorRecord(error_type="E", message="m", frames=[f])) for f in both.frames
    ]
    each_clean = all(record.frames[0] is f for record, f in zip(alone, both.frames, strict=True))
    assert (clean is both) == each_clean


@settings(max_examples=500, deadline=None)
@given(text=st.text(ANY_CHAR, max_size=40) | st.text(st.characters(max_codepoint=127)))
def test_the_fast_unsafe_check_answers_what_the_character_class_answers(text: str) -> None:
    assert _unsafe(text) == (_UNSAFE.search(text) is not None)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUE)
def test_dumps_writes_any_value_as_standard_json_that_encodes(value: object) -> None:
    text = dumps(value)
    parsed = json.loads(text.encode("utf-8"), parse_constant=_no_constants)
    assert parsed is not None or value is None


def _no_constants(name: str) -> object:
    raise AssertionError(f"{name} is not standard JSON")


def test_dumps_writes_deep_nesting_without_recursing_forever() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert json.loads(dumps({"v": deep}))["v"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=RECORDS)
def test_the_outbox_stores_any_record_that_was_cleaned(record: ErrorRecord) -> None:
    from agent.occurrence import Occurrence

    with tempfile.TemporaryDirectory() as tmp:
        box = Outbox.open(Path(tmp) / "agent.db", "h")
        try:
            occ = Occurrence(service="PA", fingerprint="f" * 16, record=clean_record(record))
            assert box.ingest([occ]) == []
            assert box.groups()[0].message == occ.record.message
        finally:
            box.close()


def test_scan_exits_0_on_a_file_of_every_kind_of_bad_input(tmp_path: Path) -> None:
    log = tmp_path / "pa.log"
    bad = [
        b'{"level":50,"time":1795428000000,"msg":"comment rejected: \\ud83d"}\n',
        b'{"level":50,"msg":"x","req":{"method":"GET","url":"/a\\udc00"}}\n',
        b'{"level":50,"msg":"nul \\u0000","n":1e400,"m":1' + b"0" * 400 + b"}\n",
        b'{"level":50,"time":1' + b"0" * 400 + b',"msg":"huge time"}\n',
        b"[" * 100_000 + b"\n",
        os.urandom(5000).replace(b"\n", b"") + b"\n",
        b"Error: nul \x00 byte\n    at f (/app/\x00.js:1:1)\n\n",
    ]
    log.write_bytes(_trace("before") + b"".join(bad) + _trace("after"))
    proc = subprocess.run([*AGENT, "scan", str(log)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    messages = {r["message"] for r in results}
    assert {"before failed", "after failed", "comment rejected: \ufffd", "nul \ufffd"} <= messages
    assert b"Traceback" not in proc.stderr


# --- run + stream ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_agent(tmp_path_factory: pytest.TempPathFactory):
    """One `autofix-agent run` for all examples: each example only appends."""
    tmp = tmp_path_factory.mktemp("fuzz-agent")
    logs = tmp / "logs"
    logs.mkdir()
    config = write_config(tmp, logs)
    agent = Agent(config, tmp / "agent.err")
    agent.start()
    yield agent, logs, tmp / "state" / "agent.db"
    agent.stop()


_names = iter(f"sentinel{a}{b}{c}" for a in "abcdefgh" for b in "abcdefgh" for c in "abcdefgh")


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(INPUT_LINES, min_size=1, max_size=4),
    target=st.sampled_from(["a.log", "b.log"]),
    cut=st.integers(0, 10**6),
)
def test_run_keeps_relaying_from_every_file_after_any_input(
    live_agent, lines: list[bytes], target: str, cut: int
) -> None:
    agent, logs, db = live_agent
    bad = b"".join(lines) + b"\n\n"
    mine, other = next(_names), next(_names)
    data = bad + _trace(mine)
    split = cut % (len(data) + 1)
    with (logs / target).open("ab") as fh:
        fh.write(data[:split])
        fh.flush()
        fh.write(data[split:])
    with (logs / ("b.log" if target == "a.log" else "a.log")).open("ab") as fh:
        fh.write(_trace(other))
    wait_for(
        lambda: db.exists() and {mine, other} <= set(group_counts(db)),
        30,
        f"{mine}/{other} never counted; agent said: {agent.said()[-2000:]}",
    )
    assert agent.alive()


def test_run_resumes_after_bad_input_across_a_restart(live_agent) -> None:
    agent, logs, db = live_agent
    with (logs / "a.log").open("ab") as fh:
        fh.write(b'{"level":50,"time":1' + b"0" * 400 + b',"msg":"huge time"}\n')
        fh.write(b'{"level":50,"msg":"comment rejected: \\ud83d"}\n' + b"[" * 100_000 + b"\n\n")
    name = next(_names)
    with (logs / "a.log").open("ab") as fh:
        fh.write(_trace(name))
    wait_for(lambda: name in group_counts(db), 30, agent.said()[-2000:])
    before = group_counts(db)
    agent.stop()
    agent.start()
    after_restart = next(_names)
    with (logs / "b.log").open("ab") as fh:
        fh.write(_trace(after_restart))
    wait_for(lambda: after_restart in group_counts(db), 30, agent.said()[-2000:])
    counts = group_counts(db)
    assert all(counts[k] == v for k, v in before.items()), "a restart counted something twice"
    assert all(v == 1 for k, v in counts.items() if k.startswith("sentinel"))
    assert "Traceback" not in agent.said()
