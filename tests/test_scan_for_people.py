"""What a person running ``autofix-agent scan`` sees: the summary, the table, skipped
binary files and the progress line, as exact text."""

from __future__ import annotations

import gzip
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import scan
from agent.scan import run_scan
from agent.sniff import binary_kind

AGENT = [sys.executable, "-m", "agent.cli", "scan"]
TWO_FAULTS = (
    "2026-12-01T10:00:00.000Z INFO GET /health 200 1ms\n"
    "2026-12-01T10:00:01.000Z ERROR GET /orders/7/total TypeError: x is undefined\n"
    "    at orderTotal (/srv/app/lib/shop.js:14:16)\n"
    "    at Layer.handle (/srv/app/node_modules/express/lib/layer.js:95:5)\n"
    "2026-12-01T10:00:02.000Z INFO error budget ok: 0 errors\n"
    "RangeError: cannot reserve 3 of sku SKU6\n"
    "    at reserveStock (/srv/app/lib/shop.js:22:9)\n"
) + (
    "2026-12-01T10:00:03.000Z ERROR GET /orders/8/total TypeError: x is undefined\n"
    "    at orderTotal (/srv/app/lib/shop.js:14:16)\n"
) * 2


def _scan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
    )


def test_summary_says_what_was_read_and_found(tmp_path: Path) -> None:
    log = tmp_path / "shop.log"
    log.write_text(TWO_FAULTS)
    done = _scan(str(log))
    assert done.returncode == 0
    assert done.stderr == "autofix-agent scan: 1 file, 11 lines: 2 error groups, 4 errors\n"
    assert [json.loads(line)["count"] for line in done.stdout.splitlines()] == [3, 1]


def test_a_log_without_errors_says_so(tmp_path: Path) -> None:
    quiet = tmp_path / "quiet.log"
    quiet.write_text("INFO started\nINFO error budget ok: 0 errors\nlast line, no newline")
    other = tmp_path / "other.log"
    other.write_text("INFO one\n")
    done = _scan(str(quiet), str(other))
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "autofix-agent scan: 2 files, 4 lines: no errors found\n"


def test_table_lists_groups_most_severe_and_frequent_first_with_their_top_app_frame(
    tmp_path: Path,
) -> None:
    log = tmp_path / "shop.log"
    log.write_text(TWO_FAULTS)
    done = _scan("--format", "table", str(log))
    assert done.stdout == (
        "COUNT  SEVERITY  ERROR                                       ROUTE\n"
        "    3  medium    TypeError: x is undefined                   GET /orders/7/total\n"
        "                 at orderTotal (/srv/app/lib/shop.js:14:16)\n"
        "    1  low       RangeError: cannot reserve 3 of sku SKU6    -\n"
        "                 at reserveStock (/srv/app/lib/shop.js:22:9)\n"
    )


def test_table_cuts_long_messages_to_the_terminal_width_with_a_visible_mark(
    tmp_path: Path,
) -> None:
    log = tmp_path / "long.log"
    log.write_text("Error: " + "very " * 40 + "long\n    at f (/srv/a.js:1:2)\n")
    done = _scan("--format", "table", str(log), env={"COLUMNS": "70"})
    lines = done.stdout.splitlines()
    assert lines[1] == "    1  low       Error: very very very very very very very ver…  -"
    assert all(len(line) <= 70 for line in lines)


def test_output_is_a_table_on_a_terminal_and_json_lines_in_a_pipe(tmp_path: Path) -> None:
    log = tmp_path / "shop.log"
    log.write_text(TWO_FAULTS)
    piped = _scan(str(log))
    assert json.loads(piped.stdout.splitlines()[0])["type"] == "TypeError"
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*AGENT, str(log)],
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "80"},
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(leader)
    assert seen.decode().replace("\r\n", "\n").startswith("COUNT  SEVERITY  ERROR")


def test_binary_files_are_skipped_with_a_message_naming_them(tmp_path: Path) -> None:
    elf = tmp_path / "app"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))
    packed = tmp_path / "shop.log.1.gz"
    packed.write_bytes(gzip.compress(TWO_FAULTS.encode()))
    dump = tmp_path / "core.bin"
    dump.write_bytes(bytes(range(256)) * 40)
    done = _scan(str(elf), str(packed), str(dump))
    assert done.returncode == 1  # nothing readable
    assert done.stdout == ""
    assert done.stderr == (
        f"autofix-agent scan: {elf}: is an ELF executable or core dump, skipped\n"
        f"autofix-agent scan: {packed}: is gzip-compressed "
        "(read it with: zcat FILE | autofix-agent scan -), skipped\n"
        f"autofix-agent scan: {dump}: is binary (61% of its first bytes are not text), skipped\n"
    )


def test_a_binary_file_next_to_a_log_leaves_the_log_read(tmp_path: Path) -> None:
    elf = tmp_path / "app"
    elf.write_bytes(b"\x7fELF" + bytes(100))
    log = tmp_path / "shop.log"
    log.write_text(TWO_FAULTS)
    done = _scan(str(elf), str(log))
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        f"autofix-agent scan: {elf}: is an ELF executable or core dump, skipped",
        "autofix-agent scan: 1 file, 11 lines: 2 error groups, 4 errors",
    ]


def test_a_log_with_some_binary_garbage_is_still_read(tmp_path: Path) -> None:
    log = tmp_path / "shop.log"
    garbage = os.urandom(300).replace(b"\n", b"")
    info = b"2026-12-01T10:00:00.000Z INFO GET /health 200 1ms\n" * 40
    log.write_bytes(b"Error: nul \x00 byte\n    at f (/srv/a.js:1:1)\n" + garbage + b"\n" + info)
    done = _scan(str(log))
    assert json.loads(done.stdout.splitlines()[0])["message"] == "nul  byte"


@given(st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), max_size=2000))
def test_text_without_control_characters_is_never_taken_for_binary(text: str) -> None:
    data = text.encode()
    if not data.startswith((b"BZh", b"PK\x03\x04", b"SQLite format 3")):
        assert binary_kind(data) is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_large_file_read_at_a_terminal_shows_its_progress_then_clears_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "big.log"
    log.write_text("INFO request done\n" * 600_000)  # 10.3 MiB: three reads
    monkeypatch.setattr(scan, "PROGRESS_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 1 << 40)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = io.BytesIO()
    assert run_scan([str(log)], service=None, settle_seconds=30, out=out) == 0
    reading = f"\rautofix-agent scan: reading {log}: "
    assert terminal.getvalue() == (
        f"{reading}38% (4.0 of 10.3 MB)"
        f"{reading}77% (8.0 of 10.3 MB)"
        f"{reading}100% (10.3 of 10.3 MB)"
        "\r\x1b[K"
        "autofix-agent scan: 1 file, 600,000 lines: no errors found\n"
    )


def test_no_progress_line_when_stderr_is_no_terminal(tmp_path: Path) -> None:
    log = tmp_path / "small.log"
    log.write_text("INFO fine\n")
    assert _scan(str(log)).stderr == "autofix-agent scan: 1 file, 1 line: no errors found\n"
