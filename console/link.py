"""The console's live link to each prod agent's event stream, over SSH or as a local process.

A link runs ``<agent_command> --since N`` (N is the last seq the console has stored for the
host, asked again on every reconnect), reads the stream a chunk at a time and hands the
chunk's error/update events, each with the line it arrived as
(:class:`console.storable.Received`), to the engine in one call before reading on. Because
the store is idempotent on (host, seq) and ``--since`` resumes after the stored seq, a
dropped connection loses nothing and a replayed event is harmless.

Failures are sorted by who can fix them:

- the network or the agent went away: reconnect with exponential backoff and jitter;
- the host key is unknown or changed, or the key is refused: a person has to act, so the
  link shows an ``error`` and tries again only after a long pause;
- the agent speaks another protocol version: the link stops with a clear error.

Bad lines never end a link: they are reported with a short excerpt and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import orjson

from agent.wire import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    ErrorEvent,
    Event,
    Heartbeat,
    Hello,
    Start,
    UnknownLineType,
    WireError,
    decode,
    well_formed_event,
)
from console.storable import Received
from console.transport import READ_CHUNK_BYTES, NeedsPerson, Retry, Stream, open_stream

if TYPE_CHECKING:
    from console.config import HostConfig

log = logging.getLogger(__name__)

EXCERPT_CHARS = 120
# Wire lines nest two levels (an event holding its stack list); the JSON decoder recurses
# once per level, so a hostile line of 200,000 '[' would end the session with a
# RecursionError if it reached the decoder.
MAX_NESTING = 32

LinkState = Literal["connecting", "connected", "reconnecting", "error", "stopped"]


@dataclass(frozen=True)
class LinkTiming:
    """How patient a link is. The defaults suit a prod agent heartbeating every 5 s.

    ``silence_seconds`` applies once the agent has said hello; before that the agent is
    still starting (an interpreter and its imports on a loaded host can take longer than
    any heartbeat gap), so a fresh connection gets ``hello_seconds`` for its first line.
    """

    silence_seconds: float = 20.0
    hello_seconds: float = 60.0
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    healthy_after_seconds: float = 60.0
    needs_person_retry_seconds: float = 600.0
    stop_grace_seconds: float = 3.0


@dataclass(frozen=True)
class LinkStatus:
    """A snapshot of one link for the UI and the notifier.

    ``last_line_at`` is wall-clock time, so the lag keeps growing in a display even when no
    new status arrives.
    """

    host: str
    state: LinkState
    attempt: int = 0
    last_seq: int | None = None
    last_line_at: float | None = None
    next_retry_seconds: float | None = None
    error: str | None = None
    agent_version: str | None = None
    instance: str | None = None

    @property
    def lag_seconds(self) -> float | None:
        """Seconds since the last line arrived; a rising lag on a connected link is a warning."""
        if self.last_line_at is None:
            return None
        return max(0.0, time.time() - self.last_line_at)


@dataclass(frozen=True)
class LinkProblem:
    """A line from a host that was not valid protocol, reported and then skipped."""

    host: str
    message: str
    excerpt: str


# Relayed errors and updates (with their wire lines) and service starts the agent saw, in
# stream order: the events of one chunk of the stream at a time, so a flood costs the
# event loop one call per chunk rather than one per line.
EventCallback = Callable[[str, list[Received | Start]], Awaitable[None] | None]
StatusCallback = Callable[[LinkStatus], None]
ProblemCallback = Callable[[LinkProblem], None]
HelloCallback = Callable[[str, Hello], Awaitable[None] | None]
SinceGetter = Callable[[], Awaitable[int] | int]


class _Fatal(Exception):
    """The link must not go on at all (the agent speaks another protocol)."""


def backoff_delay(attempt: int, timing: LinkTiming, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter, so many links that dropped together do not reconnect
    in lockstep and hammer a host that just came back."""
    rng = rng or random.Random()
    base = timing.backoff_initial_seconds * 2 ** max(0, attempt - 1)
    base = min(base, timing.backoff_max_seconds)
    jittered = base * (0.75 + 0.5 * rng.random())
    return max(timing.backoff_initial_seconds, min(timing.backoff_max_seconds, jittered))


def excerpt(data: bytes | str) -> str:
    """A short, printable piece of a hostile line, safe to show in a status bar or a log."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.rstrip("\r\n")
    short = text[:EXCERPT_CHARS]
    shown = repr(short)
    return shown + ("..." if len(text) > EXCERPT_CHARS else "")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def nested_too_deep(line: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether the arrays and objects of a JSON line nest deeper than ``limit``.

    Brackets inside strings do not count. An ordinary line costs two C-level byte counts;
    only a line with many brackets is scanned.
    """
    if line.count(b"[") + line.count(b"{") <= limit:
        return False
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub(b'""', line)):
        if match.group(0) in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def decode_line(line: bytes) -> Event:
    """One stream line as a wire event, with size and nesting bounded before decoding.

    orjson parses the usual well-formed event several times faster than the standard
    library; whatever it or :func:`agent.wire.well_formed_event` does not accept as it is
    goes through :func:`agent.wire.decode`, so a bad line is refused in the wire's words.
    """
    if len(line) > MAX_LINE_BYTES:
        raise WireError(f"line of {len(line)} bytes exceeds the {MAX_LINE_BYTES} byte limit")
    if nested_too_deep(line):
        raise WireError(f"JSON nested deeper than {MAX_NESTING} levels")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    if type(obj) is dict:
        event = well_formed_event(obj)
        if event is not None:
            return event
    return decode(line)


class LineSplitter:
    """Cuts a byte stream into lines of at most ``MAX_LINE_BYTES``.

    asyncio's own readline gives up at 64 KiB; an agent may legitimately send a long stack.
    A longer line than the limit is dropped (and reported once) instead of eating memory.
    """

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._discarding = False
        self.oversized: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete lines in ``chunk`` (without newlines); a partial tail waits for more."""
        lines: list[bytes] = []
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                self._append(chunk[start:])
                return lines
            piece = chunk[start:newline]
            if self._discarding:
                self._discarding = False
            elif len(self._buffer) + len(piece) > self._limit:
                self.oversized.append(bytes(self._buffer[:EXCERPT_CHARS]))
                self._buffer.clear()
            else:
                self._buffer.extend(piece)
                lines.append(bytes(self._buffer))
                self._buffer.clear()
            start = newline + 1

    def _append(self, piece: bytes) -> None:
        if self._discarding:
            return
        if len(self._buffer) + len(piece) > self._limit:
            self.oversized.append(bytes((self._buffer + piece)[:EXCERPT_CHARS]))
            self._buffer.clear()
            self._discarding = True
            return
        self._buffer.extend(piece)

    def unfinished(self) -> bytes:
        """What came after the last newline: all a stream that ended mid-line said last."""
        return bytes(self._buffer)


def _hello_protocol(line: bytes) -> int | None:
    """The protocol number of a hello line, even one this side cannot decode."""
    if len(line) > MAX_LINE_BYTES or nested_too_deep(line):
        return None
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict) and obj.get("type") == "hello":
        protocol = obj.get("protocol")
        return protocol if isinstance(protocol, int) else None
    return None


@dataclass
class _Session:
    """What one connection has seen so far."""

    hello: Hello | None = None
    connected_at: float | None = None
    since: int = 0

    def healthy_for(self) -> float:
        return 0.0 if self.connected_at is None else time.monotonic() - self.connected_at


class AgentLink:
    """One host's stream, kept alive until :meth:`stop` or a protocol mismatch.

    ``since`` is asked on every (re)connect, so resuming always starts right after what the
    engine has really stored, not after what this link last saw. ``on_hello`` sees each
    connection's hello before any event: its ``instance`` changes when the agent's state was
    wiped and seqs restarted, which only the engine's store can reconcile. If ``on_events``
    raises, its events count as not stored and the link reconnects to have them sent again.
    """

    def __init__(
        self,
        host: HostConfig,
        *,
        since: SinceGetter,
        on_events: EventCallback,
        on_status: StatusCallback | None = None,
        on_problem: ProblemCallback | None = None,
        on_hello: HelloCallback | None = None,
        timing: LinkTiming | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self._since = since
        self._on_events = on_events
        self._on_status = on_status
        self._on_problem = on_problem
        self._on_hello = on_hello
        self.timing = timing or LinkTiming()
        self._rng = rng or random.Random()
        self._status = LinkStatus(host=host.name, state="stopped")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unknown_types: set[str] = set()

    @property
    def status(self) -> LinkStatus:
        """The latest snapshot, for a UI that polls instead of listening to ``on_status``."""
        return self._status

    def start(self) -> asyncio.Task[None]:
        """Run the link in the background on the current loop."""
        self._stopping = False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"agent-link-{self.host.name}")
        return self._task

    async def stop(self) -> None:
        """Close the channel or process and end :meth:`run`; leaves no process behind."""
        self._stopping = True
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        """Keep the stream going; returns only after a protocol mismatch or on cancellation."""
        if self._task is None:
            self._task = asyncio.current_task()
        attempt = 0
        try:
            while True:
                attempt += 1
                self._set(state="connecting", attempt=attempt, next_retry_seconds=None)
                session = _Session()
                try:
                    await self._session(session)
                except _Fatal as exc:
                    log.error("link to %s stopped: %s", self.host.name, exc)
                    self._set(state="error", error=str(exc), next_retry_seconds=None)
                    return
                except NeedsPerson as exc:
                    delay = self.timing.needs_person_retry_seconds
                    log.error("link to %s needs attention: %s", self.host.name, exc)
                    self._set(state="error", error=str(exc), next_retry_seconds=delay)
                    await asyncio.sleep(delay)
                    continue
                except Retry as exc:
                    error = str(exc)
                except Exception as exc:
                    log.exception("link to %s failed", self.host.name)
                    error = f"{type(exc).__name__}: {exc}"
                if self._stopping:
                    # stop() ended the stream; a cancellation lost on the way must not
                    # turn into a reconnect that nobody waits for.
                    return
                if session.healthy_for() >= self.timing.healthy_after_seconds:
                    attempt = 1
                delay = backoff_delay(attempt, self.timing, self._rng)
                log.warning("link to %s: %s; retrying in %.1f s", self.host.name, error, delay)
                self._set(
                    state="reconnecting", attempt=attempt, error=error, next_retry_seconds=delay
                )
                await asyncio.sleep(delay)
        finally:
            if self._status.state != "error" or self._status.next_retry_seconds is not None:
                self._set(state="stopped", next_retry_seconds=None)

    async def _session(self, session: _Session) -> None:
        seq = self._since()
        if inspect.isawaitable(seq):
            seq = await seq
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise Retry(f"since() gave {seq!r}; expected a seq >= 0")
        session.since = seq
        self._set(last_seq=seq)
        stream = await self._open(seq)
        try:
            await self._pump(stream, session)
        finally:
            await stream.close()

    async def _open(self, seq: int) -> Stream:
        return await open_stream(self.host, seq, self.timing.stop_grace_seconds)

    async def _pump(self, stream: Stream, session: _Session) -> None:
        splitter = LineSplitter()
        while True:
            started = session.hello is not None
            limit = self.timing.silence_seconds if started else self.timing.hello_seconds
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
                # cancellation that arrives just as the read completes, and a stream that
                # always has data would then be read on forever by a link told to stop.
                async with asyncio.timeout(limit):
                    chunk = await stream.read(READ_CHUNK_BYTES)
            except TimeoutError:
                if not started:
                    raise Retry(
                        f"no hello within {limit:g} s of starting the agent; "
                        "treating the link as dead"
                    ) from None
                raise Retry(
                    f"nothing received for {limit:g} s; treating the link as dead"
                ) from None
            if not chunk:
                raise Retry(f"stream ended ({await stream.describe_end()})")
            lines = splitter.feed(chunk)
            for dropped in splitter.oversized:
                self._problem(f"line longer than {MAX_LINE_BYTES} bytes skipped", dropped)
            splitter.oversized.clear()
            before = self._status.last_seq
            last_seq = before
            events: list[Received | Start] = []
            for line in lines:
                event = self._decode(line, session)
                if event is None:
                    continue
                if session.hello is not None and type(event) is ErrorEvent:
                    # decode_line has read the line as UTF-8 already, so this cannot fail.
                    events.append(Received(event, line.decode("utf-8").strip()))
                    continue
                if events:
                    # What came before a hello or a heartbeat reaches the engine first.
                    last_seq = await self._deliver(events)
                    events = []
                if session.hello is not None and type(event) is Start:
                    events.append(event)
                else:
                    await self._control(event, line, session)
            if events:
                last_seq = await self._deliver(events)
            if last_seq != before:
                # One status per chunk, not per event: a flood must not flood the UI too.
                self._set(last_seq=last_seq, last_line_at=time.time())

    async def _deliver(self, events: list[Received | Start]) -> int:
        """Hand a run of events to the engine; returns the last one's seq."""
        result = self._on_events(self.host.name, events)
        if inspect.isawaitable(result):
            await result
        last = events[-1]
        return last.event.seq if isinstance(last, Received) else last.seq

    def _decode(self, line: bytes, session: _Session) -> Event | None:
        """One line's event; None for a line that is skipped (and reported if bad)."""
        try:
            return decode_line(line)
        except UnknownLineType as exc:
            # A newer agent's line: skipping it is the protocol's promise (agent.wire).
            if exc.kind not in self._unknown_types:
                self._unknown_types.add(exc.kind)
                log.info("%s: skipping %r lines, which this console does not know",
                         self.host.name, exc.kind)  # fmt: skip
            return None
        except WireError as exc:
            protocol = _hello_protocol(line)
            if session.hello is None and protocol is not None and protocol != PROTOCOL_VERSION:
                raise _Fatal(
                    f"agent on {self.host.name} speaks protocol {protocol}, this console "
                    f"speaks {PROTOCOL_VERSION}; upgrade one side so they match"
                ) from None
            self._problem(str(exc), line)
            return None

    async def _control(self, event: Event, line: bytes, session: _Session) -> None:
        """A hello or a heartbeat; any event before the first hello ends the session."""
        now = time.time()
        if isinstance(event, Hello):
            if session.hello is None:
                if self._on_hello is not None:
                    result = self._on_hello(self.host.name, event)
                    if inspect.isawaitable(result):
                        await result
                session.connected_at = time.monotonic()
                if event.last_seq < session.since:
                    self._problem(
                        f"agent's newest seq {event.last_seq} is below the {session.since} "
                        f"already stored: its state was reset (instance {event.instance!r})",
                        line,
                    )
                self._set(
                    state="connected",
                    attempt=0,
                    error=None,
                    last_line_at=now,
                    agent_version=event.agent_version,
                    instance=event.instance,
                )
            session.hello = event
            return
        if session.hello is None:
            raise Retry(f"stream did not start with a hello line: {excerpt(line)}")
        if isinstance(event, Heartbeat):
            self._set(last_line_at=now)

    def _problem(self, message: str, line: bytes) -> None:
        problem = LinkProblem(host=self.host.name, message=message, excerpt=excerpt(line))
        log.warning("bad line from %s: %s: %s", problem.host, message, problem.excerpt)
        if self._on_problem is not None:
            try:
                self._on_problem(problem)
            except Exception:
                log.exception("problem callback failed for %s", self.host.name)

    def _set(self, **changes: Any) -> None:
        self._status = replace(self._status, **changes)
        if self._on_status is not None:
            try:
                self._on_status(self._status)
            except Exception:
                log.exception("status callback failed for %s", self.host.name)


class ProbeError(RuntimeError):
    """The host's agent could not be reached; the message says what to fix."""


async def probe(host: HostConfig, timeout: float = 20.0) -> Hello:
    """Connect once, read the agent's hello and hang up: what ``autofix check`` reports.

    It goes through the same path as a link (strict host keys, the configured key and
    command), so a passing check means the link will connect.
    """
    try:
        async with asyncio.timeout(timeout):
            stream = await open_stream(host, 2**62)
    except (NeedsPerson, Retry) as exc:
        raise ProbeError(str(exc)) from None
    except TimeoutError:
        raise ProbeError(f"no connection after {timeout:.0f}s") from None
    try:
        splitter = LineSplitter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with asyncio.timeout(timeout):
                chunk = await stream.read(READ_CHUNK_BYTES)
            lines = splitter.feed(chunk) if chunk else [splitter.unfinished()]
            if not chunk and not lines[0].strip():
                raise ProbeError(f"the agent ended without a hello: {await stream.describe_end()}")
            for line in lines:
                try:
                    first = decode_line(line)
                except WireError:
                    # Most often a login shell or a wrong forced command speaking (a nologin
                    # shell's "This account is currently not available."): its own words say
                    # more than the JSON decoder's.
                    raise ProbeError(
                        f"the host answered {excerpt(line)} instead of the agent's hello; "
                        "check the forced command and the login shell of the user"
                    ) from None
                if not isinstance(first, Hello):
                    raise ProbeError(f"the agent's first line is a {first.type}, not a hello")
                return first
        raise ProbeError(f"no hello within {timeout:.0f}s")
    except TimeoutError:
        raise ProbeError(f"no hello within {timeout:.0f}s") from None
    finally:
        await stream.close()


class LinkManager:
    """All configured hosts' links on one event loop, started and stopped together."""

    def __init__(
        self,
        hosts: Iterable[HostConfig],
        *,
        since: Callable[[str], Awaitable[int] | int],
        on_events: EventCallback,
        on_status: StatusCallback | None = None,
        on_problem: ProblemCallback | None = None,
        on_hello: HelloCallback | None = None,
        timing: LinkTiming | None = None,
    ) -> None:
        self.links: dict[str, AgentLink] = {}
        for host in hosts:
            if host.name in self.links:
                raise ValueError(f"hosts: the name {host.name!r} is used twice")
            self.links[host.name] = AgentLink(
                host,
                since=_bind_since(since, host.name),
                on_events=on_events,
                on_status=on_status,
                on_problem=on_problem,
                on_hello=on_hello,
                timing=timing,
            )

    def start(self) -> None:
        """Start every link; one host being down never holds up the others."""
        for link in self.links.values():
            link.start()

    async def stop(self) -> None:
        """Stop all links together, so shutting down takes one grace period, not one per host."""
        await asyncio.gather(*(link.stop() for link in self.links.values()))

    def statuses(self) -> dict[str, LinkStatus]:
        """Each host's latest snapshot, keyed by host name."""
        return {name: link.status for name, link in self.links.items()}

    async def __aenter__(self) -> LinkManager:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _bind_since(
    since: Callable[[str], Awaitable[int] | int], name: str
) -> Callable[[], Awaitable[int] | int]:
    return lambda: since(name)
