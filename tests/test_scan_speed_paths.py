"""The fast paths of the parser and of scan give exactly what the plain ways give.

The candidate finder has two ways of looking at a buffer (lines that are not quiet, or
every needle) and scan cuts large files into parts read by forked processes. Each is
checked against a straightforward reference on inputs built to hit their edges: needles
in quiet lines, crash excerpts, frames after a header without "error", property blocks
and records that straddle the places where a file is cut.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import scan
from agent.config import DetectionConfig
from agent.parse import Assembler, parse_lines, prefilter, settled_line_start
from agent.scan import Scanner

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
from gen_log import generate


def _plain_finder(buf: bytes, pos: int) -> int:
    """The candidate finder's rule applied line by line, no shortcuts.

    A line is a candidate when it is not quiet and holds a line needle, or the line after it
    holds a frame needle; one holding a line needle may back up to a crash excerpt above
    it, but never above a line holding a needle that was passed over.
    """
    folded = buf.translate(prefilter.FOLD)
    starts = [0] + [m.end() for m in re.finditer(rb"\n", buf)]
    lines = [(s, (buf.find(b"\n", s) + 1 or len(buf) + 1) - 1) for s in starts if s < len(buf)]
    bound = pos
    for i, (start, end) in enumerate(lines):
        if start < pos:
            continue
        text = folded[start:end]
        holds_line = any(n in text for n in prefilter.LINE_NEEDLES)
        after = folded[lines[i + 1][0] : lines[i + 1][1]] if i + 1 < len(lines) else b""
        next_frame = any(n in after for n in prefilter.FRAME_NEEDLES)
        if not prefilter.QUIET_LINE.match(buf, start) and (holds_line or next_frame):
            if not holds_line or start == pos:
                return start
            previous = buf.rfind(b"\n", bound, start - 1) + 1 or bound
            if prefilter.EXCERPT_BYTES.fullmatch(buf, previous, start - 1):
                return previous
            return _plain_excerpt_start(buf, bound, start)
        if any(n in text for n in prefilter.NEEDLES):
            bound = end + 1
    return -1


def _plain_excerpt_start(buf: bytes, pos: int, start: int) -> int:
    lines: list[tuple[int, int]] = []
    end = start - 1
    while end >= pos and len(lines) < 4:
        begin = buf.rfind(b"\n", pos, end) + 1 or pos
        lines.append((begin, end))
        end = begin - 1
    if lines and lines[0][0] == lines[0][1]:
        lines = lines[1:]
    if len(lines) < 3 or not prefilter.CARET_BYTES.fullmatch(buf, *lines[0]):
        return start
    begin, end = lines[2]
    return begin if prefilter.EXCERPT_BYTES.fullmatch(buf, begin, end) else start


_PIECES = [
    b"\n",
    b"\n",
    b"\n",
    b"    at f (/srv/a.js:1:2)",
    b"    at native",
    b"NotFound: gone",
    b"TypeError: x",
    b"ERROR boom",
    b"eRRoR",
    b"Exception",
    b"panic: p",
    b"PATEL",
    b"emerg",
    b"crit",
    b"Traceback (most recent call last):",
    b'{"level":30,"msg":"error"}',
    b'{"level":50,"msg":"x"}',
    b'{"name":"a","level":"info","msg":"errors"}',
    b'{"level":60}',
    b"2026-01-02T03:04:05.678Z INFO errors=0",
    b"2026-01-02 03:04:05,1 [warn] error",
    b"[2026-01-02T03:04:05Z] debug: crit",
    b"INFO: fatal",
    b"info",
    b"/srv/app.js:42",
    b"/srv/app.ts:7",
    b"throw new Error('x')",
    b"    ^",
    b"^^^",
    b"",
    b"  ",
    b"js:",
    b"x",
    b"\x00",
    b"vjbfpx",
    b"error",
    b"\r",
    b"{",
]


def _random_log(rng: random.Random, pieces: int) -> bytes:
    return b"".join(rng.choice(_PIECES) for _ in range(pieces))


_LINES = [
    b"/srv/app.js:42",
    b"node:internal/x:3",
    b"throw new Error('x')",
    b"INFO: error seen",
    b"    ^",
    b"",
    b"Error: boom",
    b"Oops: no error word",
    b"    at f (/srv/a.js:1:2)",
    b'{"level":30,"msg":"fatal"}',
]


def _random_lines(rng: random.Random, count: int) -> bytes:
    return b"\n".join(rng.choice(_LINES) for _ in range(count)) + rng.choice([b"", b"\n"])


def _line_starts(buf: bytes) -> list[int]:
    return [0] + [m.end() for m in re.finditer(rb"\n", buf)]


def test_needle_hits_are_every_occurrence_of_every_folded_needle() -> None:
    rng = random.Random(7)
    alphabet = b'errorEXCEPTIONfatalpanicalertemergtracebackcrit"level":56js:\n    at xfbvjRr\x00'
    for _ in range(1500):
        buf = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 160)))
        folded = buf.translate(prefilter.FOLD)
        expected = sorted(
            {
                m.start()
                for n in prefilter.NEEDLES
                for m in re.finditer(b"(?=" + re.escape(n) + b")", folded)
            }
        )
        assert prefilter.needle_hits(buf) == expected, buf


def test_not_quiet_regex_answers_exactly_what_the_quiet_line_pattern_answers() -> None:
    rng = random.Random(11)
    parts = [
        b"2026-01-02T03:04:05",
        b"2026-01-02 03:04:05",
        b".123",
        b",1234567891",
        b"Z",
        b"+01:00",
        b"-0130",
        b"UTC",
        b" ",
        b"[",
        b"]",
        b":",
        b"INFO",
        b"info",
        b"Warning",
        b"warn",
        b"http",
        b"error",
        b"\t",
        b"\r",
        b'{"level":30,',
        b'{"name":"a","pid":1,"level":"info"}',
        b'{"time":"x\\"y","level":45}',
        b'"level":',
        b"{",
        b"x",
        b"level=",
        b"lvl=",
        b"severity=",
        b"time=",
        b"ts=",
        b'"',
        b"debug",
        # Whole and broken shapes of the ones tried first (pino's, and Date.toISOString()).
        b"2026-01-02T03:04:05.123Z INFO ",
        b"2026-01-02T03:04:05.123Z WARN",
        b"2026-01-02T03:04:05.12Z DEBUG ",
        b"DEBUG",
        b'{"level":3',
        b'{"level":40}',
    ]
    for _ in range(20000):
        line = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 6)))
        quiet = prefilter.QUIET_LINE.match(line + b"\n") is not None
        loud = prefilter.NOT_QUIET_NEXT.match(b"\n" + line + b"\n") is not None
        assert quiet != loud, line


_QUIET_PARTS = [
    "2026-01-02T03:04:05.123Z ",
    "[2026-01-02 03:04:05] ",
    "INFO ",
    "warn: ",
    "level=info ",
    'level="debug" ',
    "time=2026-01-02T03:04:05Z ",
    "ts=1767323045 ",
    "lvl=warn ",
    "error ",
    "Error: boom ",
    "level=error ",
    "TypeError: x ",
    "fatal ",
    "severity=error ",
    "exception ",
    '{"level":50} ',
]
_FRAMES = ["    at f (/srv/app.js:1:2)", "    at g (/srv/app.js:3:4)"]


def _assert_quiet_means_no_record(line: str) -> None:
    if prefilter.QUIET_LINE.match(line.encode() + b"\n") is None:
        return
    assert parse_lines([line]) == []
    # Whatever follows, the quiet line itself is no part of a record.
    assert all(line not in r.raw for r in parse_lines([line, *_FRAMES]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_QUIET_PARTS), min_size=1, max_size=6), st.text(max_size=30))
def test_a_text_line_the_prefilter_calls_quiet_starts_no_record(
    parts: list[str], tail: str
) -> None:
    _assert_quiet_means_no_record(("".join(parts) + tail).replace("\n", " ").replace("\r", " "))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=70),
    st.sampled_from(["error", "fatal", "crit", "exception", "no error", "errors=0"]),
    st.booleans(),
)
def test_a_json_line_the_prefilter_calls_quiet_starts_no_record(
    level: int, msg: str, named: bool
) -> None:
    record: dict[str, object] = {"name": "shop"} if named else {}
    record |= {"level": level, "time": 1767323045000, "msg": msg, "err": {"stack": "Error: x"}}
    _assert_quiet_means_no_record(json.dumps(record, separators=(",", ":")))


@pytest.mark.parametrize("mode", ["loud lines", "needles"])
def test_both_ways_of_finding_candidates_agree_with_a_plain_search(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode == "needles":
        monkeypatch.setattr(prefilter, "loud_lines", lambda buf: None)
    rng = random.Random(3)
    for i in range(800):
        buf = _random_log(rng, rng.randint(1, 60)) if i % 2 else _random_lines(rng, 12)
        finder = prefilter.CandidateFinder()
        for pos in _line_starts(buf):
            assert finder(buf, pos) == _plain_finder(buf, pos), (buf, pos)


def test_excerpt_back_up_matches_the_plain_one_for_every_line_pair() -> None:
    rng = random.Random(5)
    for _ in range(600):
        buf = _random_lines(rng, rng.randint(1, 12))
        starts = _line_starts(buf)
        for i, pos in enumerate(starts):
            for start in starts[i:]:
                expected = _plain_excerpt_start(buf, pos, start)
                assert prefilter.CandidateFinder._excerpt_start(buf, pos, start) == expected


def test_a_quiet_line_holding_a_needle_limits_how_far_an_excerpt_is_backed_up_to() -> None:
    buf = b"/srv/app.ts:10\nINFO: error seen\n^\n\nError: boom\n"
    header = buf.index(b"Error: boom")
    finder = prefilter.CandidateFinder()
    assert finder(buf, 0) == header == _plain_finder(buf, 0)
    clean = b"/srv/app.ts:10\nthrow x\n^\n\nError: boom\n"
    assert prefilter.CandidateFinder()(clean, 0) == 0 == _plain_finder(clean, 0)


def test_busy_logs_switch_to_the_needle_search_and_still_find_every_record() -> None:
    # Every line is loud (no level word), so the line way gives up and needles are searched.
    lines = [f"request {i} handled in {i % 7} ms" for i in range(5000)]
    lines[2500:2500] = ["NotFound: user 7", "    at load (/srv/app.js:3:9)"]
    data = ("\n".join(lines) + "\n").encode()
    assert prefilter.loud_lines(data) is None
    records = Assembler().feed(data, 0)
    assert [(r.error_type, r.message) for r in records] == [("NotFound", "user 7")]


def test_settled_line_start_follows_two_quiet_lines() -> None:
    buf = b"TypeError: x\n    at f (/a.js:1:1)\nINFO a\nINFO b\nnext\n"
    assert settled_line_start(buf, 0) == buf.index(b"next")
    assert settled_line_start(b"INFO a\nERROR b\nINFO c\n", 0) == -1


# --- scan in parts -----------------------------------------------------------------------


def _groups(scanner: Scanner) -> list[dict[str, object]]:
    return scanner.results()


def _scan_in_one_go(path: Path, settle: float = 30.0) -> list[dict[str, object]]:
    scanner = Scanner(DetectionConfig(settle_seconds=settle))
    with path.open("rb") as fh:
        scanner.scan_stream(fh, "svc", "2026-01-01T00:00:00.000Z")
    return _groups(scanner)


def _scan_in_parts(path: Path, settle: float = 30.0) -> list[dict[str, object]]:
    scanner = Scanner(DetectionConfig(settle_seconds=settle))
    with path.open("rb") as fh:
        parts = scanner._part_count(os.fstat(fh.fileno()))
        assert parts > 1
        merged = scanner._read_parallel(
            fh, "svc", "2026-01-01T00:00:00.000Z", path.stat().st_size, parts
        )
        scanner._merge("svc", merged)
    return _groups(scanner)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 64 << 10)
    monkeypatch.setattr(scan, "_PART_MIN_BYTES", 16 << 10)
    monkeypatch.setattr(scan, "_usable_cpus", lambda: 4)


def test_scan_in_parts_counts_exactly_what_one_reader_counts(
    tmp_path: Path, small_parts: None
) -> None:
    log = tmp_path / "mixed.log"
    generate(log, 1.5, error_ratio=0.03, seed=5)
    expected = _scan_in_one_go(log)
    assert sum(g["count"] for g in expected) > 100  # type: ignore[misc]
    assert _scan_in_parts(log) == expected
    for settle in (0.0, 0.05, 3600.0):
        assert _scan_in_parts(log, settle) == _scan_in_one_go(log, settle)


def test_each_part_of_a_mixed_log_ends_at_its_cut_without_reading_on(
    tmp_path: Path, small_parts: None
) -> None:
    log = tmp_path / "mixed.log"
    generate(log, 1.0, error_ratio=0.03, seed=2)
    scanner = Scanner()
    with log.open("rb") as fh:
        size = log.stat().st_size
        parts = scanner._read_parallel(fh, "svc", "2026-01-01T00:00:00.000Z", size, 4)
    assert len(parts) == 4
    assert [p.at_eof for p in parts] == [False, False, False, True]
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))


def test_a_part_stopped_after_quiet_lines_is_idle_but_not_after_a_header(
    tmp_path: Path,
) -> None:
    head = b"2026-01-01T00:00:00.000Z INFO a\n2026-01-01T00:00:00.000Z INFO b\n"
    for tail, idle in ((b"", True), (b"NotFound: gone\n", False)):
        log = tmp_path / "cut.log"
        log.write_bytes(head + tail + b"    at f (/srv/a.js:1:2)\n")
        with log.open("rb") as fh:
            part = Scanner()._read_part(
                scan._Positional(fh.fileno(), 0), "svc", "x", 0, len(head + tail)
            )
        assert part.at_eof is not idle
        assert sum(g.count for g in part.groups.values()) == (0 if idle else 1)


def test_scan_in_parts_counts_every_line_once(tmp_path: Path, small_parts: None) -> None:
    log = tmp_path / "mixed.log"
    generate(log, 1.0, error_ratio=0.03, seed=4)
    with log.open("ab") as fh:
        fh.write(b"a last line without its newline")
    data = log.read_bytes()
    scanner = Scanner()
    scanner.scan_path(str(log), "svc")
    assert scanner._part_count(log.stat()) > 1
    assert (scanner.files, scanner.lines) == (1, data.count(b"\n") + 1)


def test_a_cut_inside_a_record_makes_the_part_before_read_on_to_the_end(
    tmp_path: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One long property block runs over every planned cut, so no part ends idle.
    props = "\n".join(f"  key{i}: 'value {i}'," for i in range(380))
    text = "".join(
        f"2026-01-01T00:00:{i % 60:02d}.000Z INFO request {i} done\n" for i in range(900)
    )
    text += "TypeError: boom\n    at f (/srv/a.js:1:2) {\n" + props + "\n}\n"
    text = text * 8
    log = tmp_path / "props.log"
    log.write_text(text)
    monkeypatch.setattr(scan, "settled_line_start", lambda buf, pos: buf.find(b"  key200"))
    assert _scan_in_parts(log) == _scan_in_one_go(log)


def test_a_failing_child_has_its_part_read_by_the_parent(
    tmp_path: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "mixed.log"
    generate(log, 0.5, error_ratio=0.05, seed=9)
    parent = os.getpid()
    real_read = scan._Positional.read

    def read_only_in_parent(self: scan._Positional, size: int) -> bytes:
        if os.getpid() != parent:
            raise OSError("child cannot read")
        return real_read(self, size)

    monkeypatch.setattr(scan._Positional, "read", read_only_in_parent)
    assert _scan_in_parts(log) == _scan_in_one_go(log)


def test_bursts_that_span_a_cut_are_counted_once(tmp_path: Path, small_parts: None) -> None:
    lines = []
    for i in range(6000):
        lines.append(f"2026-01-01T00:{i // 600:02d}:{i // 10 % 60:02d}.000Z INFO tick {i}")
        if i % 10 == 0:
            lines.append(f"2026-01-01T00:{i // 600:02d}:{i // 10 % 60:02d}.500Z ERROR db down")
    log = tmp_path / "bursts.log"
    log.write_text("\n".join(lines) + "\n")
    (group,) = _scan_in_parts(log, settle=5.0)
    assert (group["count"], group["bursts"]) == (600, 1)
    assert _scan_in_parts(log, settle=0.5) == _scan_in_one_go(log, settle=0.5)


def test_scan_stream_of_a_pipe_is_read_in_one_go() -> None:
    scanner = Scanner()
    data = b"TypeError: x\n    at f (/srv/a.js:1:2)\n" * 3
    scanner.scan_stream(io.BytesIO(data), "svc", "2026-01-01T00:00:00.000Z")
    (group,) = scanner.results()
    assert group["count"] == 3


def test_repeated_records_are_redacted_every_time_they_are_reported() -> None:
    scanner = Scanner()
    record = b"Error: login failed password=hunter2secret\n    at f (/srv/a.js:1:2)\n"
    other_route = (
        b"ERROR GET /x Error: login failed password=hunter2secret\n    at f (/srv/a.js:1:2)\n"
    )
    data = record * 3 + other_route * 2
    scanner.scan_stream(io.BytesIO(data), "svc", "2026-01-01T00:00:00.000Z")
    groups = scanner.results()
    assert sum(g["count"] for g in groups) == 5  # type: ignore[misc]
    text = str(groups)
    assert "hunter2secret" not in text
    assert "password=[REDACTED]" in text
