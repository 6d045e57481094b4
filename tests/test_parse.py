"""Assembler: real runtime output in, the right ErrorRecords out, with exact offsets.

Node.js formats come from running the sample service (tests/fixtures/node-service) or
small scripts with the real `node`; the Python traceback from the real `python3`. Java and
Go samples are files in tests/fixtures/logs (see the README there for their origin).
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from agent.parse import Assembler, ErrorRecord, parse_lines, parse_node_frame, strip_prefix
from agent.record import Frame
from tests.conftest import (
    FIXTURES,
    SERVICE_DIR,
    feed_in_chunks,
    node_env,
    require_node_modules,
    require_tool,
    run_node_script,
)

SERVICE = SERVICE_DIR
LOGS = FIXTURES / "logs"


def run_service(*args: str, log_dir: Path | None = None) -> str:
    """Run one scenario of the real service; return stdout+stderr as a log would hold them."""
    node = require_tool("node")
    require_node_modules()
    cmd = [node, str(SERVICE / "app.js"), *args]
    if log_dir is not None:
        cmd += ["--log-dir", str(log_dir)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=30, env=node_env(), cwd=SERVICE
    )
    return done.stdout + done.stderr


def records_of(text: str) -> list[ErrorRecord]:
    return parse_lines(text.splitlines())


# --- Node.js through console.error -------------------------------------------------------


def test_null_reference_from_console_error_carries_route_and_app_frames() -> None:
    (record,) = records_of(run_service("--once", "users", "--payload", "42"))
    assert record.error_type == "TypeError"
    assert record.message == "Cannot read properties of undefined (reading 'id')"
    assert record.route == "GET /api/users/42"
    top = record.frames[0]
    assert (top.function, Path(top.path).name, top.line, top.in_app) == (
        "getUserProfile",
        "users.js",
        16,
        True,
    )
    assert record.stack[0].startswith("TypeError: Cannot read properties")
    assert "INFO" not in record.raw


def test_error_line_on_its_own_then_the_stack_is_one_record() -> None:
    output = run_service("--once", "payments", "--console-style", "split")
    assert "\nERROR GET /api/payments\n" in output
    (record,) = records_of(output)
    assert (record.error_type, record.message) == ("Error", "STRIPE_SECRET_KEY is not set")
    assert record.route == "GET /api/payments"
    assert [f.function for f in record.frames[:2]] == ["loadStripeKey", "listPayments"]


def test_connection_refused_property_block_is_absorbed_into_the_record() -> None:
    output = run_service("--once", "inventory")
    assert "code: 'ECONNREFUSED'" in output
    (record,) = records_of(output)
    assert record.error_type == "Error"
    assert record.message.startswith("connect ECONNREFUSED 127.0.0.1:")
    assert record.route == "GET /api/inventory"
    assert any("code: 'ECONNREFUSED'" in line for line in record.stack)
    assert record.raw.rstrip().endswith("}")
    assert record.frames[0].path == "node:net" and not record.frames[0].in_app


def test_json_parse_errors_with_different_payloads_are_separate_records() -> None:
    output = run_service("--once", "products", "--payload", '{"ids": [1,')
    output += run_service("--once", "products", "--payload", "not json", "--repeat", "2")
    records = records_of(output)
    assert [r.error_type for r in records] == ["SyntaxError"] * 3
    assert records[0].message == "Unexpected end of JSON input"
    assert "is not valid JSON" in records[1].message
    assert records[1].frames[0].function == "JSON.parse"
    assert not records[1].frames[0].in_app
    assert records[1].frames[1].function == "parseProductList"


def test_uncaught_exception_crash_report_is_one_record_with_excerpt_and_footer() -> None:
    output = run_service("--once", "crash")
    assert "Node.js v" in output and "^" in output
    (record,) = records_of(output)
    assert record.error_type == "TypeError"
    assert record.message == "Cannot read properties of undefined (reading 'ttlSeconds')"
    assert record.raw.splitlines()[0].endswith("lib/crash.js:5")
    assert record.raw.splitlines()[-1].startswith("Node.js v")
    assert record.frames[0].function == "readCacheConfig"
    assert record.stack[0].startswith("TypeError:")


def test_unhandled_rejection_of_an_error_object() -> None:
    (record,) = records_of(run_service("--once", "reports", "--payload", "yearly"))
    assert (record.error_type, record.message) == ("RangeError", 'unknown report kind "yearly"')
    assert record.frames[0].function == "queryReportRows"
    assert "Node.js v" in record.raw


def test_unhandled_rejection_of_a_non_error_reason() -> None:
    output = run_service("--once", "reports-reason", "--payload", "oops")
    (record,) = records_of(output)
    assert record.error_type == "UnhandledPromiseRejection"
    assert 'reason "oops"' in record.message
    assert any("ERR_UNHANDLED_REJECTION" in line for line in record.stack)
    assert record.raw.splitlines()[0].startswith("node:internal/process/promises:")


def test_older_bracketed_unhandled_rejection_form() -> None:
    # The layout Node 15-18 print for a rejection with a non-Error reason.
    text = """node:internal/process/promises:288
            triggerUncaughtException(err, true /* fromPromise */);
            ^

[UnhandledPromiseRejection: This error originated either by throwing inside of an async \
function without a catch block, or by rejecting a promise which was not handled with \
.catch(). The promise rejected with the reason "oops".] {
  code: 'ERR_UNHANDLED_REJECTION'
}

Node.js v18.19.0"""
    (record,) = records_of(text)
    assert record.error_type == "UnhandledPromiseRejection"
    assert record.message.endswith('reason "oops".')
    assert record.raw.endswith("Node.js v18.19.0")


def test_frame_shapes_async_new_alias_anonymous_and_cause(tmp_path: Path) -> None:
    source = """const cause = new RangeError('pool empty');
class Repo { constructor() { throw new Error('repo down', { cause }); } }
const api = { load() { return new Repo(); } };
const alias = { get: api.load };
async function fetchRepo() { await null; return [1].map(() => alias.get())[0]; }
async function handler() { return await fetchRepo(); }
handler().catch((err) => { console.error('ERROR GET /api/things', err); });
"""
    output = run_node_script(tmp_path, source)
    assert "[cause]: RangeError: pool empty" in output
    assert "at async handler" in output
    (record,) = records_of(output)
    assert (record.error_type, record.message) == ("Error", "repo down")
    assert record.route == "GET /api/things"
    functions = [f.function for f in record.frames]
    assert functions == [
        "new Repo",
        "Object.load [as get]",
        "<anonymous>",
        "Array.map",
        "fetchRepo",
        "handler",  # printed as "at async handler"
    ]
    assert [f.line for f in record.frames] == [2, 3, 5, None, 5, 6]
    assert record.frames[2].column == 69 and record.frames[2].in_app
    assert record.frames[3].path == "<anonymous>" and not record.frames[3].in_app
    # The cause block stays in the record's stack; its frames are not the record's frames.
    assert any(line.strip() == "[cause]: RangeError: pool empty" for line in record.stack)
    assert parse_node_frame("    at new Pool (node_modules/pg/lib/pool.js:1:2)") == Frame(
        "new Pool", "node_modules/pg/lib/pool.js", 1, 2, False
    )
    assert record.raw.rstrip().endswith("}")


def test_esm_file_urls_and_anonymous_frames(tmp_path: Path) -> None:
    source = "const run = (f) => f();\nrun(() => { null.x; });\n"
    output = run_node_script(tmp_path, source, name="mod.mjs")
    (record,) = records_of(output)
    assert record.error_type == "TypeError"
    top = record.frames[0]
    assert top.path.startswith("file://") and top.path.endswith("mod.mjs")
    assert (top.line, top.in_app) == (2, True)
    assert record.raw.splitlines()[0].startswith("file://")


def test_custom_error_name_without_error_word_is_found_through_its_frames(
    tmp_path: Path,
) -> None:
    source = """
class Timeout extends Error { constructor(m) { super(m); this.name = 'Timeout'; } }
for (let i = 0; i < 400; i++) console.log('INFO tick ' + i);
function wait() { throw new Timeout('upstream took 30s'); }
try { wait(); } catch (e) { console.log(e); }
"""
    data = run_node_script(tmp_path, source).encode()
    assert b"Timeout: upstream took 30s" in data
    records = feed_in_chunks(data, [len(data) // 3])
    assert [(r.error_type, r.message) for r in records] == [("Timeout", "upstream took 30s")]
    assert records[0].frames[0].function == "wait"


# --- JSON loggers ------------------------------------------------------------------------


@pytest.mark.parametrize("logger", ["pino", "winston", "bunyan"])
def test_json_logger_errors_become_records_and_info_lines_do_not(
    logger: str, tmp_path: Path
) -> None:
    run_service("--once", "users", "--logger", logger, "--payload", "77", log_dir=tmp_path)
    error_log = (tmp_path / "pa-error.log").read_text()
    info_log = (tmp_path / "pa.log").read_text()
    assert "errors=0" in info_log
    assert records_of(info_log) == []
    (record,) = records_of(error_log)
    assert record.error_type == "TypeError"
    assert record.message == "Cannot read properties of undefined (reading 'id')"
    assert record.route == "GET /api/users/77"
    assert record.frames[0].function == "getUserProfile"
    assert record.timestamp is not None
    logged = json.loads(error_log.splitlines()[0])
    stamp = logged.get("time") or logged.get("timestamp")
    if isinstance(stamp, int):
        assert record.timestamp.startswith("20") and record.timestamp.endswith("Z")
    else:
        assert record.timestamp == stamp


def test_json_error_without_err_object_uses_msg_and_top_level_route() -> None:
    lines = [
        '{"level":60,"time":1795659201103,"msg":"db pool exhausted",'
        '"method":"post","url":"/api/orders?x=1"}',
        '{"level":"crit","message":"disk full","timestamp":"2026-11-26T02:07:29.5+01:00"}',
        '{"level":40,"msg":"slow query, error budget 3%"}',
        '{"level":30,"msg":"error count 0"}',
        '{"level":"info","message":"errors=0"}',
    ]
    records = parse_lines(lines)
    assert [(r.error_type, r.message, r.route) for r in records] == [
        ("Error", "db pool exhausted", "POST /api/orders"),
        ("Error", "disk full", None),
    ]
    assert records[0].timestamp == "2026-11-26T02:13:21.103Z"
    assert records[1].timestamp == "2026-11-26T01:07:29.500Z"


def test_malformed_json_is_a_plain_line_and_never_a_crash() -> None:
    lines = [
        '{"level":50,"msg":"cut off',
        '{"level":50, oops}',
        "{not json at all}",
        '{"level":50,"err":{"message":"no close"',
        "[1, 2, 3]",
        '{"level": {"nested": true}, "msg": "ERROR shaped"}',
    ]
    assert parse_lines(lines) == []
    (record,) = parse_lines(["ERROR {broken json payload"])
    assert record.message == "{broken json payload"


# --- prefixes, plain lines ----------------------------------------------------------------


def test_pm2_time_prefix_is_stripped_and_becomes_the_timestamp() -> None:
    output = run_service("--once", "payments")
    # PM2 --time writes "YYYY-MM-DDTHH:mm:ss: " before every line it captures.
    prefixed = "\n".join(f"2026-11-26T02:07:29: {line}" for line in output.splitlines())
    (record,) = records_of(prefixed)
    assert (record.error_type, record.message) == ("Error", "STRIPE_SECRET_KEY is not set")
    assert record.timestamp == "2026-11-26T02:07:29.000Z"
    assert record.route == "GET /api/payments"
    assert len(record.frames) >= 2
    assert all(not line.startswith("2026") for line in record.stack)


def test_leading_timestamps_in_several_shapes() -> None:
    assert strip_prefix("2026-11-26T02:13:17.852Z INFO x") == (
        "INFO x",
        "2026-11-26T02:13:17.852Z",
    )
    assert strip_prefix("[2026-11-26 02:13:17] ERROR x") == (
        "ERROR x",
        "2026-11-26T02:13:17.000Z",
    )
    assert strip_prefix("0|pa  | 2026-11-26 02:07:29 +02:00: boom") == (
        "boom",
        "2026-11-26T00:07:29.000Z",
    )
    assert strip_prefix("2026-13-45T99:00:00: odd") == ("odd", None)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ERROR something failed", "something failed"),
        ("[ERROR] db: connection refused", "db: connection refused"),
        ('time=2026-11-26T02:07:29Z level=error msg="queue stalled" n=3', "queue stalled"),
        ("FATAL out of file descriptors", "out of file descriptors"),
        ("2026-11-26T02:13:17.852Z CRITICAL payment provider unreachable", None),
        ("Error: x", "x"),
    ],
)
def test_plain_error_lines_without_stack_are_errors(line: str, message: str | None) -> None:
    (record,) = parse_lines([line])
    if message is not None:
        assert record.message == message
    assert record.error_type == "Error"
    assert record.raw == line


@pytest.mark.parametrize(
    "line",
    [
        "INFO sync done errors=0",
        "INFO error budget ok",
        "2026-11-26T02:13:17.852Z WARN retrying after error",
        "[DEBUG] panic mode disabled",
        'level=info msg="error rate 0"',
        "the word error in prose is not an error line",
        '{"level":30,"msg":"error count 0"}',
    ],
)
def test_lines_merely_mentioning_error_are_not_errors(line: str) -> None:
    assert parse_lines([line]) == []


# --- other runtimes -----------------------------------------------------------------------


def test_python_chained_traceback_reports_the_last_exception(tmp_path: Path) -> None:
    python = require_tool("python3")
    script = tmp_path / "job.py"
    script.write_text(
        "import json\n"
        "def load(raw):\n"
        "    return json.loads(raw)\n"
        "def run():\n"
        "    try:\n"
        "        load('{bad')\n"
        "    except ValueError as exc:\n"
        "        raise RuntimeError('config unreadable') from exc\n"
        "run()\n"
    )
    done = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=30)
    assert "The above exception was the direct cause" in done.stderr
    (record,) = records_of("INFO starting\n" + done.stderr)
    assert (record.error_type, record.message) == ("RuntimeError", "config unreadable")
    assert [f.function for f in record.frames] == ["<module>", "run"]
    assert all(f.in_app for f in record.frames)
    assert any("JSONDecodeError" in line for line in record.stack)


def test_java_exception_with_caused_by() -> None:
    (record,) = records_of((LOGS / "java-exception.log").read_text())
    assert record.error_type == "java.lang.IllegalStateException"
    assert record.message == "checkout failed for quantity 12x"
    assert (record.frames[0].function, record.frames[0].path, record.frames[0].line) == (
        "Checkout.submit",
        "Checkout.java",
        9,
    )
    library = [f for f in record.frames if f.function.startswith("java.lang.Integer")]
    assert library and not any(f.in_app for f in library)
    assert any(
        line.startswith("Caused by: java.lang.NumberFormatException") for line in record.stack
    )


def test_go_panic_with_goroutine_frames() -> None:
    (record,) = records_of((LOGS / "go-panic.log").read_text())
    assert record.error_type == "runtime error"
    assert record.message == "index out of range [5] with length 3"
    assert [(f.function, f.line) for f in record.frames] == [
        ("main.pickWinner", 9),
        ("main.main", 14),
    ]
    assert record.raw.endswith("exit status 2")


# --- the sample log, hostile input, chunking and offsets ---------------------------------


def test_shipped_sample_log_holds_several_error_kinds() -> None:
    sample = Path(__file__).resolve().parent.parent / "agent" / "samples" / "pa-error.log"
    records = records_of(sample.read_text())
    kinds = {(r.error_type, r.route) for r in records}
    assert ("TypeError", "GET /api/users/42") in kinds
    assert ("Error", "GET /api/inventory") in kinds
    assert ("UnhandledPromiseRejection", None) in kinds
    assert len(records) >= 8


def test_ten_megabyte_error_line_becomes_one_cut_record() -> None:
    data = b"INFO before\nERROR " + b"y" * (10 * 1024 * 1024) + b"\nINFO after\n"
    assembler = Assembler(max_line_bytes=4096)
    records = []
    for i in range(0, len(data), 1 << 20):
        records.extend(assembler.feed(data[i : i + (1 << 20)], i))
    records.extend(assembler.flush(eof=True))
    (record,) = records
    assert "…[line cut:" in record.message
    assert len(record.raw) < 5000
    assert assembler.splitter.cut_lines == 1
    assert assembler.safe_offset == len(data)


def test_binary_garbage_and_invalid_utf8_never_stop_the_assembler() -> None:
    rng = random.Random(3)
    garbage = bytes(rng.randrange(256) for _ in range(100_000))
    tail = b"\nERROR GET /api/x TypeError: bad \xff\xfe value \xc3\n    at f (/a.js:1:2)\n"
    data = garbage + tail
    assembler = Assembler()
    records = []
    for i in range(0, len(data), 777):
        records.extend(assembler.feed(data[i : i + 777], i))
    records.extend(assembler.flush(eof=True))
    last = records[-1]
    assert last.route == "GET /api/x"
    assert last.error_type == "TypeError"
    assert last.frames[0].path == "/a.js"
    assert assembler.safe_offset == len(data)


def _mixed_sample() -> bytes:
    return (
        b"2026-11-26T02:07:29: INFO GET /api/health 200 1ms\n"
        b"ERROR GET /api/users/42 TypeError: Cannot read properties of undefined (reading 'id')\n"
        b"    at getUserProfile (/srv/pa/lib/users.js:16:21)\n"
        b"    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1611:16) {\n"
        b"  code: 'ECONNREFUSED',\n"
        b"  [cause]: Error: inner\n"
        b"      at x (/srv/pa/y.js:1:1)\n"
        b"}\n"
        b'{"level":30,"msg":"error count 0"}\n'
        b'{"level":50,"err":{"type":"Error","message":"m",'
        b'"stack":"Error: m\\n    at q (/q.js:1:1)"}}\n'
        b"INFO sync done errors=0\n"
        b"/srv/pa/lib/crash.js:5\n"
        b"  return config.ttlSeconds;\n"
        b"                ^\n"
        b"\n"
        b"TypeError: Cannot read properties of undefined (reading 'ttlSeconds')\n"
        b"    at readCacheConfig (/srv/pa/lib/crash.js:5:17)\n"
        b"\n"
        b"Node.js v20.20.2\n"
        b"Traceback (most recent call last):\n"
        b'  File "/app/job.py", line 3, in <module>\n'
        b"    run()\n"
        b"KeyError: 'id'\n"
        b"FATAL out of memory\n"
    )


def test_record_split_across_two_feeds_at_every_byte_is_assembled_the_same() -> None:
    data = _mixed_sample()
    expected = feed_in_chunks(data, [])
    assert [r.error_type for r in expected] == [
        "TypeError",
        "Error",
        "TypeError",
        "KeyError",
        "Error",
    ]
    for cut in range(1, len(data)):
        assert feed_in_chunks(data, [cut]) == expected, f"differs when split at byte {cut}"


def test_safe_offset_lets_a_killed_reader_resume_without_loss_or_duplicates() -> None:
    data = _mixed_sample() * 3 + run_service("--once", "inventory").encode()
    expected = feed_in_chunks(data, [])
    rng = random.Random(11)
    for round_ in range(80):
        idle_flushes = round_ % 2 == 1
        assembler = Assembler()
        committed: list[ErrorRecord] = []
        position = 0
        for _ in range(rng.randrange(1, 12)):
            if position >= len(data):
                break
            size = rng.randrange(1, 200)
            committed.extend(assembler.feed(data[position : position + size], position))
            position = min(len(data), position + size)
            if idle_flushes and rng.random() < 0.3:
                committed.extend(assembler.flush())
            assert assembler.safe_offset <= position
        offset = assembler.safe_offset
        # kill -9 here: a new reader starts at the committed offset...
        resumed = Assembler()
        rest = resumed.feed(data[offset:], offset) + resumed.flush(eof=True)
        # ...and must produce exactly what the old one would have produced had it lived.
        continued = assembler.feed(data[position:], position) + assembler.flush(eof=True)
        assert rest == continued
        if not idle_flushes:
            assert committed + rest == expected
