"""``autofix-agent scan``: one-shot analysis of existing logs, from the beginning.

It runs the same parser, redaction, fingerprint and classification as the daemon, but
keeps groups in memory and prints one JSON object per group: what the agent would report
for these logs. It writes nothing anywhere.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO, TextIO

from agent.classify import classify, error_text
from agent.config import DetectionConfig
from agent.fingerprint import fingerprint
from agent.guard import GuardedAssembler
from agent.parse import quiet_lines, settled_line_start
from agent.record import ErrorRecord
from agent.redact import Redactor, redact_record
from agent.sanitize import dumps
from agent.scan_report import Progress, summary, table
from agent.sniff import SNIFF_BYTES, binary_kind
from agent.wire import iso

READ_SIZE = 4 << 20
# Distinct records remembered for reuse of their redaction and fingerprint; a log whose
# every error is unique just refills the memo now and then.
_MEMO_ENTRIES = 8192
# A file this large is cut into parts read by forked processes, one per usable CPU; smaller
# ones are read in one go because starting a process costs more than it saves. A fork and
# its pickled counts cost a few milliseconds against 15-180 ms of reading per MiB: on 21 MB
# logs two parts took no more CPU than one reader and less time.
PARALLEL_MIN_BYTES = 8 << 20
_PART_MIN_BYTES = 4 << 20
_MAX_PARTS = 8
# How far past a planned cut to look for a settled line start (see settled_line_start).
_CUT_WINDOW = 1 << 20
# A file this large read at a terminal shows how far it has got.
PROGRESS_MIN_BYTES = 64 << 20


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
    _first_ts: float | None = field(default=None, repr=False)
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
            if self._first_ts is None:
                self._first_ts = ts
            self._last_ts = ts

    def merge_later(self, later: ScanGroup, settle: float) -> None:
        """Take in what a later part of the input counted for this group.

        The result is what :meth:`add` would have built from both parts' occurrences in
        order: the later part counted its first timed occurrence as a new burst because it
        could not see this part's last one, so that burst is taken back when it was not.
        """
        self.count += later.count
        if later.first_seen:
            self.first_seen = (
                min(self.first_seen, later.first_seen) if self.first_seen else later.first_seen
            )
        self.last_seen = max(self.last_seen, later.last_seen)
        if not self.route:
            self.route = later.route
        self.bursts += later.bursts
        if (
            self._last_ts is not None
            and later._first_ts is not None
            and not later._first_ts - self._last_ts > settle
        ):
            self.bursts -= 1
        if self._first_ts is None:
            self._first_ts = later._first_ts
        if later._last_ts is not None:
            self._last_ts = later._last_ts

    def to_json(self, detection: DetectionConfig) -> dict[str, object]:
        text = error_text(self.error_type, self.message, self.stack)
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
    """What scan keeps of a record once it is redacted: the fields it reports but the
    route, and its key."""

    fingerprint: str
    error_type: str
    message: str
    stack: tuple[str, ...]


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_Groups = dict[tuple[str, str], ScanGroup]


@dataclass
class _Part:
    """What one stretch ``[start, end)`` of one input counted, to be merged in file order.

    A part reads on past its planned end, to the end of the input, when its parser was not
    idle there; the parts after it are then left out.
    """

    start: int
    end: int
    at_eof: bool
    groups: _Groups
    cut_lines: int
    lines: int
    skipped: list[str] = field(default_factory=list)


class _RememberingRedactor(Redactor):
    """A redactor that remembers its answers for recent texts.

    Redaction is a pure function of the text, and stack lines and messages repeat across
    records that differ elsewhere (route, number of frames), so most calls are repeats.
    """

    _ENTRIES = 16384
    _MAX_CHARS = 4096

    def __init__(self, inner: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self._memo: dict[str, str] = {}

    def redact(self, text: str) -> str:
        if not isinstance(text, str) or len(text) > self._MAX_CHARS:
            return self._inner.redact(text)
        clean = self._memo.get(text)
        if clean is None:
            clean = self._inner.redact(text)
            if len(self._memo) >= self._ENTRIES:
                self._memo.clear()
            self._memo[text] = clean
        return clean


class _Positional:
    """Reads a file descriptor from a given offset with ``pread``.

    Forked processes share the file offset of descriptors they inherit, so plain reads
    from several of them would interleave; positional reads leave the offset alone.
    """

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._offset = offset

    def read(self, size: int) -> bytes:
        data = os.pread(self._fd, size, self._offset)
        self._offset += len(data)
        return data

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes from ``offset``, leaving the reading position where it is."""
        return os.pread(self._fd, size, offset)


def _unpickle_part(payload: bytes) -> _Part | None:
    """A child's counts, or None when what came through the pipe is not a whole part."""
    import pickle  # here, not at the top: only a file read in parts needs it

    try:
        part = pickle.loads(payload)
    except Exception:
        return None
    return part if isinstance(part, _Part) else None


def _collect(children: list[tuple[int, int]]) -> list[_Part | None]:
    """Each child's part in order, None for a child that failed; waits for all of them."""
    parts: list[_Part | None] = []
    for pid, read_fd in children:
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        parts.append(_unpickle_part(payload) if status == 0 else None)
    return parts


def _idle_at(stream: BinaryIO | _Positional, assembler: GuardedAssembler, stop: int | None) -> bool:
    """Whether a parser stopped at ``stop`` holds nothing that what follows could change.

    It is idle when no record is open and every byte before ``stop`` is done with, or when
    all it keeps back are quiet lines: the line splitter keeps the last line it passed over
    (a frame in the next write would make it a header), and a quiet line is no header
    whatever follows. Parts are cut after two quiet lines, so this is the usual case.
    """
    if assembler.pending or stop is None:
        return False
    safe = assembler.safe_offset
    if safe == stop:
        return True
    if not isinstance(stream, _Positional) or not 0 < stop - safe <= _CUT_WINDOW:
        return False
    return quiet_lines(stream.read_at(safe, stop - safe))


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
        self.unreadable = 0
        self.files = 0  # inputs read (files, stdin)
        self.lines = 0
        # Where to show how far a large file has got (a terminal), or None.
        self.progress_to: TextIO | None = None
        self._progress: Progress | None = None
        self._memo: dict[tuple[object, ...], _Clean] = {}
        self._redactor = _RememberingRedactor(self.redactor)

    def scan_stream(self, stream: BinaryIO, service: str, fallback_time: str) -> None:
        self.files += 1
        self._merge(service, [self._read_part(stream, service, fallback_time, 0, None)])

    def scan_path(self, path: str, service: str | None) -> None:
        if path == "-":
            self.scan_stream(
                sys.stdin.buffer, service or "stdin", iso(datetime.now(UTC).timestamp())
            )
            return
        p = Path(path)
        try:
            with p.open("rb") as fh:
                stat = os.fstat(fh.fileno())
                if S_ISREG(stat.st_mode):
                    kind = binary_kind(os.pread(fh.fileno(), SNIFF_BYTES, 0))
                    if kind is not None:
                        self.unreadable += 1
                        self.problems.append(f"{path}: is {kind}, skipped")
                        return
                mtime = iso(stat.st_mtime)
                name = service or p.name.split(".")[0] or "app"
                parts = self._part_count(stat)
                if self.progress_to is not None and stat.st_size >= PROGRESS_MIN_BYTES:
                    self._progress = Progress(self.progress_to, path, stat.st_size)
                try:
                    if parts > 1:
                        self.files += 1
                        read = self._read_parallel(fh, name, mtime, stat.st_size, parts)
                        self._merge(name, read)
                    else:
                        self.scan_stream(fh, name, mtime)
                finally:
                    if self._progress is not None:
                        self._progress.clear()
                    self._progress = None
        except IsADirectoryError:
            self.unreadable += 1
            self.problems.append(f"{path}: is a directory, skipped")
        except OSError as exc:
            self.unreadable += 1
            self.problems.append(f"{path}: cannot read ({exc.strerror}), skipped")

    def _part_count(self, stat: os.stat_result) -> int:
        if not S_ISREG(stat.st_mode) or stat.st_size < PARALLEL_MIN_BYTES:
            return 1
        if not hasattr(os, "fork"):
            return 1
        return max(1, min(_usable_cpus(), _MAX_PARTS, stat.st_size // _PART_MIN_BYTES))

    def _read_part(
        self,
        stream: BinaryIO | _Positional,
        service: str,
        fallback: str,
        start: int,
        stop: int | None,
    ) -> _Part:
        """Parse ``stream`` (positioned at ``start``) up to ``stop``, or to its end.

        At ``stop`` the parser must be idle, with nothing held back, for the next part,
        which started afresh there, to be right; otherwise this part reads on to the end.
        """
        groups: _Groups = {}
        assembler = GuardedAssembler(self.detection.max_line_bytes)
        offset = start
        at_eof = False
        lines = 0
        last = b"\n"
        progress = self._progress if start == 0 else None

        def feed(data: bytes) -> None:
            nonlocal offset, lines, last
            self._add(groups, service, assembler.feed(data, offset), fallback)
            offset += len(data)
            lines += data.count(b"\n")
            last = data[-1:]
            if progress is not None:
                # Parts are read at once, so this part's share done is the file's.
                progress.update(offset if stop is None else offset * progress.size // stop)

        while stop is None or offset < stop:
            data = stream.read(READ_SIZE if stop is None else min(READ_SIZE, stop - offset))
            if not data:
                at_eof = True
                break
            feed(data)
        if not at_eof and not _idle_at(stream, assembler, stop):
            while data := stream.read(READ_SIZE):
                feed(data)
            at_eof = True
        if at_eof:
            self._add(groups, service, assembler.flush(), fallback)
            if last != b"\n":
                lines += 1  # the last line, without its newline
        skipped = [
            f"{s.length} bytes at offset {s.offset} could not be parsed, skipped ({s.reason})"
            if s.length
            else f"the parser failed at offset {s.offset} and re-read line by line ({s.reason})"
            for s in assembler.take_skipped()
        ]
        return _Part(start, offset, at_eof, groups, assembler.cut_lines, lines, skipped)

    def _cuts(self, stream: BinaryIO, size: int, parts: int) -> list[int]:
        """Where the parts start: line starts near equal shares, after two quiet lines."""
        cuts = [0]
        for k in range(1, parts):
            target = size * k // parts
            stream.seek(target)
            window = stream.read(_CUT_WINDOW)
            first = window.find(b"\n") + 1
            if not first:
                continue
            settled = settled_line_start(window, first)
            cut = target + (settled if settled != -1 else first)
            if cuts[-1] < cut < size:
                cuts.append(cut)
        return cuts

    def _read_parallel(
        self, stream: BinaryIO, service: str, fallback: str, size: int, parts: int
    ) -> list[_Part]:
        """Read the parts of a large file at once, this process taking the first one.

        Each other part goes to a forked child that sends its counts back pickled through a
        pipe. A part whose child failed is read here instead, so the result never depends
        on whether forking worked.
        """
        cuts = self._cuts(stream, size, parts)
        bounds = list(zip(cuts, [*cuts[1:], None], strict=True))
        fd = stream.fileno()
        children: list[tuple[int, int]] = []
        for start, stop in bounds[1:]:
            try:
                read_fd, write_fd = os.pipe()
            except OSError:
                break
            try:
                pid = os.fork()
            except OSError:
                os.close(read_fd)
                os.close(write_fd)
                break
            if pid == 0:  # pragma: no cover - runs in the child
                os.close(read_fd)
                self._child(write_fd, fd, service, fallback, start, stop)
            os.close(write_fd)
            children.append((pid, read_fd))
        try:
            first = self._read_part(_Positional(fd, 0), service, fallback, 0, bounds[0][1])
        finally:
            # Reaped even when reading here failed, so no child is left behind.
            results: list[_Part | None] = [None, *_collect(children)]
        results[0] = first
        results += [None] * (len(bounds) - len(results))
        done: list[_Part] = []
        expected = 0
        for (start, stop), part in zip(bounds, results, strict=True):
            if done and done[-1].at_eof:
                break
            if part is None and start == expected:
                part = self._read_part(_Positional(fd, start), service, fallback, start, stop)
            if part is not None:
                done.append(part)
                expected = part.end
        return done

    def _child(
        self, write_fd: int, fd: int, service: str, fallback: str, start: int, stop: int | None
    ) -> None:  # pragma: no cover - runs in the child
        code = 1
        try:
            part = self._read_part(_Positional(fd, start), service, fallback, start, stop)
            import pickle

            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)

    def _merge(self, service: str, parts: list[_Part]) -> None:
        settle = self.detection.settle_seconds
        expected = parts[0].start
        cut = 0
        for part in parts:
            if part.start != expected:
                continue  # an earlier part read on over this one
            for key, group in part.groups.items():
                mine = self.groups.get(key)
                if mine is None:
                    self.groups[key] = group
                else:
                    mine.merge_later(group, settle)
            cut += part.cut_lines
            self.lines += part.lines
            self.problems += [f"{service}: {problem}" for problem in part.skipped]
            expected = part.end
            if part.at_eof:
                break
        if cut:
            self.problems.append(f"{service}: {cut} over-long line(s) were cut")

    def _add(
        self, groups: _Groups, service: str, records: list[ErrorRecord], fallback: str
    ) -> None:
        settle = self.detection.settle_seconds
        redact = self._redactor.redact
        for record in records:
            clean = self._clean(record)
            route = None if record.route is None else redact(record.route)
            key = (service, clean.fingerprint)
            group = groups.get(key)
            if group is None:
                group = ScanGroup(
                    service=service,
                    fingerprint=clean.fingerprint,
                    error_type=clean.error_type,
                    message=clean.message,
                    stack=list(clean.stack),
                    route=route,
                )
                groups[key] = group
            group.add(record.timestamp, route, fallback, settle)

    def _clean(self, record: ErrorRecord) -> _Clean:
        """The redacted fields and fingerprint of ``record``, reused for repeated records.

        A log repeats the same few faults thousands of times with identical text, and
        redaction plus fingerprinting cost far more than parsing; both depend only on the
        fields in the key. The route varies most (ids in paths) and takes no part in the
        fingerprint, so it is redacted on its own; ``raw`` is left out: scan never
        reports it.
        """
        key = (record.error_type, record.message, tuple(record.stack), tuple(record.frames))
        clean = self._memo.get(key)
        if clean is None:
            redacted = redact_record(
                dataclasses.replace(record, raw="", route=None), self._redactor
            )
            clean = _Clean(
                fingerprint=fingerprint(redacted, self.app_root),
                error_type=redacted.error_type,
                message=redacted.message,
                stack=tuple(redacted.stack),
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
    output_format: str | None = None,
    out: BinaryIO | None = None,
) -> int:
    """Report the error groups of ``paths``; problems and a summary go to stderr.

    ``output_format`` is ``json`` (one JSON object per group, per line) or ``table``; by
    default a table when stdout is a terminal, JSON otherwise. Exit 1 if nothing was
    readable.
    """
    detection = DetectionConfig(settle_seconds=settle_seconds)
    scanner = Scanner(detection)
    if sys.stderr.isatty():
        scanner.progress_to = sys.stderr
    for path in paths:
        scanner.scan_path(path, service)
    output = out if out is not None else sys.stdout.buffer
    results = scanner.results()
    if output_format is None:
        output_format = "table" if output.isatty() else "json"
    if output_format == "table":
        if results:
            width = shutil.get_terminal_size().columns
            output.write(table(results, width).encode("utf-8", "replace"))
    else:
        for result in results:
            output.write(dumps(result, compact=False).encode("utf-8") + b"\n")
    output.flush()
    for problem in scanner.problems:
        print(f"autofix-agent scan: {problem}", file=sys.stderr)
    if scanner.files:
        found = summary(scanner.files, scanner.lines, results)
        print(f"autofix-agent scan: {found}", file=sys.stderr)
    return 1 if scanner.unreadable and scanner.unreadable == len(paths) else 0
