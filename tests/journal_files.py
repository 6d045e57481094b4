"""Real journal files for tests: entries in the journal export format, written by
``systemd-journal-remote`` (no journald daemon runs on a test machine) and read back by
the real ``journalctl --file``."""

from __future__ import annotations

import itertools
import struct
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

_BOOT_ID = "5c1f0a8e6b2d4f3a9e7c1b0d2f4a6c8e"
_monotonic = itertools.count(1_000_000)


def _field(name: str, value: str | bytes) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    # A value with a newline (or any binary) uses the length-prefixed form.
    if b"\n" in data or any(b < 0x20 and b != 0x09 for b in data) or b"\xff" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def export(entries: Iterable[Mapping[str, str | bytes]]) -> bytes:
    """The journal export format of ``entries`` (each a field -> value mapping)."""
    out = b""
    for entry in entries:
        fields = {
            "__REALTIME_TIMESTAMP": str(int(time.time() * 1e6)),
            "__MONOTONIC_TIMESTAMP": str(next(_monotonic)),
            "_BOOT_ID": _BOOT_ID,
            **entry,
        }
        out += b"".join(_field(k, v) for k, v in fields.items()) + b"\n"
    return out


def unit_entries(unit: str, lines: Iterable[str | bytes]) -> list[dict[str, str | bytes]]:
    """One entry per line, as journald stores what a service writes to stdout."""
    return [
        {"_SYSTEMD_UNIT": unit, "SYSLOG_IDENTIFIER": unit.split(".")[0], "MESSAGE": line}
        for line in lines
    ]


def trace_lines(name: str, i: int) -> list[str]:
    """A Node.js error with its stack, as the lines a service writes."""
    return [
        f"TypeError: {name} failed for order {i}",
        f"    at {name} (/srv/billing/src/{name}.js:{i % 9 + 1}:7)",
        "    at Layer.handle (/srv/billing/node_modules/express/lib/router/layer.js:95:5)",
    ]


def append(
    journal_remote: str, journal: Path, entries: Iterable[Mapping[str, str | bytes]]
) -> None:
    """Append ``entries`` to the journal file ``journal`` (created if missing)."""
    subprocess.run(
        [journal_remote, f"--output={journal}", "-"],
        input=export(entries),
        check=True,
        capture_output=True,
        timeout=60,
    )
