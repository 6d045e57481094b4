"""Envelopes: what Docker, CRI, PM2 and journald wrap around a program's lines is removed
before any line logic, so a stack carried by any of them is the record it would be bare.

The program output is real (node prints the errors); the envelopes are encoded the way
those runtimes write them (see each helper).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.parse import Assembler, ErrorRecord
from tests.conftest import feed_in_chunks, require_tool, run_node_script

FAULTS = """
class NotFound extends Error { constructor(m) { super(m); this.name = 'NotFound'; } }
function load(id) { throw new NotFound('order ' + id + ' is gone'); }
for (let i = 0; i < 3; i++) {
  console.log('INFO request ' + i + ' done, 0 errors');
  try { load(100 + i); } catch (e) { console.error(e); }
}
try { null.tenantId; } catch (e) { console.error('ERROR GET /api/tenants', e); }
"""


@pytest.fixture(scope="module")
def program_lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    require_tool("node")
    output = run_node_script(tmp_path_factory.mktemp("node"), FAULTS, name="faults.js")
    return output.splitlines()


def _kinds(records: list[ErrorRecord]) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (r.error_type, r.message, r.route, r.frames[0].function if r.frames else None)
        for r in records
    ]


def _go_string(text: str) -> str:
    """A string as moby's json-file writer escapes it (HTML-safe, like Go's encoder)."""
    out = json.dumps(text, ensure_ascii=False)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _pieces(lines: list[str], split_at: int | None) -> list[tuple[int, str, bool]]:
    """(line number, piece, is the last piece) with lines cut every ``split_at`` chars."""
    out = []
    for i, line in enumerate(lines):
        size = split_at or len(line) or 1
        pieces = [line[j : j + size] for j in range(0, len(line), size)] or [""]
        out += [(i, piece, k == len(pieces) - 1) for k, piece in enumerate(pieces)]
    return out


def docker(lines: list[str], stream: str = "stderr", split_at: int | None = None) -> bytes:
    """Docker json-file: one object per line; ``split_at`` cuts long lines into partials."""
    out = []
    for i, piece, last in _pieces(lines, split_at):
        stamp = f"2026-11-30T10:00:{i % 60:02d}.123456789Z"
        log = piece + ("\n" if last else "")
        out.append(f'{{"log":{_go_string(log)},"stream":"{stream}","time":"{stamp}"}}')
    return ("\n".join(out) + "\n").encode()


def cri(lines: list[str], split_at: int | None = None) -> bytes:
    """containerd's CRI log: ``time stream P|F text``."""
    out = []
    for i, piece, last in _pieces(lines, split_at):
        out.append(f"2026-11-30T10:00:{i % 60:02d}.5Z stderr {'F' if last else 'P'} {piece}")
    return ("\n".join(out) + "\n").encode()


def pm2_json(writes: list[str]) -> bytes:
    """PM2 --log-type json: one object per read of the app's pipe, which may hold many lines."""
    out = [
        json.dumps(
            {
                "message": write,
                "timestamp": "2026-11-30T10:00:00.000Z",
                "type": "err",
                "process_id": 0,
                "app_name": "shop",
            }
        )
        for write in writes
    ]
    return ("\n".join(out) + "\n").encode()


def journald_json(lines: list[str], as_bytes: bool = False) -> bytes:
    """journalctl -o json: MESSAGE as text, or as an array of byte values; compact, with
    the fields in no fixed order (as journalctl writes them)."""
    out = []
    for i, line in enumerate(lines):
        message: object = list(line.encode()) if as_bytes else line
        entry = {
            "_HOSTNAME": "shop-1",
            "MESSAGE": message,
            "__CURSOR": f"s=0123;i={i:x};b=0;m=0;t=0;x=0",
            "SYSLOG_IDENTIFIER": "node",
            "__REALTIME_TIMESTAMP": str(1796032800000000 + i * 1000),
        }
        out.append(json.dumps(entry, separators=(",", ":")))
    return ("\n".join(out) + "\n").encode()


def _bare(lines: list[str]) -> list[ErrorRecord]:
    return feed_in_chunks(("\n".join(lines) + "\n").encode(), [])


@pytest.mark.parametrize("carrier", ["docker", "cri", "pm2", "journald", "journald-bytes"])
def test_a_carried_log_gives_the_records_of_the_bare_log(
    carrier: str, program_lines: list[str]
) -> None:
    wrapped = {
        "docker": lambda: docker(program_lines),
        "cri": lambda: cri(program_lines),
        "pm2": lambda: pm2_json(["\n".join(program_lines) + "\n"]),
        "journald": lambda: journald_json(program_lines),
        "journald-bytes": lambda: journald_json(program_lines, as_bytes=True),
    }[carrier]()
    expected = _bare(program_lines)
    assert _kinds(expected) == [
        ("NotFound", "order 100 is gone", None, "load"),
        ("NotFound", "order 101 is gone", None, "load"),
        ("NotFound", "order 102 is gone", None, "load"),
        (
            "TypeError",
            "Cannot read properties of null (reading 'tenantId')",
            "GET /api/tenants",
            "Object.<anonymous>",
        ),
    ]
    records = feed_in_chunks(wrapped, [])
    assert _kinds(records) == _kinds(expected)
    assert [r.stack for r in records] == [r.stack for r in expected]
    assert all(r.timestamp and r.timestamp.startswith("2026-11-30T10:00:") for r in records)
    assert all('"log"' not in r.raw and "MESSAGE" not in r.raw for r in records)


def test_docker_frame_lines_reveal_a_header_without_an_error_word() -> None:
    lines = ["INFO tick"] * 500 + ["Timeout: upstream took 30s", "    at wait (/srv/a.js:3:9)"]
    records = feed_in_chunks(docker(lines), [])
    assert _kinds(records) == [("Timeout", "upstream took 30s", None, "wait")]


def test_pino_error_inside_docker_is_found_by_its_escaped_level() -> None:
    pino = '{"level":50,"time":1796032800000,"msg":"payment provider unreachable"}'
    lines = ['{"level":30,"msg":"ok"}'] * 300 + [pino]
    (record,) = feed_in_chunks(docker(lines, stream="stdout"), [])
    assert (record.message, record.timestamp) == (
        "payment provider unreachable",
        "2026-11-30T10:00:00.000Z",
    )


@pytest.mark.parametrize("wrap", [docker, cri])
def test_long_lines_split_into_partials_are_joined(wrap: object) -> None:
    long_message = "checkout failed for cart " + "x" * 40_000
    lines = ["INFO a", f"ERROR GET /api/cart TypeError: {long_message}", "    at f (/srv/a.js:1:2)"]
    data = wrap(lines, split_at=16 * 1024)  # type: ignore[operator]
    assert data.count(b"\n") > len(lines)
    (record,) = feed_in_chunks(data, [len(data) // 2])
    assert (record.error_type, record.message, record.route) == (
        "TypeError",
        long_message,
        "GET /api/cart",
    )
    assert record.frames[0].function == "f"


def test_a_pm2_message_holding_two_errors_is_counted_once_each_across_a_restart() -> None:
    first = "TypeError: a is not a function\n    at one (/srv/a.js:1:2)\n"
    second = "RangeError: too far\n    at two (/srv/b.js:3:4)\n"
    data = pm2_json([first + second, "plain output\n"])
    expected = feed_in_chunks(data, [])
    assert [r.error_type for r in expected] == ["TypeError", "RangeError"]
    # However the reader was cut off, resuming at its safe offset neither loses nor repeats.
    for cut in range(1, len(data)):
        reader = Assembler()
        committed = reader.feed(data[:cut], 0)
        offset = reader.safe_offset
        resumed = Assembler()
        rest = resumed.feed(data[offset:], offset) + resumed.flush(eof=True)
        assert committed + rest == expected, cut


def _compact(obj: dict[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def test_journald_entries_without_text_and_broken_envelopes_are_never_fatal() -> None:
    lines = [
        _compact({"__CURSOR": "s=1;i=1", "__REALTIME_TIMESTAMP": "1", "MESSAGE": None}),
        _compact({"__CURSOR": "s=1;i=2", "MESSAGE": [300, -1]}),
        _compact({"__CURSOR": "s=1;i=3", "__REALTIME_TIMESTAMP": "99999999999999999999"}),
        '{"log":"cut off',
        '{"log":42,"stream":"stderr"}',
        "2026-11-30T10:00:00Z stderr F",
        _compact({"log": "comment rejected: \ud83d\n", "time": "x"}),
        _compact({"__CURSOR": "s=1;i=4", "MESSAGE": "ERROR payment failed \udc00"}),
        _compact({"__CURSOR": "s=1;i=5", "MESSAGE": list(b"ERROR bad \xff byte")}),
    ]
    data = "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"
    records = feed_in_chunks(data, [])
    assert [r.message for r in records] == ["payment failed \ufffd", "bad \ufffd byte"]
    for record in records:
        record.raw.encode("utf-8")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), carrier=st.sampled_from(["docker", "cri", "journald"]))
def test_random_splits_of_carried_records_across_feeds_give_the_same_records(
    seed: int, carrier: str
) -> None:
    rng = random.Random(seed)
    sample = Path(__file__).resolve().parent.parent / "agent" / "samples" / "pa-error.log"
    lines = sample.read_text().splitlines()[:120]
    data = {"docker": docker, "cri": cri, "journald": journald_json}[carrier](lines)
    cuts = sorted(rng.randrange(1, len(data)) for _ in range(rng.randrange(1, 8)))
    assert feed_in_chunks(data, cuts) == feed_in_chunks(data, [])
