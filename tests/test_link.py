"""The console's link to agents: a real sshd, the real ``autofix-agent stream``, real SQLite.

Events are made with the agent's own outbox (ingest + settle), exactly as the ``run``
daemon would, and read by the real stream command over a real SSH connection or as a
local child process. A small script stands in for the agent only where the test needs
the agent to misbehave (bad lines, another protocol version, silence).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest
from conftest import IN_CI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sshd import SshServer, ssh_server_fixture  # noqa: F401  (provides ``ssh_server``)

from agent.config import DetectionConfig
from agent.occurrence import occurrence_of
from agent.outbox import Outbox, OutboxReader
from agent.record import ErrorRecord
from agent.redact import Redactor
from agent.wire import (
    PROTOCOL_VERSION,
    ErrorEvent,
    Heartbeat,
    Hello,
    WireError,
    decode,
    encode,
    with_seq,
)
from console.config import HostConfig
from console.link import (
    MAX_NESTING,
    AgentLink,
    LineSplitter,
    LinkManager,
    LinkProblem,
    LinkStatus,
    LinkTiming,
    backoff_delay,
    decode_line,
    nested_too_deep,
)
from console.storable import Received

FAST = LinkTiming(
    silence_seconds=3.0,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.3,
    healthy_after_seconds=60.0,
    needs_person_retry_seconds=30.0,
    stop_grace_seconds=2.0,
)


def agent_executable() -> str:
    """The installed ``autofix-agent`` script, by absolute path (sshd's PATH is minimal)."""
    path = Path(sys.executable).parent / "autofix-agent"
    if not path.exists():
        message = f"{path} is missing; `make test` installs the project into .venv"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(path)


@dataclass
class AgentState:
    """A real agent state directory and config; events are added through the outbox."""

    directory: Path
    host: str
    config: Path = field(init=False)
    _made: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "agent.toml"
        self.config.write_text(
            f'state_dir = "{self.directory / "state"}"\n'
            f'host = "{self.host}"\n'
            "[stream]\nheartbeat_seconds = 0.3\n"
        )
        outbox = Outbox.open(self.directory / "state" / "agent.db", self.host)
        outbox.close()

    def add_events(self, count: int) -> list[int]:
        """Count ``count`` distinct errors and settle them into relayed ``error`` events."""
        outbox = Outbox.open(self.directory / "state" / "agent.db", self.host)
        try:
            redactor = Redactor(())
            occurrences = []
            for _ in range(count):
                self._made += 1
                record = ErrorRecord(
                    error_type=f"Fault{self._made}Error",
                    message=f"failure number {self._made} on {self.host}",
                    stack=[f"    at handler{self._made} (/srv/app/lib/mod{self._made}.js:1:1)"],
                )
                occurrences.append(occurrence_of("shop", record, redactor))
            now = time.time()
            outbox.ingest(occurrences, now=now)
            detection = DetectionConfig(settle_seconds=0.0, min_severity="low")
            return [event.seq for event in outbox.settle(detection, now=now + 1)]
        finally:
            outbox.close()


@dataclass
class Recorder:
    """The engine's side, reduced to what the link relies on: an idempotent (host, seq) store."""

    store: dict[tuple[str, int], ErrorEvent] = field(default_factory=dict)
    lines: dict[tuple[str, int], str] = field(default_factory=dict)
    deliveries: list[tuple[str, int]] = field(default_factory=list)
    since_calls: list[tuple[str, int]] = field(default_factory=list)
    statuses: list[LinkStatus] = field(default_factory=list)
    problems: list[LinkProblem] = field(default_factory=list)
    hellos: list[tuple[str, Hello]] = field(default_factory=list)

    def last_seq(self, host: str) -> int:
        return max((seq for h, seq in self.store if h == host), default=0)

    def since_for(self, host: str) -> Callable[[], Awaitable[int]]:
        async def since() -> int:
            value = self.last_seq(host)
            self.since_calls.append((host, value))
            return value

        return since

    async def since_by_name(self, host: str) -> int:
        value = self.last_seq(host)
        self.since_calls.append((host, value))
        return value

    async def on_events(self, host: str, events: list[Received]) -> None:
        await asyncio.sleep(0)  # the engine awaits its database here
        for received in events:
            self.store_one(host, received)

    def store_one(self, host: str, received: Received) -> None:
        event = received.event
        self.deliveries.append((host, event.seq))
        self.store.setdefault((host, event.seq), event)
        self.lines.setdefault((host, event.seq), received.line)

    def on_status(self, status: LinkStatus) -> None:
        self.statuses.append(status)

    def on_problem(self, problem: LinkProblem) -> None:
        self.problems.append(problem)

    def on_hello(self, host: str, hello: Hello) -> None:
        self.hellos.append((host, hello))

    def seqs(self, host: str) -> list[int]:
        return sorted(seq for h, seq in self.store if h == host)

    def states(self, host: str) -> list[str]:
        return [s.state for s in self.statuses if s.host == host]

    def link(self, host: HostConfig, timing: LinkTiming = FAST) -> AgentLink:
        return AgentLink(
            host,
            since=self.since_for(host.name),
            on_events=self.on_events,
            on_status=self.on_status,
            on_problem=self.on_problem,
            on_hello=self.on_hello,
            timing=timing,
            rng=random.Random(7),
        )


async def until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def ssh_host(server: SshServer, name: str, agent_command: str, **changes: object) -> HostConfig:
    values: dict[str, object] = {
        "name": name,
        "target": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "key": server.client_key,
        "known_hosts": server.known_hosts,
        "agent_command": agent_command,
        "keepalive_seconds": 5.0,
        "connect_timeout_seconds": 5.0,
    }
    values.update(changes)
    return HostConfig(**values)  # type: ignore[arg-type]


STAND_IN = """
import json, select, sys, time
with open(sys.argv[1]) as f:
    lines = json.load(f)
with open(sys.argv[1] + ".args", "a") as f:
    f.write(json.dumps(sys.argv[2:]) + "\\n")
for line in lines:
    if line == "__exit__":
        sys.exit(3)
    if line.startswith("__pause__"):  # a slow step, such as a start-up on a loaded host
        time.sleep(float(line.removeprefix("__pause__")))
        continue
    sys.stdout.buffer.write(line.encode("utf-8", "surrogateescape") + b"\\n")
    sys.stdout.flush()
# Go quiet, but leave when the reader goes away (stdin closes), as the real agent does.
select.select([sys.stdin], [], [], 60)
"""


def stand_in(tmp_path: Path, lines: list[str]) -> tuple[str, Path]:
    """A misbehaving agent: prints the given lines, then goes quiet. Returns its command."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    data = tmp_path / "lines.json"
    data.write_text(json.dumps(lines))
    return shlex.join([sys.executable, str(script), str(data)]), Path(str(data) + ".args")


def wire_event(seq: int, host: str = "box", **changes: object) -> str:
    values: dict[str, object] = {
        "type": "error",
        "seq": seq,
        "host": host,
        "service": "shop",
        "fingerprint": f"{seq:016x}",
        "count": 1,
        "severity": "high",
        "message": f"boom {seq}",
        "error_type": "TypeError",
        "stack": [],
        "route": None,
        "first_seen": "2026-01-01T00:00:00.000Z",
        "last_seen": "2026-01-01T00:00:00.000Z",
    }
    values.update(changes)
    return encode(ErrorEvent(**values))  # type: ignore[arg-type]


def hello(host: str = "box") -> str:
    return encode(Hello(protocol=PROTOCOL_VERSION, agent_version="0.1.0", host=host))


def processes_running(marker: str) -> list[int]:
    """Pids whose command line contains ``marker`` (the test's own tmp path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


# --- over SSH, with the real agent ------------------------------------------------------


async def stream_over_ssh(
    server: SshServer, tmp_path: Path, lines: list[str], events: int
) -> Recorder:
    """Link to a stand-in agent over the real sshd until ``events`` events are stored."""
    command, _ = stand_in(tmp_path, lines)
    recorder = Recorder()
    link = recorder.link(ssh_host(server, "prod-1", command))
    link.start()
    try:
        await until(lambda: len(recorder.store) == events, "the valid events")
        assert link.status.state == "connected"
    finally:
        await link.stop()
    return recorder


async def test_killed_connection_resumes_with_no_event_lost_or_duplicated(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    agent = agent_executable()
    server = ssh_server()
    state = AgentState(tmp_path / "agent", host="prod-1")
    assert state.add_events(5) == [1, 2, 3, 4, 5]
    command = shlex.join([agent, "stream", "--config", str(state.config)])
    recorder = Recorder()
    link = recorder.link(ssh_host(server, "prod-1", command))
    link.start()
    try:
        await until(lambda: len(recorder.store) == 5, "the first five events")
        assert link.status.state == "connected"
        assert recorder.hellos[0][1].host == "prod-1"

        assert server.kill_sessions() > 0
        await until(lambda: recorder.states("prod-1")[-1] != "connected", "the drop to be seen")
        state.add_events(4)  # happen while the link is down
        await until(lambda: len(recorder.store) == 9, "the events made during the outage")
        state.add_events(2)  # and after it is back
        await until(lambda: len(recorder.store) == 11, "events after the reconnect")
    finally:
        await link.stop()

    assert recorder.seqs("prod-1") == list(range(1, 12))
    assert recorder.since_calls[:2] == [("prod-1", 0), ("prod-1", 5)]
    assert recorder.deliveries == [("prod-1", seq) for seq in range(1, 12)]
    assert recorder.store[("prod-1", 1)].message == "failure number 1 on prod-1"
    assert "reconnecting" in recorder.states("prod-1")
    assert recorder.statuses[-1].state == "stopped"
    # The remote agent notices the closed channel on its own; it must not linger.
    await until(lambda: not processes_running(str(state.config)), "the remote agent to exit", 5)


async def test_unknown_host_key_is_refused_and_not_retried_in_a_loop(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    server = ssh_server()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    recorder = Recorder()
    host = ssh_host(server, "prod-1", "autofix-agent stream", known_hosts=empty)
    link = recorder.link(host)
    probes = server.log_text().count("Connection from 127.0.0.1")  # the readiness check
    link.start()
    try:
        await until(lambda: link.status.state == "error", "the host key error")
        await asyncio.sleep(1.0)
    finally:
        await link.stop()
    error = next(s.error for s in recorder.statuses if s.state == "error")
    assert error is not None
    assert f"host key for 127.0.0.1:{server.port} is not in {empty}" in error
    fingerprint = server.host_public_key.split()[1]
    assert "SHA256:" in error and fingerprint not in error
    assert len(recorder.since_calls) == 1
    assert server.log_text().count("Connection from 127.0.0.1") == probes + 1
    assert next(s for s in recorder.statuses if s.state == "error").next_retry_seconds == 30.0
    assert recorder.store == {}


async def test_changed_host_key_is_refused_as_possible_mitm(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    server = ssh_server()
    other = ssh_server(name="other")  # a second server only for its different host key
    forged = tmp_path / "forged_known_hosts"
    forged.write_text(f"[127.0.0.1]:{server.port} {other.host_public_key}\n")
    recorder = Recorder()
    link = recorder.link(ssh_host(server, "prod-1", "autofix-agent stream", known_hosts=forged))
    link.start()
    try:
        await until(lambda: link.status.state == "error", "the changed host key error")
    finally:
        await link.stop()
    error = next(s.error for s in recorder.statuses if s.state == "error") or ""
    assert f"host key CHANGED for 127.0.0.1:{server.port}" in error
    assert "possible MITM" in error
    offered = asyncssh.import_public_key(server.host_public_key).get_fingerprint()
    recorded = asyncssh.import_public_key(other.host_public_key).get_fingerprint()
    assert f"has {recorded} but the server offered {offered}" in error
    assert "Accepted publickey" not in server.log_text()


async def test_forced_command_key_streams_and_refuses_anything_else(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    agent = agent_executable()
    state = AgentState(tmp_path / "agent", host="prod-1")
    state.add_events(3)
    server = ssh_server(forced_command=f"{agent} stream --config {state.config}")
    recorder = Recorder()
    link = recorder.link(ssh_host(server, "prod-1", "autofix-agent stream"))
    link.start()
    try:
        await until(lambda: len(recorder.store) == 3, "events through the forced command")
    finally:
        await link.stop()
    assert recorder.seqs("prod-1") == [1, 2, 3]

    canary = tmp_path / "canary"
    async with asyncssh.connect(
        "127.0.0.1",
        port=server.port,
        username=server.user,
        client_keys=[str(server.client_key)],
        known_hosts=str(server.known_hosts),
        agent_path=None,
    ) as conn:
        for command in (
            "cat /etc/passwd",
            f"stream --since 1; touch {canary}",
            f"autofix-agent stream --config /etc/passwd --since 0 && touch {canary}",
            f"touch {canary}",
        ):
            result = await conn.run(command, check=False, timeout=20)
            assert result.exit_status != 0, command
            assert result.stdout == "", command
            assert "refused" in str(result.stderr), command
    assert not canary.exists()


async def test_malformed_lines_are_reported_and_skipped_over_ssh(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    server = ssh_server()
    long_stack = [f"    at frame{i} (/srv/app/deep.js:{i}:1)" for i in range(8000)]
    lines = [
        "this is not json",
        hello(),
        wire_event(1),
        '{"type": "error", "seq": 2}',
        '{"type": "gossip", "x": 1}',
        "caf\udce9 is latin-1, not UTF-8",
        wire_event(2, stack=long_stack),
        "x" * (1024 * 1024 + 10),
        encode(Heartbeat(host="box", last_seq=2, time="2026-01-01T00:00:00.000Z")),
        wire_event(3),
    ]
    assert len(wire_event(2, stack=long_stack)) > 200 * 1024
    recorder = await stream_over_ssh(server, tmp_path, lines, events=3)
    assert recorder.seqs("prod-1") == [1, 2, 3]
    assert recorder.store[("prod-1", 2)].stack == long_stack
    messages = [p.message for p in recorder.problems]
    assert messages[0].startswith("not JSON")
    assert recorder.problems[0].excerpt == "'this is not json'"
    assert "error line has no 'severity'" in messages
    # A line type this console does not know is a newer agent's: skipped, not a problem.
    assert not any("gossip" in m for m in messages)
    assert any(m.startswith("line is not UTF-8") for m in messages)
    assert any("longer than" in m for m in messages)
    assert all(p.host == "prod-1" and len(p.excerpt) < 200 for p in recorder.problems)
    assert len(recorder.since_calls) == 1
    await until(lambda: not processes_running(str(tmp_path / "lines.json")), "remote exit", 5)


async def test_hostile_lines_over_ssh_never_drop_the_session(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    server = ssh_server()
    deep = "[" * 200_000
    lines = [
        hello(),
        deep,
        '{"type":"error","seq":' * 20_000,
        "{" * (MAX_NESTING + 1) + "}" * (MAX_NESTING + 1),
        wire_event(1),
        '{"type":"hello","protocol":' + "[" * 100_000,
        wire_event(2, message="[" * 5_000 + " brackets in a string are text"),
        wire_event(3),
    ]
    recorder = await stream_over_ssh(server, tmp_path, lines, events=3)
    assert recorder.seqs("prod-1") == [1, 2, 3]
    assert recorder.store[("prod-1", 2)].message.startswith("[" * 5_000)
    nested = [p for p in recorder.problems if "nested deeper" in p.message]
    assert len(nested) == 4
    assert all(len(p.excerpt) < 200 for p in recorder.problems)
    assert len(recorder.since_calls) == 1, "one session: nothing made it reconnect"


async def test_forced_command_refusing_the_link_shows_the_agents_reason(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    agent = agent_executable()
    state = AgentState(tmp_path / "agent", host="prod-1")
    server = ssh_server(forced_command=f"{agent} stream --config {state.config}")
    recorder = Recorder()
    wrong = f"{sys.executable} -m agent.cli stream"  # not what this key may run
    link = recorder.link(ssh_host(server, "prod-1", wrong))
    link.start()
    try:
        await until(lambda: "reconnecting" in recorder.states("prod-1"), "the refusal")
    finally:
        await link.stop()
    error = next(s.error for s in recorder.statuses if s.state == "reconnecting") or ""
    assert "agent exited with status 2" in error
    assert "refused: this key may only run 'autofix-agent stream'" in error


# --- protocol and liveness, with a stand-in agent ---------------------------------------


def local_host(name: str, command: str, config: Path | None = None) -> HostConfig:
    return HostConfig(name=name, local=True, agent_command=command, agent_config=config)


async def test_other_protocol_version_stops_the_link_with_a_clear_error(tmp_path: Path) -> None:
    future = json.dumps({"type": "hello", "protocol": 99, "agent_version": "9", "host": "box"})
    command, args_file = stand_in(tmp_path, [future, wire_event(1)])
    recorder = Recorder()
    link = recorder.link(local_host("box", command))
    await asyncio.wait_for(link.run(), 10)
    assert link.status.state == "error"
    assert link.status.error is not None
    assert "speaks protocol 99" in link.status.error
    assert f"this console speaks {PROTOCOL_VERSION}" in link.status.error
    assert recorder.store == {}
    assert len(recorder.since_calls) == 1
    assert json.loads(args_file.read_text()) == ["--since", "0"]
    assert not processes_running(str(tmp_path / "lines.json"))


CHATTY_AGENT = """
import sys
hello, beat = sys.argv[1].encode() + b"\\n", sys.argv[2].encode() + b"\\n"
sys.stdout.buffer.write(hello)
while True:  # heartbeats as fast as the pipe takes them: a read is always ready
    sys.stdout.buffer.write(beat * 64)
    sys.stdout.flush()
"""


async def test_stop_ends_a_link_whose_stream_always_has_data_ready(tmp_path: Path) -> None:
    """A cancellation that arrives while a read has just completed must not be swallowed
    (asyncio.wait_for does that on Python 3.11): the link would read on forever and the
    console's shutdown would wait for it."""
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY_AGENT)
    beat = encode(Heartbeat(host="box", last_seq=0, time="2026-01-01T00:00:00.000Z"))
    command = shlex.join([sys.executable, str(script), hello(), beat])
    recorder = Recorder()
    for _ in range(8):
        link = recorder.link(local_host("box", command))
        link.start()
        await until(lambda it=link: it.status.state == "connected", "the chatty agent's hello")
        await asyncio.sleep(random.uniform(0, 0.05))
        stopping = asyncio.ensure_future(link.stop())
        done, _ = await asyncio.wait({stopping}, timeout=10)  # waits without cancelling it
        if not done:
            pytest.fail("stop() did not end a link that was reading a busy stream")
        assert link.status.state == "stopped"
    assert not processes_running(str(script))


async def test_agent_slower_to_start_than_the_silence_limit_is_not_called_silent(
    tmp_path: Path,
) -> None:
    command, args_file = stand_in(tmp_path, ["__pause__1.0", hello(), wire_event(1)])
    recorder = Recorder()
    timing = LinkTiming(silence_seconds=0.25, hello_seconds=30.0, backoff_initial_seconds=0.05)
    link = recorder.link(local_host("box", command), timing)
    link.start()
    try:
        await until(lambda: len(recorder.store) == 1, "the event after the slow start")
    finally:
        await link.stop()
    assert "reconnecting" not in recorder.states("box")
    assert recorder.since_calls == [("box", 0)]
    assert len(args_file.read_text().splitlines()) == 1


def test_a_link_stopped_mid_stream_leaves_nothing_of_the_agent_once_its_loop_is_closed(
    tmp_path: Path,
) -> None:
    """The console quits right after stopping its links: the agent's pipes must not
    outlive the loop (asyncio's transport collected later fails on the closed loop), even
    when something the agent started in a session of its own still holds them, so that
    they never end by themselves."""
    agent, _ = stand_in(tmp_path, [hello(), wire_event(1)])
    stray = tmp_path / "stray.pid"
    command = shlex.join(["sh", "-c", f"setsid sleep 30 & echo $! > {stray}; exec {agent}"])

    async def run_and_stop() -> None:
        recorder = Recorder()
        link = recorder.link(local_host("box", command), LinkTiming(silence_seconds=30.0))
        link.start()
        try:
            await until(lambda: len(recorder.store) == 1, "the event")
        finally:
            await link.stop()

    unraisable: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(f"{u.object!r}: {u.exc_value!r}")
    try:
        asyncio.run(run_and_stop())  # closes its loop at once, as the console's exit does
        gc.collect()
    finally:
        sys.unraisablehook = hook
        if stray.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(stray.read_text()), signal.SIGKILL)
    assert unraisable == []


async def test_agent_that_never_says_hello_is_retried_after_the_hello_limit(
    tmp_path: Path,
) -> None:
    command, _ = stand_in(tmp_path, [])
    recorder = Recorder()
    timing = LinkTiming(silence_seconds=30.0, hello_seconds=0.3, backoff_initial_seconds=0.05)
    link = recorder.link(local_host("box", command), timing)
    link.start()
    try:
        await until(lambda: "reconnecting" in recorder.states("box"), "a retry")
    finally:
        await link.stop()
    reconnecting = next(s for s in recorder.statuses if s.state == "reconnecting")
    assert reconnecting.error is not None
    assert "no hello within 0.3 s of starting the agent" in reconnecting.error
    assert "connected" not in recorder.states("box")
    assert not processes_running(str(tmp_path / "lines.json"))


async def test_silent_link_is_treated_as_dead_and_reconnected(tmp_path: Path) -> None:
    command, args_file = stand_in(tmp_path, [hello(), wire_event(4)])
    recorder = Recorder()
    timing = LinkTiming(silence_seconds=0.5, backoff_initial_seconds=0.05, backoff_max_seconds=0.1)
    link = recorder.link(local_host("box", command), timing)
    link.start()
    try:
        await until(
            lambda: args_file.exists() and len(args_file.read_text().splitlines()) >= 2,
            "a reconnect after silence",
        )
    finally:
        await link.stop()
    reconnecting = next(s for s in recorder.statuses if s.state == "reconnecting")
    assert reconnecting.error is not None and "nothing received for 0.5 s" in reconnecting.error
    assert recorder.since_calls[:2] == [("box", 0), ("box", 4)]
    runs = [json.loads(line) for line in args_file.read_text().splitlines()]
    assert runs[:2] == [["--since", "0"], ["--since", "4"]]
    assert not processes_running(str(tmp_path / "lines.json"))


@pytest.mark.parametrize(("healthy_after", "attempts"), [(1000.0, [1, 2, 3]), (0.0, [1, 1, 1])])
async def test_backoff_grows_while_failing_and_resets_after_a_healthy_link(
    tmp_path: Path, healthy_after: float, attempts: list[int]
) -> None:
    command, _ = stand_in(tmp_path, [hello(), "__exit__"])
    recorder = Recorder()
    timing = LinkTiming(
        backoff_initial_seconds=0.02, backoff_max_seconds=0.2, healthy_after_seconds=healthy_after
    )
    link = recorder.link(local_host("box", command), timing)
    link.start()
    try:
        await until(lambda: recorder.states("box").count("reconnecting") >= 3, "three retries")
    finally:
        await link.stop()
    retries = [s for s in recorder.statuses if s.state == "reconnecting"][:3]
    assert [s.attempt for s in retries] == attempts
    assert all("agent exited with status 3" in (s.error or "") for s in retries)
    delays = [s.next_retry_seconds or 0.0 for s in retries]
    if attempts[2] == 3:
        assert delays[2] >= 0.02 * 4 * 0.75  # third retry: four times the first, less jitter
    else:
        assert max(delays) <= 0.02 * 1.25


async def test_agent_exit_is_reported_with_its_stderr_and_retried(tmp_path: Path) -> None:
    agent = agent_executable()
    missing = tmp_path / "missing.toml"
    recorder = Recorder()
    link = recorder.link(local_host("box", f"{agent} stream", missing))
    link.start()
    try:
        await until(lambda: len(recorder.since_calls) >= 2, "a retry after the agent exited")
    finally:
        await link.stop()
    error = next(s.error for s in recorder.statuses if s.state == "reconnecting") or ""
    assert "agent exited with status 2" in error
    assert str(missing) in error


async def test_event_the_engine_failed_to_store_is_sent_again(tmp_path: Path) -> None:
    agent = agent_executable()
    state = AgentState(tmp_path / "agent", host="laptop")
    state.add_events(4)
    recorder = Recorder()
    failures = [3]

    async def flaky_store(host: str, events: list[Received]) -> None:
        for received in events:
            if received.event.seq in failures:
                failures.remove(received.event.seq)
                raise OSError("database is locked")
            recorder.store_one(host, received)

    link = AgentLink(
        local_host("laptop", f"{agent} stream", state.config),
        since=recorder.since_for("laptop"),
        on_events=flaky_store,
        on_status=recorder.on_status,
        timing=FAST,
    )
    link.start()
    try:
        await until(lambda: len(recorder.store) == 4, "every event stored in the end")
    finally:
        await link.stop()
    assert recorder.deliveries == [("laptop", seq) for seq in (1, 2, 3, 4)]
    assert recorder.since_calls == [("laptop", 0), ("laptop", 2)]
    error = next(s.error for s in recorder.statuses if s.state == "reconnecting") or ""
    assert "database is locked" in error


async def test_agent_whose_state_was_reset_is_reported(tmp_path: Path) -> None:
    agent = agent_executable()
    state = AgentState(tmp_path / "agent", host="laptop")
    state.add_events(2)
    recorder = Recorder()

    async def since() -> int:
        return 40  # the console stored more than this agent ever made

    link = AgentLink(
        local_host("laptop", f"{agent} stream", state.config),
        since=since,
        on_events=recorder.on_events,
        on_problem=recorder.on_problem,
        on_hello=recorder.on_hello,
        timing=FAST,
    )
    link.start()
    try:
        await until(lambda: bool(recorder.problems), "the reset to be reported")
    finally:
        await link.stop()
    assert "newest seq 2 is below the 40 already stored" in recorder.problems[0].message
    assert recorder.hellos[0][1].instance in recorder.problems[0].message
    assert recorder.hellos[0][1].instance != ""


# --- local subprocess mode and several hosts --------------------------------------------


async def test_local_mode_streams_the_real_agent_and_heartbeats_keep_it_up(
    tmp_path: Path,
) -> None:
    agent = agent_executable()
    state = AgentState(tmp_path / "agent", host="laptop")
    state.add_events(2)
    recorder = Recorder()
    timing = LinkTiming(silence_seconds=1.0, backoff_initial_seconds=0.05)
    link = recorder.link(local_host("laptop", f"{agent} stream", state.config), timing)
    link.start()
    try:
        await until(lambda: len(recorder.store) == 2, "stored events")
        state.add_events(1)
        await until(lambda: len(recorder.store) == 3, "a live event")
        # Then only heartbeats arrive: wait for one that lands twice the silence limit
        # after the live event, the window counted from lines received, not from start-up.
        quiet_from = link.status.last_line_at or 0.0
        await until(
            lambda: (link.status.last_line_at or 0.0) >= quiet_from + 2 * timing.silence_seconds,
            "heartbeats across twice the silence limit",
        )
        assert "reconnecting" not in recorder.states("laptop")
        assert link.status.state == "connected"
        assert link.status.lag_seconds is not None and link.status.lag_seconds < 1.0
        assert link.status.last_seq == 3
        assert processes_running(str(state.config))
    finally:
        await link.stop()
    assert len(recorder.since_calls) == 1
    assert link.status.state == "stopped"
    assert not processes_running(str(state.config))


async def test_several_hosts_stream_at_once_into_their_own_seqs(
    ssh_server: Callable[..., SshServer], tmp_path: Path
) -> None:
    agent = agent_executable()
    server = ssh_server()
    states = {
        "web-1": AgentState(tmp_path / "web-1", host="web-1"),
        "web-2": AgentState(tmp_path / "web-2", host="web-2"),
        "laptop": AgentState(tmp_path / "laptop", host="laptop"),
    }
    hosts = [
        ssh_host(server, name, shlex.join([agent, "stream", "--config", str(states[name].config)]))
        for name in ("web-1", "web-2")
    ]
    hosts.append(local_host("laptop", f"{agent} stream", states["laptop"].config))
    for count, state in zip((3, 1, 2), states.values(), strict=True):
        state.add_events(count)
    recorder = Recorder()
    manager = LinkManager(
        hosts,
        since=recorder.since_by_name,
        on_events=recorder.on_events,
        on_status=recorder.on_status,
        on_problem=recorder.on_problem,
        timing=FAST,
    )
    async with manager:
        await until(lambda: len(recorder.store) == 6, "events from all three hosts")
        states["web-2"].add_events(2)
        await until(lambda: len(recorder.store) == 8, "a live event on one host")
        assert {s.state for s in manager.statuses().values()} == {"connected"}
    assert recorder.seqs("web-1") == [1, 2, 3]
    assert recorder.seqs("web-2") == [1, 2, 3]
    assert recorder.seqs("laptop") == [1, 2]
    assert all(event.host == host for (host, _), event in recorder.store.items())
    assert {s.state for s in manager.statuses().values()} == {"stopped"}
    assert recorder.problems == []


async def test_each_event_reaches_the_engine_with_the_exact_line_the_agent_wrote(
    tmp_path: Path,
) -> None:
    agent = agent_executable()
    state = AgentState(tmp_path / "agent", host="laptop")
    state.add_events(3)
    reader = OutboxReader(state.directory / "state" / "agent.db")
    try:
        written = {seq: with_seq(payload, seq) for seq, payload in reader.events_after(0)}
    finally:
        reader.close()
    recorder = Recorder()
    link = recorder.link(local_host("laptop", f"{agent} stream", state.config))
    link.start()
    try:
        await until(lambda: len(recorder.store) == 3, "three events")
    finally:
        await link.stop()
    assert {seq: line for (_, seq), line in recorder.lines.items()} == written
    assert all(decode(recorder.lines[key]) == event for key, event in recorder.store.items())


def test_duplicate_host_names_are_refused() -> None:
    hosts = [HostConfig(name="a", local=True), HostConfig(name="a", local=True)]
    with pytest.raises(ValueError, match="'a' is used twice"):
        LinkManager(hosts, since=lambda _: 0, on_events=lambda _h, _e: None)


# --- the pieces -------------------------------------------------------------------------


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    timing = LinkTiming(backoff_initial_seconds=1.0, backoff_max_seconds=60.0)
    rng = random.Random(1)
    delays = [backoff_delay(n, timing, rng) for n in range(1, 12)]
    assert all(1.0 <= d <= 60.0 for d in delays)
    assert delays[0] < 1.3 and delays[4] > 12 and delays[-1] > 45
    again = [backoff_delay(6, timing, rng) for _ in range(20)]
    assert len({round(d, 3) for d in again}) > 10


def test_line_splitter_keeps_long_lines_and_drops_oversized_ones() -> None:
    splitter = LineSplitter(limit=1000)
    long = b"a" * 900
    lines = []
    for i in range(0, len(long), 64):
        lines += splitter.feed(long[i : i + 64])
    lines += splitter.feed(b"\n" + b"b" * 1500)
    lines += splitter.feed(b"b" * 10 + b"\nshort\n")
    assert lines == [long, b"short"]
    assert splitter.oversized == [b"b" * 120]


def test_stand_in_uses_valid_wire_lines() -> None:
    # Guards the stand-in itself: its 'valid' lines must really be valid protocol.
    from agent.wire import decode

    assert isinstance(decode(hello()), Hello)
    assert isinstance(decode(wire_event(9)), ErrorEvent)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=400),
        _JSON.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda opener, n, tail: opener * n + tail,
            st.sampled_from([b"[", b"{", b'{"a":', b'{"type":"error","stack":']),
            st.integers(min_value=0, max_value=3000),
            st.binary(max_size=20),
        ),
        st.builds(
            lambda seq, fields: json.dumps(
                {"type": "error", "seq": seq, **fields}, ensure_ascii=False
            ).encode("utf-8", "surrogatepass"),
            st.integers(min_value=-(2**70), max_value=2**70),
            st.dictionaries(st.sampled_from(["count", "stack", "route", "message"]), _JSON),
        ),
    )
)
def test_line_decoder_answers_any_line_with_an_event_or_a_wire_error(line: bytes) -> None:
    try:
        decode_line(line)
    except WireError as exc:
        assert str(exc)


_EVENT_FIELDS = json.loads(wire_event(9))


def _outcome(decoder: Callable[[bytes], object], line: bytes) -> object:
    try:
        return decoder(line)
    except WireError as exc:
        return ("refused", str(exc))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(_EVENT_FIELDS)), _JSON | st.integers(-(2**70), 2**70)),
    st.booleans(),
)
def test_the_fast_decoder_answers_every_event_line_exactly_as_the_wire_does(
    changes: dict[str, object], ascii_only: bool
) -> None:
    fields = {**_EVENT_FIELDS, **changes}
    line = json.dumps(fields, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    from agent.wire import decode

    assert _outcome(decode_line, line) == _outcome(decode, line)


def test_nesting_is_measured_outside_strings_only() -> None:
    assert not nested_too_deep(json.dumps({"a": "[" * 1000, "b": [[1]]}).encode())
    assert nested_too_deep(b"[" * (MAX_NESTING + 1))
    assert not nested_too_deep(b"[" * MAX_NESTING + b"]" * MAX_NESTING)
    assert nested_too_deep(b'{"s":"\\"[", "x":' + b"[" * 40)
