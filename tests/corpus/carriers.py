"""How runtimes carry a program's output into the files an operator points the agent at.

No Docker engine or container runtime runs where the corpus is made, so the Docker
json-file and CRI encoders here follow those runtimes' own writers byte for byte:

- Docker (moby ``daemon/logger/copier.go`` + ``jsonfilelog/jsonlog/jsonlogbytes.go``): one
  JSON object per line read from the container's stdout or stderr, the line with its
  ``\\n`` in ``log``; a line longer than the copier's 16 KiB buffer is written as partial
  entries without the ``\\n``. Strings are escaped as Go's HTML-safe JSON encoder does
  (``<>&`` and control bytes as ``\\u00XX``, invalid UTF-8 as U+FFFD), ``time`` is
  RFC 3339 with nanoseconds, trailing zeros dropped, in UTC.
- CRI (containerd ``pkg/cri/io/logger.go``): ``<RFC3339Nano time> <stream> <F|P> <text>``,
  lines longer than 16 KiB split into ``P`` partials ending with an ``F`` piece.

journald is real: the lines go to ``systemd-journal-remote`` in the journal export format
and are read back with ``journalctl``. PM2 is real too (see ``pm2_run``).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import struct
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# The copier's buffer in moby and containerd's default max_container_log_line_size.
LINE_LIMIT = 16 * 1024
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
# Where the sandbox shows the app (see regenerate.sandbox).
APP_DIR = "/srv/app"


@dataclass(frozen=True)
class Line:
    """One line a program wrote to one stream, without its newline, and when it was read."""

    time_ns: int
    stream: str
    text: bytes
    terminated: bool = True


def capture(command: list[str], timeout: float, split: bool) -> tuple[bytes, list[Line]]:
    """Run ``command``; return its output as one file holds it, and its timed lines.

    Unsplit, stdout and stderr share one pipe (``>> log 2>&1``), so the bytes are in the
    program's write order and no lines are returned. Split, each stream has its own pipe,
    as a container runtime or journald reads them, and every line is returned with the
    stream it came from and when it was read; the bytes are then in arrival order.
    """
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if split else subprocess.STDOUT,
        start_new_session=True,
    )
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None
    selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
    if proc.stderr is not None:
        selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
    merged = bytearray()
    pending = {"stdout": b"", "stderr": b""}
    lines: list[Line] = []
    deadline = time.monotonic() + timeout
    open_streams = len(selector.get_map())
    try:
        while open_streams:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[-1]} did not finish in {timeout:.0f} s")
            for key, _ in selector.select(timeout=1.0):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                now = time.time_ns()
                merged += chunk
                stream = key.data
                *complete, pending[stream] = (pending[stream] + chunk).split(b"\n")
                lines.extend(Line(now, stream, text) for text in complete)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        selector.close()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    now = time.time_ns()
    lines += [Line(now, s, rest, terminated=False) for s, rest in pending.items() if rest]
    if code not in (0, 1, 7):  # 1 and 7: node's own exit codes for an uncaught error
        raise RuntimeError(f"{command[-1]} exited with {code}")
    return bytes(merged), lines if split else []


def rfc3339_nano(time_ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: nanoseconds with trailing zeros (and dot) dropped."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def go_json_string(data: bytes) -> str:
    """A byte string as moby's ``ffjsonWriteJSONBytesAsString`` writes it."""
    out: list[str] = ['"']
    text = data.decode("utf-8", "replace")  # invalid UTF-8 -> U+FFFD, as Go does
    for ch in text:
        code = ord(ch)
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or ch in "<>&":
            out.append(f"\\u00{code:02x}")
        elif ch in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _pieces(line: Line) -> list[tuple[bytes, bool]]:
    """A line cut as the runtimes cut it: (piece, is_last) with at most LINE_LIMIT bytes."""
    text = line.text
    pieces: list[tuple[bytes, bool]] = []
    while len(text) > LINE_LIMIT:
        pieces.append((text[:LINE_LIMIT], False))
        text = text[LINE_LIMIT:]
    pieces.append((text, line.terminated))
    return pieces


def docker_json(lines: list[Line], **_: Path | str) -> bytes:
    """Docker's json-file driver: ``{"log":...,"stream":...,"time":...}`` per line read."""
    out = bytearray()
    for line in sorted(lines, key=lambda x: x.time_ns):
        for piece, last in _pieces(line):
            log = piece + b"\n" if last else piece
            out += (
                f'{{"log":{go_json_string(log)},"stream":"{line.stream}",'
                f'"time":"{rfc3339_nano(line.time_ns)}"}}\n'
            ).encode()
    return bytes(out)


def cri(lines: list[Line], **_: Path | str) -> bytes:
    """containerd's CRI log file: ``time stream F|P text`` per line, 16 KiB partials."""
    out = bytearray()
    for line in sorted(lines, key=lambda x: x.time_ns):
        stamp = rfc3339_nano(line.time_ns).encode()
        for piece, last in _pieces(line):
            tag = b"F" if last else b"P"
            out += stamp + b" " + line.stream.encode() + b" " + tag + b" " + piece + b"\n"
    return bytes(out)


def _export_field(name: str, value: bytes) -> bytes:
    """One field in the journal export format: text form, or binary form when needed."""
    if b"\n" in value or any(b < 0x20 and b != 0x09 for b in value):
        return name.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return name.encode() + b"=" + value + b"\n"


def journal_export(lines: list[Line], program: str, unit: str = "shop.service") -> bytes:
    """The lines as journald stores a unit's stdout/stderr (``StandardOutput=journal``)."""
    boot = uuid.uuid4().hex
    machine = uuid.uuid4().hex
    streams = {"stdout": uuid.uuid4().hex, "stderr": uuid.uuid4().hex}
    pid = str(4000 + os.getpid() % 1000).encode()
    start = lines[0].time_ns if lines else time.time_ns()
    out = bytearray()
    for seq, line in enumerate(sorted(lines, key=lambda x: x.time_ns), start=1):
        realtime = line.time_ns // 1000
        monotonic = 5_000_000_000 + (line.time_ns - start) // 1000
        fields = [
            ("__CURSOR", f"s={boot};i={seq:x}".encode()),
            ("__REALTIME_TIMESTAMP", str(realtime).encode()),
            ("__MONOTONIC_TIMESTAMP", str(monotonic).encode()),
            ("_BOOT_ID", boot.encode()),
            ("_MACHINE_ID", machine.encode()),
            ("_HOSTNAME", b"shop-1"),
            ("_TRANSPORT", b"stdout"),
            ("_STREAM_ID", streams[line.stream].encode()),
            ("PRIORITY", b"6"),
            ("SYSLOG_FACILITY", b"3"),
            ("SYSLOG_IDENTIFIER", b"node"),
            ("_PID", pid),
            ("_UID", b"1000"),
            ("_GID", b"1000"),
            ("_COMM", b"node"),
            ("_EXE", b"/usr/bin/node"),
            ("_CMDLINE", f"/usr/bin/node {APP_DIR}/{program}".encode()),
            ("_SYSTEMD_CGROUP", f"/system.slice/{unit}".encode()),
            ("_SYSTEMD_UNIT", unit.encode()),
            ("_SYSTEMD_SLICE", b"system.slice"),
            ("MESSAGE", line.text),
        ]
        for name, value in fields:
            out += _export_field(name, value)
        out += b"\n"
    return bytes(out)


def journal_file(lines: list[Line], work: Path, program: str) -> Path:
    """A real journal file holding ``lines``, written by systemd-journal-remote."""
    export = work / "export.txt"
    export.write_bytes(journal_export(lines, program))
    journal = work / "shop.journal"
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={journal}", "--compress=no", str(export)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return journal


def _journalctl(output: str) -> Callable[..., bytes]:
    def encode(lines: list[Line], work: Path, program: str) -> bytes:
        journal = journal_file(lines, work, program)
        done = subprocess.run(
            ["journalctl", f"--file={journal}", "--no-pager", "-o", output],
            check=True,
            capture_output=True,
            timeout=60,
            env={**os.environ, "TZ": "UTC", "SYSTEMD_COLORS": "0"},
        )
        return done.stdout

    return encode


CARRIERS: dict[str, Callable[..., bytes]] = {
    "docker-json": docker_json,
    "cri": cri,
    "journald-short": _journalctl("short"),
    "journald-short-iso": _journalctl("short-iso"),
    "journald-json": _journalctl("json"),
}


def pm2_run(sandbox: list[str], program: str, app: Path, timeout: float) -> bytes:
    """Run ``program`` under the real pm2 with ``--log-type json``; return its error log.

    PM2_HOME is a fresh directory in the app; ``pm2 kill`` stops the daemon once the
    program has exited, and the sandbox has its own PID namespace, so nothing pm2 started
    outlives the run even if that fails.
    """
    pm2 = "node node_modules/pm2/bin/pm2"
    script = (
        f"export PM2_HOME={APP_DIR}/.pm2; mkdir -p {APP_DIR}/pm2-logs; "
        f"{pm2} start {program} --name shop --log-type json --no-autorestart"
        f" -o {APP_DIR}/pm2-logs/out.log -e {APP_DIR}/pm2-logs/err.log >/dev/null || exit 1; "
        f"for i in $(seq 1 {int(timeout * 5)}); do "
        f'{pm2} jlist 2>/dev/null | grep -q \'"status":"stopped"\' && break; sleep 0.2; done; '
        f"{pm2} kill >/dev/null"
    )
    subprocess.run(
        [*sandbox, "--unshare-pid", "sh", "-c", script], check=True, timeout=timeout + 30
    )
    return (app / "pm2-logs" / "err.log").read_bytes()


def is_json_lines(data: bytes) -> bool:
    """Whether every line of ``data`` is one JSON value (for the shape checks)."""
    for raw in data.splitlines():
        try:
            json.loads(raw)
        except ValueError:
            return False
    return True
