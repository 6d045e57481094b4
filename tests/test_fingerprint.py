"""Fingerprints group occurrences of one fault and keep different faults apart.

The grouping properties are checked on stacks printed by a real ``node`` process running
small scripts written here, so the frames have exactly the shape V8 gives them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from agent.fingerprint import fingerprint, normalize_function, normalize_message, relative_path
from agent.record import ErrorRecord, Frame

ORDERS_JS = """\
'use strict';
function parseOrder(body) {
  return JSON.parse(body);
}
function loadUser(id) {
  throw new Error(`user ${id} not found (asked at ${new Date().toISOString()})`);
}
module.exports = { parseOrder, loadUser };
"""

APP_JS = """\
'use strict';
const net = require('net');
const { parseOrder, loadUser } = require('./lib/orders');

function chargeCard() {
  throw new Error('payment failed');
}
function refundCard() {
  throw new Error('payment failed');
}

class OrderHandler {
  async handle(kind, arg) {
    if (kind === 'parse') return parseOrder(arg);
    if (kind === 'user') return loadUser(arg);
    if (kind === 'charge') return chargeCard();
    if (kind === 'refund') return refundCard();
    throw new Error(`unknown scenario ${kind}`);
  }
}

function refuse(count) {
  // Connect to ports that were just closed: a real ECONNREFUSED per port.
  for (let i = 0; i < count; i++) {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => {
        net.connect(port, '127.0.0.1').on('error', (err) => console.error(err));
      });
    });
  }
}

async function main() {
  const [kind, ...args] = process.argv.slice(2);
  if (kind === 'refuse') return refuse(Number(args[0]));
  const handler = new OrderHandler();
  for (const arg of args) {
    try {
      await handler.handle(kind, arg);
    } catch (err) {
      console.error(err);
    }
  }
}

main();
"""

_HEAD = re.compile(r"^(?P<type>[A-Z]\w*Error|Error)(?: \[[\w-]+\])?: (?P<msg>.*)$")
# A trailing " {" opens the property block console.error prints after the stack.
_AT = re.compile(r"^\s+at (?:(?P<fn>.+?) \((?P<loc>.*)\)|(?P<bare>.+?))(?: \{)?$")
_LOC = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+)$")


def _frame(line: str) -> Frame | None:
    m = _AT.match(line)
    if m is None:
        return None
    fn = m.group("fn") or ""
    loc = m.group("loc") if m.group("fn") is not None else m.group("bare")
    lm = _LOC.match(loc)
    path = lm.group("path") if lm else loc
    runtime = path.startswith(("node:", "internal/", "<anonymous>")) or "node_modules" in path
    return Frame(
        function=fn,
        path=path,
        line=int(lm.group("line")) if lm else None,
        column=int(lm.group("col")) if lm else None,
        in_app=not runtime,
    )


def _local_parse(lines: list[str]) -> list[ErrorRecord]:
    """Minimal V8 stack reader, only for when agent.parse is not available."""
    records: list[ErrorRecord] = []
    for line in lines:
        head = _HEAD.match(line)
        if head is not None:
            records.append(ErrorRecord(error_type=head["type"], message=head["msg"], raw=line))
            continue
        frame = _frame(line)
        if frame is not None and records:
            records[-1].stack.append(line)
            records[-1].frames.append(frame)
    return records


def parse(text: str) -> list[ErrorRecord]:
    lines = text.splitlines()
    try:
        from agent.parse import parse_lines  # type: ignore[attr-defined]
    except ImportError:
        return _local_parse(lines)
    return parse_lines(lines)


def write_app(root: Path, blank_lines: int = 0) -> Path:
    (root / "lib").mkdir(parents=True, exist_ok=True)
    (root / "lib" / "orders.js").write_text("\n" * blank_lines + ORDERS_JS)
    (root / "app.js").write_text("\n" * blank_lines + APP_JS)
    return root / "app.js"


def run_node(script: Path, *args: str) -> list[ErrorRecord]:
    node = require_tool("node")
    proc = subprocess.run(
        [node, str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=script.parent,
    )
    assert proc.returncode == 0, proc.stderr
    records = parse(proc.stderr)
    assert records, f"no error records in node output:\n{proc.stderr}"
    return records


def test_redeploy_that_shifts_lines_keeps_fingerprint(tmp_path: Path) -> None:
    before = run_node(write_app(tmp_path / "v1"), "parse", "{bad")
    after = run_node(write_app(tmp_path / "v1", blank_lines=7), "parse", "{bad")
    assert len(before) == len(after) == 1
    lines_before = [f.line for f in before[0].frames if f.in_app]
    lines_after = [f.line for f in after[0].frames if f.in_app]
    assert lines_before and lines_before != lines_after, "the redeploy did not move the frames"
    assert fingerprint(before[0]) == fingerprint(after[0])
    app_root = str(tmp_path / "v1")
    assert fingerprint(before[0], app_root) == fingerprint(after[0], app_root)


def test_new_release_directory_keeps_fingerprint(tmp_path: Path) -> None:
    releases = tmp_path / "srv" / "pa" / "releases"
    old = write_app(releases / "20261101120000")
    new = write_app(releases / "20261124093000", blank_lines=3)
    current = tmp_path / "srv" / "pa" / "current"
    shutil.copytree(new.parent, current)
    runs = [run_node(script, "user", "42") for script in (old, new, current / "app.js")]
    paths = {r[0].frames[0].path for r in runs}
    assert len(paths) == 3, "the three deployments should print three different paths"
    assert len({fingerprint(r[0]) for r in runs}) == 1
    # With the app root configured as the release the host runs from.
    rooted = {fingerprint(r[0], str(Path(r[0].frames[0].path).parent.parent)) for r in runs}
    assert rooted == {fingerprint(runs[0][0])}


def test_same_throw_site_with_different_data_is_one_group(tmp_path: Path) -> None:
    app = write_app(tmp_path)
    payloads = ["xyz", "<html>", "abcdefghijklmnopqrstuvwxyz", "'quoted'", 'he said "hi"']
    parsed = run_node(app, "parse", *payloads)
    users = run_node(
        app,
        "user",
        "5f1d7b9c8e4a2b3c4d5e6f70",
        "550e8400-e29b-41d4-a716-446655440000",
        "64b7f0c2a1d3e4f5a6b7c8d9",
        "9001",
        "0x7ffe",
    )
    for records, expected in ((parsed, len(payloads)), (users, 5)):
        assert len(records) == expected
        assert len({r.message for r in records}) == expected, "messages should carry data"
        assert len({fingerprint(r) for r in records}) == 1, [r.message for r in records]
    assert fingerprint(parsed[0]) != fingerprint(users[0])


def test_connection_refused_to_different_ports_is_one_group(tmp_path: Path) -> None:
    records = run_node(write_app(tmp_path), "refuse", "3")
    assert len(records) == 3
    assert len({r.message for r in records}) == 3, "each refusal names its own port"
    assert all(not f.in_app for r in records for f in r.frames), "runtime-only stack expected"
    assert len({fingerprint(r) for r in records}) == 1


def test_different_throw_sites_are_different_groups(tmp_path: Path) -> None:
    app = write_app(tmp_path)
    charge = run_node(app, "charge", "a")[0]
    refund = run_node(app, "refund", "a")[0]
    assert charge.message == refund.message == "payment failed"
    assert fingerprint(charge) != fingerprint(refund)


def _record(message: str, frames: list[Frame], error_type: str = "TypeError") -> ErrorRecord:
    return ErrorRecord(error_type=error_type, message=message, frames=frames)


def test_fingerprint_is_sixteen_lowercase_hex_chars() -> None:
    fp = fingerprint(_record("boom", [Frame("f", "/app/a.js", 1, 2)]))
    assert re.fullmatch(r"[0-9a-f]{16}", fp)


def test_line_and_column_do_not_count() -> None:
    a = _record("boom", [Frame("f", "/app/a.js", 1, 2)])
    b = _record("boom", [Frame("f", "/app/a.js", 300, 40)])
    assert fingerprint(a) == fingerprint(b)


def test_error_type_counts() -> None:
    frames = [Frame("f", "/app/a.js", 1, 2)]
    assert fingerprint(_record("boom", frames, "TypeError")) != fingerprint(
        _record("boom", frames, "RangeError")
    )


def test_library_frames_ignored_when_app_frames_exist() -> None:
    app = [Frame("handler", "/app/src/h.js", 3, 1)]
    lib_a = [Frame("Query.run", "/app/node_modules/pg/lib/query.js", 10, 1, in_app=False)]
    lib_b = [Frame("Client.send", "/app/node_modules/pg/lib/client.js", 90, 1, in_app=False)]
    node = [Frame("process.processTicksAndRejections", "node:internal/process/task_queues", 95)]
    # A dependency upgrade changes the library frames above the app's own code.
    assert fingerprint(_record("x", lib_a + app)) == fingerprint(_record("x", lib_b + app + node))


def test_only_top_three_app_frames_count() -> None:
    top = [Frame(f"f{i}", f"/app/src/m{i}.js", i) for i in range(3)]
    deep_a = [*top, Frame("router", "/app/src/r.js", 1)]
    deep_b = [*top, Frame("cron", "/app/src/c.js", 1)]
    assert fingerprint(_record("x", deep_a)) == fingerprint(_record("x", deep_b))
    assert fingerprint(_record("x", deep_a)) != fingerprint(_record("x", top[1:]))


def test_runtime_frames_count_when_no_app_frame() -> None:
    a = [Frame("TCPConnectWrap.afterConnect [as oncomplete]", "node:net", 1555, 16, False)]
    b = [Frame("Socket._final", "node:net", 500, 1, False)]
    assert fingerprint(_record("x", a)) != fingerprint(_record("x", b))


def test_parser_marked_in_app_runtime_paths_still_treated_as_runtime() -> None:
    app = [Frame("a", "/app/src/a.js", 2)]
    json_frame = [Frame("JSON.parse", "<anonymous>", None, None, True)]
    assert fingerprint(_record("x", json_frame + app)) == fingerprint(_record("x", app))


def test_message_beyond_cap_does_not_split_group() -> None:
    frames = [Frame("f", "/app/a.js", 1)]
    head = "validation failed: " + "field is required; " * 20
    assert fingerprint(_record(head + "tail A", frames)) == fingerprint(
        _record(head + "tail B", frames)
    )
    assert fingerprint(_record("short A", frames)) != fingerprint(_record("short B", frames))


def test_type_prefix_repeated_in_message_is_ignored() -> None:
    frames = [Frame("f", "/app/a.js", 1)]
    assert fingerprint(_record("TypeError: x is not a function", frames)) == fingerprint(
        _record("x is not a function", frames)
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Unexpected token 'x', \"xyz\" is not valid JSON",
            "Unexpected token <str>, <str> is not valid JSON",
        ),
        (
            "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON",
            "Unexpected token <str>, <str> is not valid JSON",
        ),
        ("connect ECONNREFUSED 127.0.0.1:5999", "connect ECONNREFUSED <ip>"),
        ("connect ECONNREFUSED ::1:27017", "connect ECONNREFUSED <ip>"),
        ("connect ECONNREFUSED [2001:db8::1]:443", "connect ECONNREFUSED <ip>"),
        ("user 5f1d7b9c8e4a2b3c4d5e6f70 not found", "user <id> not found"),
        ("bad ptr 0x7ffe1234", "bad ptr <id>"),
        ("commit a1b2c3d missing", "commit <id> missing"),
        ("word decade and facade stay", "word decade and facade stay"),
        ("id 550e8400-e29b-41d4-a716-446655440000 gone", "id <id> gone"),
        ("mail to bob.smith+x@example.co.uk bounced", "mail to <email> bounced"),
        ("at 2026-11-01T12:00:00.123Z failed", "at <time> failed"),
        ("at 2026-11-01 12:00:00+01:00 failed", "at <time> failed"),
        ("since Sun, 01 Nov 2026 12:00:00 GMT", "since <time>"),
        ("at Sun Nov 01 2026 12:00:00 GMT+0000 (Coordinated Universal Time)", "at <time>"),
        ("deadline 1795659142646 passed", "deadline <time> passed"),
        (
            "timeout after 1500ms, retry 3 of 5 (2.5s)",
            "timeout after <id>, retry <id> of <id> (<id>)",
        ),
        ("at position 7.", "at position <id>."),
        ("order_123456 failed", "order_<id> failed"),
        ("open '/tmp/upload-1795659142646'", "open <str>"),
        ("  many\t\tspaces \n here ", "many spaces here"),
        (
            "Cannot read properties of undefined (reading 'id')",
            "Cannot read properties of undefined (reading 'id')",
        ),
        ("can't connect, it's down", "can't connect, it's down"),
        ("Node.js v20.20.2 is required", "Node.js v20.20.2 is required"),
    ],
)
def test_normalize_message(message: str, expected: str) -> None:
    assert normalize_message(message) == expected


def test_normalize_message_caps_length_and_survives_huge_input() -> None:
    out = normalize_message("x" * 5_000_000 + " 42")
    assert len(out) == 300


@pytest.mark.parametrize(
    ("path", "app_root", "expected"),
    [
        ("/srv/pa/releases/20261101120000/src/app.js", None, "src/app.js"),
        ("/srv/pa/releases/20261124093000/src/app.js", None, "src/app.js"),
        ("/srv/pa/current/src/app.js", None, "src/app.js"),
        ("/srv/pa/current/src/app.js", "/srv/pa/current", "src/app.js"),
        ("/srv/pa/releases/20261101120000/src/app.js", "/srv/pa", "src/app.js"),
        ("/srv/pa/current/src/current/x.js", "/srv/pa/current", "src/current/x.js"),
        ("/home/me/app/src/app.js", "/home/me/app/", "src/app.js"),
        ("/home/me/app/src/app.js", "/elsewhere", "/home/me/app/src/app.js"),
        ("file:///srv/pa/current/src/app.mjs", None, "src/app.mjs"),
        ("webpack:///./src/x.ts?4f2a", None, "src/x.ts"),
        ("C:\\app\\src\\x.js", "C:\\app", "src/x.js"),
        (
            "/srv/pa/current/node_modules/express/lib/router/index.js",
            None,
            "node_modules/express/lib/router/index.js",
        ),
        (
            "/srv/pa/node_modules/.pnpm/pg@8.11.0/node_modules/pg/lib/client.js",
            "/srv/pa",
            "node_modules/pg/lib/client.js",
        ),
        ("node:internal/process/task_queues", None, "node:internal/process/task_queues"),
    ],
)
def test_relative_path(path: str, app_root: str | None, expected: str) -> None:
    assert relative_path(path, app_root) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("async main", "main"),
        ("new OrderHandler", "OrderHandler"),
        ("Function.executeUserEntryPoint [as runMain]", "Function.executeUserEntryPoint"),
        ("async Promise.all [as all]", "Promise.all"),
        ("Object.<anonymous>", "<anonymous>"),
        ("", "<anonymous>"),
        ("OrderHandler.handle", "OrderHandler.handle"),
    ],
)
def test_normalize_function(name: str, expected: str) -> None:
    assert normalize_function(name) == expected
