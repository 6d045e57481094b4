"""``autofix-agent scan``: one-shot analysis of existing logs, from the beginning.

It runs the same parser, redaction, fingerprint and classification as the daemon, but
keeps groups in memory and prints one JSON object per group: what the agent would report
for these logs. It writes nothing anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from agent.classify import classify
from agent.config import DetectionConfig
from agent.fingerprint import fingerprint
from agent.outbox import iso
from agent.parse import Assembler
from agent.record import ErrorRecord
from agent.redact import Redactor, redact_record

READ_SIZE = 4 << 20
# Distinct records remembered for reuse of their redaction and fingerprint; a log whose
# every error is unique just refills the memo now and then.
_MEMO_ENTRIES = 8192


@dataclass
class ScanGroup:
    """Everything scan reports about one fingerprint."""

    service: str
    fingerprint: str
    error_type: str
    message: str
    stack: list[str]
    route: str | None
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""
    bursts: int = 0
    _last_ts: float | None = field(default=None, repr=False)

    def add(self, timestamp: str | None, route: str | None, fallback: str, settle: float) -> None:
        seen = timestamp or fallback
        self.count += 1
        self.first_seen = min(self.first_seen, seen) if self.first_seen else seen
        self.last_seen = max(self.last_seen, seen)
        if route and not self.route:
            self.route = route
        ts = _epoch(seen)
        if self._last_ts is None or ts is None or ts - self._last_ts > settle:
            self.bursts += 1
        if ts is not None:
            self._last_ts = ts

    def to_json(self, detection: DetectionConfig) -> dict[str, object]:
        text = "\n".join([f"{self.error_type}: {self.message}", *self.stack])
        return {
            "fingerprint": self.fingerprint,
            "service": self.service,
            "count": self.count,
            "severity": classify(text, self.count, detection),
            "type": self.error_type,
            "message": self.message,
            "route": self.route,
            "stack": self.stack,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "bursts": self.bursts,
        }


@dataclass(frozen=True)
class _Clean:
    """What scan keeps of a record once it is redacted: the fields it reports, and its key."""

    fingerprint: str
    error_type: str
    message: str
    stack: tuple[str, ...]
    route: str | None


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        data = stream.read(READ_SIZE)
        if not data:
            return
        yield data


class Scanner:
    """Groups the errors of one or more inputs; ``problems`` says what could not be read."""

    def __init__(
        self,
        detection: DetectionConfig | None = None,
        redactor: Redactor | None = None,
        app_root: str | None = None,
    ) -> None:
        self.detection = detection or DetectionConfig()
        self.redactor = redactor or Redactor()
        self.app_root = app_root
        self.groups: dict[tuple[str, str], ScanGroup] = {}
        self.problems: list[str] = []
        self._memo: dict[tuple[object, ...], _Clean] = {}

    def scan_stream(self, stream: BinaryIO, service: str, fallback_time: str) -> None:
        assembler = Assembler(max_line_bytes=self.detection.max_line_bytes)
        offset = 0
        for data in _chunks(stream):
            self._add(service, assembler.feed(data, offset), fallback_time)
            offset += len(data)
        self._add(service, assembler.flush(), fallback_time)
        cut = getattr(assembler, "cut_lines", 0)
        if cut:
            self.problems.append(f"{service}: {cut} over-long line(s) were cut")

    def scan_path(self, path: str, service: str | None) -> None:
        if path == "-":
            self.scan_stream(
                sys.stdin.buffer, service or "stdin", iso(datetime.now(UTC).timestamp())
            )
            return
        p = Path(path)
        try:
            with p.open("rb") as fh:
                mtime = iso(p.stat().st_mtime)
                self.scan_stream(fh, service or p.name.split(".")[0] or "app", mtime)
        except IsADirectoryError:
            self.problems.append(f"{path}: is a directory, skipped")
        except OSError as exc:
            self.problems.append(f"{path}: cannot read ({exc.strerror}), skipped")

    def _add(self, service: str, records: list[ErrorRecord], fallback: str) -> None:
        settle = self.detection.settle_seconds
        for record in records:
            clean = self._clean(record)
            key = (service, clean.fingerprint)
            group = self.groups.get(key)
            if group is None:
                group = ScanGroup(
                    service=service,
                    fingerprint=clean.fingerprint,
                    error_type=clean.error_type,
                    message=clean.message,
                    stack=list(clean.stack),
                    route=clean.route,
                )
                self.groups[key] = group
            group.add(record.timestamp, clean.route, fallback, settle)

    def _clean(self, record: ErrorRecord) -> _Clean:
        """The redacted fields and fingerprint of ``record``, reused for repeated records.

        A log repeats the same few faults thousands of times with identical text, and
        redaction plus fingerprinting cost far more than parsing; both depend only on the
        fields in the key. ``raw`` is left out: scan never reports it.
        """
        key = (
            record.error_type,
            record.message,
            tuple(record.stack),
            tuple(record.frames),
            record.route,
        )
        clean = self._memo.get(key)
        if clean is None:
            redacted = redact_record(dataclasses.replace(record, raw=""), self.redactor)
            clean = _Clean(
                fingerprint=fingerprint(redacted, self.app_root),
                error_type=redacted.error_type,
                message=redacted.message,
                stack=tuple(redacted.stack),
                route=redacted.route,
            )
            if len(self._memo) >= _MEMO_ENTRIES:
                self._memo.clear()
            self._memo[key] = clean
        return clean

    def results(self) -> list[dict[str, object]]:
        ordered = sorted(self.groups.values(), key=lambda g: (g.first_seen, g.fingerprint))
        return [g.to_json(self.detection) for g in ordered]


def run_scan(
    paths: list[str],
    *,
    service: str | None,
    settle_seconds: float,
    out: BinaryIO | None = None,
) -> int:
    """Print one JSON line per error group; problems go to stderr. Exit 1 if nothing readable."""
    detection = DetectionConfig(settle_seconds=settle_seconds)
    scanner = Scanner(detection)
    for path in paths:
        scanner.scan_path(path, service)
    output = out if out is not None else sys.stdout.buffer
    for result in scanner.results():
        output.write(json.dumps(result, ensure_ascii=False).encode("utf-8") + b"\n")
    output.flush()
    for problem in scanner.problems:
        print(f"autofix-agent scan: {problem}", file=sys.stderr)
    unreadable = sum(1 for p in scanner.problems if "skipped" in p)
    return 1 if unreadable and unreadable == len(paths) else 0
