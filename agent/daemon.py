"""``autofix-agent run``: tail every source, count occurrences, settle and relay.

One asyncio loop drives everything. Each source has its own task: a file source is woken by
watchfiles (inotify) with a slow safety rescan, so a quiet log costs no CPU; a command
source reads its command's output; an otlp source serves OTLP/HTTP and commits each
request's occurrences with the request's receipt before answering it. Each file has its
own parser; after a batch of reads, the occurrences found and the parser's safe offsets
are committed in one outbox transaction. A settle timer sleeps until the next group is due.

Nothing a source delivers can stop the agent: the parser is guarded (a line it fails on is
skipped and counted), records are made safe before they are counted, and a source task
that fails anyway is restarted with back-off from its last committed position, reported on
stderr and in the outbox for ``autofix-agent check``, while every other source goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import watchfiles

from agent.command import CommandSource
from agent.config import AgentConfig, SourceConfig
from agent.guard import GuardedAssembler
from agent.inotify import DirWatch, Unavailable
from agent.journald import CursorMarks, Entry, JournalSource
from agent.occurrence import Occurrence, occurrence_of
from agent.otlp import Delivery, Found, OtlpIntake
from agent.outbox import Outbox
from agent.problems import ProblemLog
from agent.record import ErrorRecord
from agent.redact import Redactor, env_values
from agent.starts import StartLines
from agent.tail import Chunk, FileSource, Position

RESCAN_SECONDS = 2.0
# While inotify watches the very directory of every file a source can match, a change is
# noticed the moment it happens and the rescan is only a safety net (a lost notice, a
# filesystem that sends none): it then runs this seldom, so quiet logs cost next to nothing.
# A pattern with a wildcard in its directories keeps RESCAN_SECONDS, since inotify does not
# see writes inside the subdirectories it matches.
WATCHED_RESCAN_SECONDS = 30.0
# Directories are watched with inotify where the kernel offers it (agent/inotify.py): the
# daemon wakes the moment a log grows and costs nothing while logs are quiet. Recursive
# globs, and systems without inotify, use watchfiles, which reports a change once nothing
# more changed for WATCH_STEP_MS and groups a log written without pause for at most
# WATCH_DEBOUNCE_MS; its thread wakes every step even when nothing changes.
WATCH_STEP_MS = 20
WATCH_DEBOUNCE_MS = 50
# A record at the end of a log waits detection.record_wait_seconds for more of its lines; one
# whose frames have started waits at most this long, since its stack is most likely whole.
IDLE_FLUSH_FRAMES_SECONDS = 0.05
PIPED_HEADER_WAIT_SECONDS = 0.5
PRUNE_SECONDS = 3600.0
# A failed source task is restarted after MIN_BACKOFF, doubling up to MAX_BACKOFF while it
# keeps failing; a run of STABLE_SECONDS without failure starts the back-off over.
MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
STABLE_SECONDS = 60.0
REPORT_SECONDS = 10.0


def log(message: str) -> None:
    """Operator-facing diagnostics go to stderr (journald under systemd)."""
    print(f"autofix-agent: {message}", file=sys.stderr, flush=True)


def _log_redacted(redactor: Redactor, message: str) -> None:
    """Problems quote what a source printed (a command's last stderr line, a bad line):
    redacted like records, since stderr ends up in journald and beyond."""
    log(redactor.redact(message))


def _log_problem(redactor: Redactor, service: str, problem: str) -> None:
    _log_redacted(redactor, f"{service}: {problem}")


def _where(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame: enough to file a bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    place = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{place}"


@dataclass
class _FileWatch:
    """One file source: its tailer, and what its task is told from outside."""

    source: SourceConfig
    label: str
    files: FileSource
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    failure: BaseException | None = None
    # Finds the service's start lines (None: the source's start_pattern is "").
    starts: StartLines | None = None
    # Whether inotify (not watchfiles, not nothing) is watching its directories now.
    inotify: bool = False

    def rescan_seconds(self) -> float:
        """How long the task may wait for a notice before looking at its files anyway."""
        if self.inotify and all(_directory_is_watched(p) for p in self.files.patterns):
            return WATCHED_RESCAN_SECONDS
        return RESCAN_SECONDS


def _directory_is_watched(pattern: str) -> bool:
    """Whether a change to any file ``pattern`` matches is a change in a watched directory:
    no wildcard before its last part, and that directory exists (a missing one is stood in
    for by an ancestor, which notices the directory appear but not its files change)."""
    directory = os.path.dirname(pattern)
    return not glob.has_magic(directory) and os.path.isdir(directory)


@dataclass
class _Parser:
    """One stream's parser and where its records go (``watch`` is None for commands)."""

    assembler: GuardedAssembler
    source: SourceConfig
    label: str
    watch: _FileWatch | None
    last_data: float = 0.0
    # A journald source's parser: which entry cursor its safe offset has reached.
    marks: CursorMarks | None = None


@dataclass
class _Batch:
    occurrences: list[Occurrence] = field(default_factory=list)
    positions: list[tuple[str, Position]] = field(default_factory=list)
    forget: list[tuple[str, str]] = field(default_factory=list)
    cursors: list[tuple[str, str]] = field(default_factory=list)
    starts: list[tuple[str, str]] = field(default_factory=list)  # (service, line)

    def __bool__(self) -> bool:
        return bool(
            self.occurrences or self.positions or self.forget or self.cursors or self.starts
        )


class Daemon:
    """The long-running agent: sources in, settled events out to the outbox."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.outbox = Outbox.open(config.db_path, config.host)
        self.redactor = Redactor(
            config.redaction.extra_patterns, env_values(config.redaction.values_from_env)
        )
        self.problems = ProblemLog(functools.partial(_log_redacted, self.redactor))
        self.watches: list[_FileWatch] = []
        self.commands: list[tuple[SourceConfig, CommandSource]] = []
        self.journals: list[tuple[SourceConfig, JournalSource]] = []
        self.intakes: list[OtlpIntake] = []
        for src in config.sources:
            if src.paths:
                starts = StartLines(src.start_pattern) if src.start_pattern else None
                self.watches.append(
                    _FileWatch(src, src.label, self._file_source(src), starts=starts)
                )
            elif src.otlp is not None:
                self.intakes.append(self._intake(src))
            elif src.journald is not None:
                journal = JournalSource(
                    src.service,
                    src.journald,
                    from_beginning=src.from_beginning,
                    on_problem=functools.partial(_log_problem, self.redactor, src.service),
                )
                self.journals.append((src, journal))
            else:
                command = CommandSource(
                    src.service,
                    src.command,
                    max_line_bytes=config.detection.max_line_bytes,
                    on_problem=functools.partial(_log_problem, self.redactor, src.service),
                )
                self.commands.append((src, command))
        self._parsers: dict[str, _Parser] = {}
        self._wake_settle = asyncio.Event()
        self._record_wait = config.detection.record_wait_seconds
        self._frames_wait = min(IDLE_FLUSH_FRAMES_SECONDS, self._record_wait)
        self._stop = asyncio.Event()
        self._flush_handle: asyncio.TimerHandle | None = None

    def _file_source(self, src: SourceConfig) -> FileSource:
        """A tailer that resumes from the positions committed for ``src``."""
        return FileSource(
            src.service,
            src.paths,
            self.outbox.positions(src.service),
            from_beginning=src.from_beginning,
        )

    # --- parsing -----------------------------------------------------------------------

    def _parser(
        self, key: str, source: SourceConfig, label: str, watch: _FileWatch | None
    ) -> _Parser:
        parser = self._parsers.get(key)
        if parser is None:
            assembler = GuardedAssembler(self.config.detection.max_line_bytes)
            parser = _Parser(assembler, source, label, watch)
            self._parsers[key] = parser
        return parser

    def _records(self, parser: _Parser, where: str, records: list[ErrorRecord]) -> list[Occurrence]:
        """Occurrences of ``records``, after saying what the parser had to skip."""
        skipped = parser.assembler.take_skipped()
        lost = [s for s in skipped if s.length]
        if lost:
            size = sum(s.length for s in lost)
            self.problems.report(
                parser.label,
                "unreadable",
                f"{where}: skipped {len(lost)} line(s) ({size} bytes at offset {lost[-1].offset}) "
                f"that could not be parsed: {lost[-1].reason}",
                count=len(lost),
            )
        elif skipped:
            self.problems.report(
                parser.label,
                "parser",
                f"{where}: the parser failed and re-read the input line by line "
                f"(nothing lost): {skipped[-1].reason}",
            )
        src = parser.source
        return self._occurrences(src.service, src.app_root, parser.label, records)

    def _occurrences(
        self,
        service: str,
        app_root: str | None,
        label: str,
        records: Iterable[ErrorRecord],
        host: str | None = None,
    ) -> list[Occurrence]:
        out = []
        for record in records:
            try:
                out.append(occurrence_of(service, record, self.redactor, app_root, host))
            except Exception as exc:  # a bad record must never stop the agent
                self.problems.report(
                    label, "record", f"skipped a record that could not be processed: {_where(exc)}"
                )
        return out

    def _consume(self, watch: _FileWatch, chunks: list[Chunk], batch: _Batch) -> None:
        now = time.monotonic()
        fs = watch.files
        for chunk in chunks:
            parser = self._parser(chunk.key, watch.source, watch.label, watch)
            parser.last_data = now
            records = parser.assembler.feed(chunk.data, chunk.offset)
            if chunk.final:
                records += parser.assembler.flush(eof=True)
            batch.occurrences += self._records(parser, chunk.path, records)
            if watch.starts is not None:
                for line in watch.starts.feed(chunk.key, chunk.data, final=chunk.final):
                    batch.starts.append((watch.source.service, self.redactor.redact(line)))
            pos = None if chunk.final else fs.position(chunk.key, parser.assembler.safe_offset)
            if pos is None:
                self._parsers.pop(chunk.key, None)
                batch.forget.append((watch.source.service, chunk.key))
            else:
                batch.positions.append((watch.source.service, pos))

    def _commit(self, label: str, batch: _Batch) -> None:
        """Store a batch in one transaction; a failure of the database itself raises."""
        if not batch:
            return
        refused = self.outbox.ingest(
            batch.occurrences,
            batch.positions,
            batch.forget,
            cursors=batch.cursors,
            starts=batch.starts,
        )
        if refused:
            self.problems.report(
                label,
                "not stored",
                f"{len(refused)} record(s) could not be stored and were skipped: "
                f"{refused[-1].reason}",
                count=len(refused),
            )
        if batch.occurrences:
            self._wake_settle.set()

    def pump(self, watch: _FileWatch) -> None:
        """Read everything new from one file source and commit it."""
        fs = watch.files
        while True:
            batch = _Batch()
            chunks = fs.poll()
            self._consume(watch, chunks, batch)
            self._commit(watch.label, batch)
            for problem in fs.problems():
                log(f"{watch.source.service}: {problem}")
            if not fs.more:
                break
        self._schedule_idle_flush()

    def _schedule_idle_flush(self) -> None:
        if self._flush_handle is not None:
            return
        if any(p.assembler.pending for p in self._parsers.values()):
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self._frames_wait, self._flush_idle)

    def _flush_idle(self) -> None:
        """Finish records whose stream went quiet: a stack has no end marker of its own.

        A timer callback has nobody to raise to, so a failure here is handed to the file
        source's task (which restarts from its committed positions) or reported.
        """
        self._flush_handle = None
        now = time.monotonic()
        for key, parser in list(self._parsers.items()):
            asm = parser.assembler
            if asm.pending_has_frames:
                wait = self._frames_wait
            elif parser.watch is None:
                # journald and command sources hand over one line at a time through another
                # process's pipe, which a busy host can hold back for longer than a file
                # write takes: a header waits longer there for its first frame.
                wait = max(self._record_wait, PIPED_HEADER_WAIT_SECONDS)
            else:
                wait = self._record_wait
            if not asm.pending or now - parser.last_data < wait:
                continue
            batch = _Batch()
            try:
                batch.occurrences += self._records(parser, key, asm.flush())
                if parser.watch is not None:
                    position = parser.watch.files.position(key, asm.safe_offset)
                    if position is not None:
                        batch.positions.append((parser.source.service, position))
                if parser.marks is not None:
                    cursor = parser.marks.settled(asm.safe_offset)
                    if cursor is not None:
                        batch.cursors.append((parser.label, cursor))
                self._commit(parser.label, batch)
            except Exception as exc:
                if parser.watch is not None:
                    parser.watch.failure = exc
                    parser.watch.kick.set()
                else:
                    self.problems.report(
                        parser.label, "flush", f"finishing a record failed: {_where(exc)}"
                    )
        self._schedule_idle_flush()

    # --- source tasks --------------------------------------------------------------------

    async def _supervise(
        self, label: str, body: Callable[[], Awaitable[None]], reset: Callable[[], None]
    ) -> None:
        """Run a source's task until the agent stops, restarting it with back-off whenever
        it fails (or ends, which it never should); each failure is said and recorded."""
        delay = MIN_BACKOFF
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await body()
                if self._stop.is_set():
                    return
                raise RuntimeError("the source's task ended by itself")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started >= STABLE_SECONDS:
                    delay = MIN_BACKOFF
                what = _where(exc)
                log(f"{label}: source failed ({what}); restarting it in {delay:g}s")
                try:
                    self.outbox.source_failed(label, what)
                except Exception as db_exc:
                    log(f"{label}: could not record the failure: {_where(db_exc)}")
            await self._sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
            if self._stop.is_set():
                return
            try:
                reset()
                self.outbox.source_running(label)
            except Exception as exc:
                log(f"{label}: restarting failed, will retry: {_where(exc)}")
                continue
            log(f"{label}: source restarted")

    def _reset_watch(self, watch: _FileWatch) -> None:
        """Start a file source over from what is committed, dropping its parsers."""
        for key in [k for k, p in self._parsers.items() if p.watch is watch]:
            del self._parsers[key]
        watch.files.close()
        watch.failure = None
        watch.kick.clear()
        watch.files = self._file_source(watch.source)

    def _resetter(self, watch: _FileWatch) -> Callable[[], None]:
        return functools.partial(self._reset_watch, watch)

    def _raise_failure(self, watch: _FileWatch) -> None:
        if watch.failure is not None:
            failure, watch.failure = watch.failure, None
            raise failure

    async def _watch_source(self, watch: _FileWatch) -> None:
        """One file source: pump on every change notice, every rescan and every wake-up
        a rotated file asks for; re-watch when the set of directories changes."""
        recursive = any("**" in p for p in watch.source.paths)
        while not self._stop.is_set():
            dirs = sorted(watch.files.watch_dirs())
            self.pump(watch)
            stop_watching = asyncio.Event()
            watcher = (
                asyncio.create_task(self._watch_dirs(watch, dirs, recursive, stop_watching))
                if dirs
                else None
            )
            try:
                while not self._stop.is_set():
                    wake = watch.files.wake_in
                    rescan = watch.rescan_seconds()
                    timeout = rescan if wake is None else min(rescan, wake)
                    with contextlib.suppress(asyncio.TimeoutError):
                        async with asyncio.timeout(max(timeout, 0.01)):
                            await watch.kick.wait()
                    watch.kick.clear()
                    self._raise_failure(watch)
                    self.pump(watch)
                    if watcher is None or watcher.done():
                        break
                    if sorted(watch.files.watch_dirs()) != dirs:
                        break
            finally:
                stop_watching.set()
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher

    async def _watch_dirs(
        self, watch: _FileWatch, dirs: list[str], recursive: bool, stop: asyncio.Event
    ) -> None:
        if not recursive:
            try:
                notices = DirWatch(dirs)
            except Unavailable:
                pass  # watchfiles below says what is wrong, or works where inotify cannot
            else:
                watch.inotify = True
                try:
                    with notices:
                        async for _ in notices.changes(stop):
                            watch.kick.set()
                finally:
                    # The task's wait may be a long one now: wake it to look again.
                    watch.inotify = False
                    watch.kick.set()
                return
        try:
            async for _changes in watchfiles.awatch(
                *dirs,
                watch_filter=None,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
                stop_event=stop,
                recursive=recursive,
                ignore_permission_denied=True,
            ):
                watch.kick.set()
        except (FileNotFoundError, OSError, RuntimeError) as exc:
            self.problems.report(
                watch.label,
                "watch",
                f"watching {', '.join(dirs)} failed ({exc}); rescanning every {RESCAN_SECONDS}s",
            )

    def _command_key(self, cmd: CommandSource) -> str:
        return f"cmd:{id(cmd)}"

    async def _run_command(self, src: SourceConfig, cmd: CommandSource) -> None:
        key = self._command_key(cmd)
        label = src.label
        self._parsers.pop(key, None)
        offset = 0

        def on_data(data: bytes) -> None:
            nonlocal offset
            parser = self._parser(key, src, label, None)
            parser.last_data = time.monotonic()
            records = parser.assembler.feed(data, offset)
            offset += len(data)
            self._commit(label, _Batch(occurrences=self._records(parser, src.service, records)))
            self._schedule_idle_flush()

        await cmd.run(on_data)

    async def _run_journal(self, src: SourceConfig, journal: JournalSource) -> None:
        """Follow the journal from the committed cursor; each read's counts and the cursor
        they reach are committed together."""
        label = src.label
        key = f"journal:{label}"
        self._parsers.pop(key, None)
        parser = self._parser(key, src, label, None)
        marks = parser.marks = CursorMarks()
        saved = self.outbox.cursor(label)
        start = await journal.resume(saved)
        if start is not None and start != saved:
            self._commit(label, _Batch(cursors=[(label, start)]))

        def on_entries(entries: list[Entry]) -> None:
            parser.last_data = time.monotonic()
            records: list[ErrorRecord] = []
            for entry in entries:
                if entry.data:
                    records += parser.assembler.feed(entry.data, marks.end)
                marks.fed(len(entry.data), entry.cursor)
            batch = _Batch(occurrences=self._records(parser, src.service, records))
            cursor = marks.settled(parser.assembler.safe_offset)
            if cursor is not None:
                batch.cursors.append((label, cursor))
            self._commit(label, batch)
            self._schedule_idle_flush()

        await journal.run(on_entries)

    def _intake(self, src: SourceConfig) -> OtlpIntake:
        assert src.otlp is not None
        return OtlpIntake(
            src.otlp.host,
            src.otlp.port,
            label=src.label,
            store=functools.partial(self._store_otlp, src),
            report=functools.partial(self.problems.report, src.label),
            max_line_bytes=self.config.detection.max_line_bytes,
        )

    def _store_otlp(self, src: SourceConfig, receipt: str, found: list[Found]) -> Delivery:
        """Count one OTLP request's records under its receipt, in one transaction; a
        record without ``service.name`` belongs to the source's service."""
        occurrences: list[Occurrence] = []
        for f in found:
            service = f.service or src.service
            occurrences += self._occurrences(service, src.app_root, src.label, [f.record], f.host)
        refused = self.outbox.ingest_once(receipt, occurrences)
        if refused is None:
            return Delivery(duplicate=True)
        if occurrences:
            self._wake_settle.set()
        reason = refused[-1].reason if refused else ""
        return Delivery(len(occurrences) - len(refused), len(refused), reason)

    # --- housekeeping --------------------------------------------------------------------

    async def _settle_loop(self) -> None:
        detection = self.config.detection
        while not self._stop.is_set():
            try:
                events = self.outbox.settle(detection)
            except Exception as exc:
                log(f"settling failed, will retry: {_where(exc)}")
                events = []
            for ev in events:
                summary = f"{ev.service} {ev.severity} x{ev.count}: {ev.message[:120]}"
                log(f"{ev.type} seq={ev.seq} {summary}")
            try:
                due = self.outbox.next_due(detection)
            except Exception as exc:
                log(f"settling failed, will retry: {_where(exc)}")
                due = time.time() + RESCAN_SECONDS
            timeout = None if due is None else max(0.0, due - time.time())
            self._wake_settle.clear()
            if timeout is None or timeout > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake_settle.wait()

    async def _prune_loop(self) -> None:
        while not self._stop.is_set():
            try:
                removed = self.outbox.prune(self.config)
                if removed:
                    log(f"retention removed {removed} old events")
            except Exception as exc:
                log(f"retention failed: {_where(exc)}")
            await self._sleep(PRUNE_SECONDS)

    async def _report_loop(self) -> None:
        """Say the problems that were held back by the rate limit."""
        while not self._stop.is_set():
            await self._sleep(REPORT_SECONDS)
            self.problems.flush()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
        for _, cmd in self.commands:
            cmd.stop()
        for _, journal in self.journals:
            journal.stop()

    def _source_tasks(self) -> list[asyncio.Task[None]]:
        """One supervised task per source: (label, what runs, how to start it over)."""

        def nothing() -> None:
            return None

        bodies: list[tuple[str, Callable[[], Awaitable[None]], Callable[[], None]]] = [
            (
                w.label,
                functools.partial(self._watch_source, w),
                functools.partial(self._reset_watch, w),
            )
            for w in self.watches
        ]
        bodies += [
            (src.label, functools.partial(self._run_command, src, cmd), nothing)
            for src, cmd in self.commands
        ]
        bodies += [
            (src.label, functools.partial(self._run_journal, src, journal), nothing)
            for src, journal in self.journals
        ]
        bodies += [
            (intake.label, functools.partial(intake.serve, log), nothing) for intake in self.intakes
        ]
        return [asyncio.create_task(self._supervise(*body)) for body in bodies]

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT; every committed transaction is already durable."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stop)
        log(f"running as host {self.config.host!r}, state in {self.config.state_dir}")
        for src in self.config.sources:
            log(f"source {src.label}")
        tasks = [
            asyncio.create_task(self._settle_loop()),
            asyncio.create_task(self._prune_loop()),
            asyncio.create_task(self._report_loop()),
            *self._source_tasks(),
        ]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watch in self.watches:
            watch.files.close()
        self.problems.flush()
        self.outbox.close()
        log("stopped")
