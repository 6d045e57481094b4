"""``autofix-agent stream``: the read side of the outbox, printed as wire lines on stdout.

It is what the console runs over SSH. It only reads the state database (the ``run`` daemon
is the single writer), prints a hello, every stored event after ``--since``, then new
events as they are committed, and a heartbeat every few seconds. It exits cleanly when
its reader goes away: a broken pipe on stdout, or end of file on a piped stdin.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import watchfiles

from agent import __version__
from agent.config import AgentConfig
from agent.inotify import DirWatch, Unavailable
from agent.outbox import OutboxReader
from agent.wire import PROTOCOL_VERSION, Heartbeat, Hello, encode, iso, with_seq

# The stream sleeps until the state directory changes (the daemon committed something), so
# an event goes out as soon as it is stored: on inotify where the kernel offers it (looking
# whether the reader went away every GONE_CHECK_SECONDS), else on watchfiles, which reports
# a change once nothing more changed for WATCH_STEP_MS and groups a burst for at most
# WATCH_DEBOUNCE_MS.
GONE_CHECK_SECONDS = 0.25
WATCH_STEP_MS = 4
WATCH_DEBOUNCE_MS = 20
# A notice can come before the commit behind it is visible: SQLite writes a transaction's
# last WAL frame (which sends the notice) before it publishes the commit in the WAL index,
# a shared memory map (which sends none). So after each notice the database is looked at
# again after each of these pauses, unless another notice comes first; otherwise such a
# commit would wait for the next GONE_CHECK_SECONDS tick.
RECHECK_SECONDS = (0.002, 0.005, 0.01, 0.02, 0.05)
# Where the directory cannot be watched (it does not exist yet, or inotify refuses), the
# database is looked at this often instead.
POLL_SECONDS = 0.02


MAX_SEQ = 2**63 - 1  # SQLite's largest integer: no stored seq can be beyond it
_SHOWN_CHARS = 40


class StreamRefused(ValueError):
    """The SSH client asked for something other than ``stream [--since N]``."""


def shown(text: str) -> str:
    """``text`` quoted for a one-line message, cut when it is long (it came from outside)."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def parse_since(text: str) -> int:
    """A ``--since`` value: ASCII digits only, at most ``MAX_SEQ``; StreamRefused otherwise.

    ``str.isdigit`` and ``int`` accept far more (superscripts, other scripts' digits,
    signs, underscores, a number too long to convert), and a seq beyond SQLite's integers
    cannot be compared with stored ones.
    """
    if not text or len(text) > len(str(MAX_SEQ)) or not text.isascii() or not text.isdigit():
        raise StreamRefused(
            f"--since must be a whole number from 0 to {MAX_SEQ} in ASCII digits, not {shown(text)}"
        )
    value = int(text)
    if value > MAX_SEQ:
        raise StreamRefused(f"--since must be at most {MAX_SEQ}, not {text}")
    return value


def since_from_ssh_command(original: str, config_path: str | None) -> int:
    """Parse ``SSH_ORIGINAL_COMMAND`` under a forced command, refusing anything but a stream.

    The forced command is the only thing the key may run; the client chooses only where
    the stream starts. ``--config`` is accepted only when it names the forced config.
    """
    try:
        words = shlex.split(original)
    except ValueError as exc:
        raise StreamRefused(f"cannot parse the requested command: {exc}") from None
    if words and os.path.basename(words[0]) == "autofix-agent":
        words = words[1:]
    if not words or words[0] != "stream":
        raise StreamRefused(f"this key may only run 'autofix-agent stream', not {shown(original)}")
    since = 0
    rest = words[1:]
    while rest:
        word = rest.pop(0)
        value: str | None
        if "=" in word and word.startswith("--"):
            word, value = word.split("=", 1)
        else:
            value = rest.pop(0) if rest else None
        if value is None:
            raise StreamRefused(f"{shown(word)} needs a value")
        if word == "--since":
            since = parse_since(value)
        elif word == "--config" and config_path is not None and value == config_path:
            continue
        else:
            raise StreamRefused(f"option {shown(word)} is not allowed for this key")
    return since


def _sources(config: AgentConfig) -> list[str]:
    return [src.label for src in config.sources]


class _Changes:
    """Waits for the next change in the state directory, or at most ``tick`` seconds (a
    quarter of the heartbeat interval, so a heartbeat is never late by more than that)."""

    def __init__(self, directory: Path, gone: threading.Event, tick: float) -> None:
        self._directory = directory
        self._gone = gone
        self._tick = tick
        self._watch: Iterator[set[Any]] | None = None
        self._notices: DirWatch | None = None
        self._inotify = True
        self._failed = False
        self._rechecks: list[float] = []

    def wait(self, seconds: float) -> None:
        if self._notices is None and self._inotify and self._directory.is_dir():
            try:
                self._notices = DirWatch([self._directory])
            except Unavailable:
                self._inotify = False  # watchfiles below, or polling
            else:
                # A last look at the database follows, so nothing stored before the watch
                # began is missed.
                return
        if self._notices is not None:
            limit = min(seconds, GONE_CHECK_SECONDS)
            if self._rechecks:
                limit = min(limit, self._rechecks.pop(0))
            if self._notices.wait(limit):
                self._rechecks = list(RECHECK_SECONDS)
            return
        if self._watch is None and not self._failed and self._directory.is_dir():
            self._watch = watchfiles.watch(
                self._directory,
                watch_filter=None,
                step=WATCH_STEP_MS,
                debounce=WATCH_DEBOUNCE_MS,
                rust_timeout=max(1, int(self._tick * 1000)),
                yield_on_timeout=True,
                stop_event=self._gone,
                ignore_permission_denied=True,
            )
        if self._watch is None:
            self._gone.wait(min(seconds, POLL_SECONDS))
            return
        try:
            next(self._watch, None)
        except (OSError, RuntimeError) as exc:
            print(
                f"autofix-agent stream: cannot watch {self._directory} ({exc}); "
                f"looking every {POLL_SECONDS}s instead",
                file=sys.stderr,
                flush=True,
            )
            self._watch, self._failed = None, True


def _watch_stdin(gone: threading.Event) -> None:
    """Mark the reader as gone when a piped stdin reaches end of file."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        gone.set()

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def run_stream(
    config: AgentConfig,
    since: int,
    out: BinaryIO | None = None,
    *,
    stop: threading.Event | None = None,
    watch_stdin: bool = True,
) -> int:
    """Print the stream until the reader goes away (or ``stop`` is set); returns exit code."""
    output = out if out is not None else sys.stdout.buffer
    gone = stop if stop is not None else threading.Event()
    if watch_stdin:
        _watch_stdin(gone)
    reader = OutboxReader(config.db_path)
    changes = _Changes(config.db_path.parent, gone, config.stream.heartbeat_seconds / 4)
    waiting_reported = False

    def emit(line: str) -> None:
        output.write(line.encode("utf-8") + b"\n")

    try:
        first, last = reader.bounds()
        emit(
            encode(
                Hello(
                    protocol=PROTOCOL_VERSION,
                    agent_version=__version__,
                    host=config.host,
                    sources=_sources(config),
                    first_seq=first,
                    last_seq=last,
                    instance=reader.instance(),
                )
            )
        )
        output.flush()
        cursor = since
        version = None
        next_beat = time.monotonic() + config.stream.heartbeat_seconds
        while not gone.is_set():
            current = reader.data_version()
            if current == -1 and not waiting_reported:
                print(
                    f"autofix-agent stream: no state database at {config.db_path} yet; "
                    "waiting for 'autofix-agent run' to create it",
                    file=sys.stderr,
                    flush=True,
                )
                waiting_reported = True
            if current != version:
                version = current
                while True:
                    rows = list(reader.events_after(cursor))
                    for seq, payload in rows:
                        emit(with_seq(payload, seq))
                        cursor = seq
                    if rows:
                        output.flush()
                    if len(rows) < 1000:
                        break
            now = time.monotonic()
            if now >= next_beat:
                _, last = reader.bounds()
                emit(encode(Heartbeat(host=config.host, last_seq=last, time=iso(time.time()))))
                output.flush()
                next_beat = now + config.stream.heartbeat_seconds
            changes.wait(max(0.0, next_beat - time.monotonic()))
    except BrokenPipeError:
        # The reader went away: that is the normal end of a stream.
        # Point stdout at /dev/null so the interpreter's exit-time flush stays quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), output.fileno())
        return 0
    finally:
        reader.close()
    return 0
