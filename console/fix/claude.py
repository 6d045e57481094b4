"""Run the real Claude Code CLI headless in a worktree and report how the attempt ended.

The CLI is the only thing allowed to change code, so everything about how it is started is
about limiting it (see console/fix/sandbox/claude_policy.py for the rules): ``dontAsk`` mode with an
explicit tool list and a settings file of the console's own, no user or project settings,
no MCP servers, no slash commands or memory, a private config dir, the Bash sandbox, and an
allow-listed environment. The CLI's init line is checked against what was asked before the
attempt goes on, every refusal is collected as a record, turns (and optionally spend) are
capped, and a run that hangs is stopped together with every process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shlex
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from console.children import spawn
from console.fix.sandbox.childenv import child_env
from console.fix.sandbox.claude_policy import (
    SETTINGS_FILE,
    Policy,
    build_policy,
    developer_config_dir,
    fresh_dir,
    prepare_config_dir,
)
from console.fix.sandbox.denials import DenialCollector
from console.fix.transcript import (
    Event,
    PermissionDenial,
    RateLimitEvent,
    Result,
    StreamParser,
    SystemInit,
)
from console.models import Denial

log = logging.getLogger(__name__)

NOT_FOUND = "claude not found: install Claude Code (npm i -g @anthropic-ai/claude-code) and log in"
STDERR_TAIL_BYTES = 4096
KILL_GRACE_SECONDS = 3.0
READ_CHUNK = 64 * 1024
# What the API answers when it is rate-limited (429) or overloaded (529).
RATE_LIMIT_STATUSES = (429, 529)
PIPE_BYTES = 1024 * 1024
CONFIG_DIR_NAME = "claude-config"
HOME_DIR_NAME = "claude-home"
# The CLI's own staging dir for atomic writes, made in the project root (for a linked
# worktree: the main checkout); removed again when the run leaves it empty.
STAGING_DIR = Path(".claude") / ".cc-writes"
# Set for every run: no self-update, no telemetry or other side traffic, no auto-memory.
FIXED_ENV = {
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
}
EMPTY_MCP_CONFIG = '{"mcpServers":{}}'
# The tool the CLI adds for ``--json-schema``; the model answers the schema by calling it.
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"


class ClaudeSettings(Protocol):
    """The ``ClaudeConfig`` fields this module reads (see console/config.py)."""

    @property
    def command(self) -> str: ...

    @property
    def model(self) -> str | None: ...

    @property
    def max_turns(self) -> int: ...

    @property
    def fallback_model(self) -> str | None: ...

    @property
    def max_budget_usd(self) -> float | None: ...

    @property
    def timeout_seconds(self) -> float: ...

    @property
    def allowed_tools(self) -> tuple[str, ...] | None: ...

    @property
    def disallowed_tools(self) -> tuple[str, ...]: ...

    @property
    def extra_env(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class ClaudeOutcome:
    """How one CLI run ended. ``ok`` means the CLI finished its work without error; whether
    the fix is any good (tests, diff) is judged separately by the caller."""

    ok: bool
    reason: str | None
    result: Result | None
    exit_code: int | None
    num_turns: int | None
    cost_usd: float | None
    duration_ms: int | None
    summary: str
    permission_denials: list[PermissionDenial] = field(default_factory=list)
    stderr_tail: str = ""
    denials: list[Denial] = field(default_factory=list)
    # The API refused for a rate limit (429) or overload (529): the attempt is not at
    # fault and goes back to the queue; ``resets_at`` (epoch) when the CLI said when.
    rate_limited: bool = False
    rate_limit_resets_at: float | None = None
    # The result line's ``structured_output`` (unchecked: see console.fix.verdict).
    structured_output: Any = None


@dataclass(frozen=True)
class RunShape:
    """What one run is beyond the prompt: its session, its answer's schema, its reach.

    ``session_id`` names the conversation: the first round starts it (``--session-id``) and
    later rounds continue it (``resume``: ``--resume``), which needs the CLI to keep it on
    disk; without a session the run is not kept at all. ``json_schema`` is passed as
    ``--json-schema``; ``read_only`` offers Claude no edit tool and no command.
    """

    session_id: str | None = None
    resume: bool = False
    json_schema: Mapping[str, Any] | None = None
    read_only: bool = False


# What the run reports as it goes: the CLI's events, and a Denial just before the event
# that revealed it (so a view can show the call as refused rather than as done).
StreamEvent = Event | Denial
EventSink = Callable[[StreamEvent], None]
TranscriptSink = list[str] | Callable[[str], None]


def build_command(
    config: ClaudeSettings, policy: Policy, settings: Path, shape: RunShape = RunShape()
) -> list[str]:
    """The CLI invocation. The prompt goes on stdin so it never shows in a process listing
    and can never be mistaken for an option."""
    command = [*shlex.split(config.command), "-p", "--output-format", "stream-json", "--verbose"]
    command += ["--permission-mode", "dontAsk", "--permission-prompts", "none"]
    command += ["--tools", ",".join(policy.tools)]
    command += ["--setting-sources", "", "--settings", str(settings)]
    command += ["--strict-mcp-config", "--mcp-config", EMPTY_MCP_CONFIG]
    command += ["--disable-slash-commands"]
    if shape.session_id is None:
        command += ["--no-session-persistence"]
    else:
        command += ["--resume" if shape.resume else "--session-id", shape.session_id]
    if shape.json_schema is not None:
        command += ["--json-schema", json.dumps(shape.json_schema, separators=(",", ":"))]
    command += ["--max-turns", str(int(config.max_turns))]
    if config.model:
        command += ["--model", config.model]
    if config.fallback_model:
        command += ["--fallback-model", config.fallback_model]
    if config.max_budget_usd is not None:
        command += ["--max-budget-usd", f"{config.max_budget_usd:g}"]
    return command


def git_dirs_of(worktree: Path) -> list[Path]:
    """The git directories behind a checkout: its own and, for a linked worktree, the main
    checkout's (hooks and config live there, shared by every worktree)."""
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return [dot_git]
    try:
        text = dot_git.read_text()
    except OSError:
        return []
    if not text.startswith("gitdir:"):
        return []
    own = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    try:
        common = (own / (own / "commondir").read_text().strip()).resolve()
    except OSError:
        return [own]
    return [common] if own.is_relative_to(common) else [own, common]


def prepare_run(
    config: ClaudeSettings,
    test_command: str,
    cwd: Path,
    state_dir: Path,
    shape: RunShape = RunShape(),
) -> tuple[list[str], dict[str, str], Policy]:
    """Command line, environment and policy of one run; writes its config dir (kept as it
    is when the run resumes a session, since the session lives there)."""
    env = child_env(os.environ, allow_credentials=True, extra=config.extra_env)
    source = developer_config_dir(env)
    home = Path(env.get("HOME") or Path.home())
    private = prepare_config_dir(state_dir / CONFIG_DIR_NAME, source, keep_sessions=shape.resume)
    # A home of its own too: the CLI keeps caches and state there, and the test command it
    # runs writes its own (npm's cache and logs), none of which belongs in the developer's.
    private_home = fresh_dir(state_dir / HOME_DIR_NAME)
    env.update(FIXED_ENV)
    env["CLAUDE_CONFIG_DIR"] = str(private)
    env["HOME"] = str(private_home)
    policy = build_policy(
        allowed=config.allowed_tools,
        disallowed=config.disallowed_tools,
        test_command=test_command,
        home=home,
        config_dirs=[source, private, private_home / ".claude"],
        git_dirs=git_dirs_of(cwd),
        read_only=shape.read_only,
        cli_tools=(STRUCTURED_OUTPUT_TOOL,) if shape.json_schema is not None else (),
    )
    settings = policy.write(private / SETTINGS_FILE)
    return build_command(config, policy, settings, shape), env, policy


async def run_claude(
    *,
    prompt: str,
    cwd: Path,
    config: ClaudeSettings,
    test_command: str,
    state_dir: Path,
    on_event: EventSink | None = None,
    transcript: TranscriptSink | None = None,
    cancel: asyncio.Event | None = None,
    shape: RunShape = RunShape(),
) -> ClaudeOutcome:
    """Run one fix attempt and always come back with an outcome, never an exception: a
    missing CLI, a crash, a hang or a cancel are all reasons a person should read.

    Every raw stdout line goes to ``transcript`` as it arrives and every parsed event to
    ``on_event``. The CLI's config dir and settings file live under ``state_dir``
    (the console's own). Setting ``cancel`` (or cancelling the awaiting task) stops the CLI and all
    processes it started.
    """
    if not cwd.is_dir():
        return _failed(f"worktree {cwd} does not exist")
    try:
        command, env, policy = prepare_run(config, test_command, cwd, state_dir, shape)
    except (OSError, ValueError) as exc:
        return _failed(f"cannot prepare Claude Code's config dir under {state_dir}: {exc}")
    # Output pipes are made here rather than by asyncio: asyncio's wait() would also wait
    # for every process holding them, and a shell the CLI left behind may hold them forever.
    staging_before = [
        d.parent for d in git_dirs_of(cwd)[-1:] if not (d.parent / STAGING_DIR.parent).exists()
    ]
    git_entries_before = {d: _git_dir_entries(d) for d in git_dirs_of(cwd)}
    out_read, out_write = _wide_pipe()
    err_read, err_write = os.pipe()
    try:
        proc = await spawn(
            *command,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.PIPE,
            stdout=out_write,
            stderr=err_write,
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        os.close(out_read)
        os.close(err_read)
        return _failed(NOT_FOUND if isinstance(exc, FileNotFoundError) else _start_error(exc))
    finally:
        os.close(out_write)
        os.close(err_write)
    stdout, stdout_transport = await _reader(out_read)
    stderr, stderr_transport = await _reader(err_read)

    run = _Run(proc, stdout, stderr, policy, str(cwd), on_event, transcript)
    try:
        return await run.finish(prompt, float(config.timeout_seconds), cancel)
    except asyncio.CancelledError:
        await _stop_tree(proc)
        raise
    finally:
        stdout_transport.close()
        stderr_transport.close()
        for root in staging_before:
            _remove_empty_staging(root)
        for git_dir, entries in git_entries_before.items():
            _remove_new_empty_entries(git_dir, entries)


async def _reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport


class _Run:
    """One live CLI process: feeds it the prompt, reads its output, stops it if asked."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        policy: Policy,
        root: str,
        on_event: EventSink | None,
        transcript: TranscriptSink | None,
    ) -> None:
        self.proc = proc
        self.stdout = stdout
        self.stderr_stream = stderr
        self.policy = policy
        self.parser = StreamParser(root)
        self.collector = DenialCollector(policy.deny, root=root)
        # Set when the init line shows a run other than the one asked for.
        self.abort = asyncio.Event()
        self.abort_reason: str | None = None
        self.on_event = on_event
        self.transcript = transcript
        self.result: Result | None = None
        self.rate_limit: RateLimitEvent | None = None
        self.last_line = ""
        self.stderr: deque[bytes] = deque()
        self.stderr_size = 0

    async def finish(
        self, prompt: str, timeout: float, cancel: asyncio.Event | None
    ) -> ClaudeOutcome:
        loop = asyncio.get_running_loop()
        readers = asyncio.gather(self._feed(prompt), self._read_stdout(), self._read_stderr())
        exited = asyncio.ensure_future(self.proc.wait())
        abort_wait = asyncio.ensure_future(self.abort.wait())
        waiters: set[asyncio.Future[Any]] = {readers, exited, abort_wait}
        cancel_wait: asyncio.Future[Any] | None = None
        if cancel is not None:
            cancel_wait = asyncio.ensure_future(cancel.wait())
            waiters.add(cancel_wait)
        deadline = loop.time() + timeout
        stopped: str | None = None
        try:
            while not readers.done():
                done, _ = await asyncio.wait(
                    waiters,
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if abort_wait in done:
                    stopped = "aborted"
                elif cancel_wait is not None and cancel_wait in done:
                    stopped = "cancelled"
                elif not done and not exited.done():
                    stopped = "timeout"
                elif exited in done:
                    # A process the CLI left behind may hold its output open: wait briefly.
                    waiters.discard(exited)
                    deadline = min(deadline, loop.time() + KILL_GRACE_SECONDS)
                    continue
                elif not done:
                    break
                if stopped:
                    await _stop_tree(self.proc)
                    with contextlib.suppress(asyncio.TimeoutError):
                        async with asyncio.timeout(KILL_GRACE_SECONDS):
                            await asyncio.shield(readers)
                    break
            exit_code = await exited
        finally:
            for waiter in (cancel_wait, exited, abort_wait):
                if waiter is not None and not waiter.done():
                    waiter.cancel()
            if not readers.done():
                readers.cancel()
                # asyncio.wait, not await: the readers' own end is of no interest here,
                # but a stop of this run arriving now must not be swallowed with it.
                await asyncio.wait({readers})
                if not readers.cancelled():
                    readers.exception()  # retrieved, so asyncio does not log it
        return self._outcome(exit_code, stopped, timeout)

    async def _feed(self, prompt: str) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            return
        try:
            stdin.write(prompt.encode())
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.warning("claude closed its input before reading the whole prompt")
        finally:
            stdin.close()

    async def _read_stdout(self) -> None:
        pending = b""
        while chunk := await self.stdout.read(READ_CHUNK):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._line(line)
        if pending:
            self._line(pending)

    async def _read_stderr(self) -> None:
        while chunk := await self.stderr_stream.read(READ_CHUNK):
            self.stderr.append(chunk)
            self.stderr_size += len(chunk)
            while self.stderr_size - len(self.stderr[0]) >= STDERR_TAIL_BYTES:
                self.stderr_size -= len(self.stderr.popleft())

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            return
        self.last_line = line
        try:
            if isinstance(self.transcript, list):
                self.transcript.append(line)
            elif self.transcript is not None:
                self.transcript(line)
        except Exception:
            log.exception("transcript sink failed; the run continues")
        for event in self.parser.feed(line):
            if isinstance(event, Result):
                self.result = event
            if isinstance(event, RateLimitEvent) and event.status == "rejected":
                self.rate_limit = event
            if isinstance(event, SystemInit) and self.abort_reason is None:
                self.abort_reason = self.policy.init_problem(event)
                if self.abort_reason is not None:
                    self.abort.set()
            denial = self.collector.feed(event)
            if denial is not None:
                self._emit(denial)
            self._emit(event)

    def _emit(self, event: StreamEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("event handler failed on %s; the run continues", type(event).__name__)

    def _outcome(self, exit_code: int, stopped: str | None, timeout: float) -> ClaudeOutcome:
        result = self.result
        stderr_tail = b"".join(self.stderr)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
        reason: str | None
        if stopped == "timeout":
            reason = (
                f"timeout: Claude Code did not finish within {timeout:g}s; "
                "it was stopped with every process it started"
            )
        elif stopped == "aborted":
            reason = f"{self.abort_reason}; the attempt was stopped before it could go on"
        elif stopped == "cancelled":
            reason = "cancelled: the attempt was stopped before Claude Code finished"
        elif result is None and _cut_result(self.last_line):
            reason = (
                f"Claude Code's result line was cut off after {len(self.last_line)} characters "
                f"(exit code {exit_code}); the outcome is unknown"
            )
        elif result is None:
            reason = f"Claude Code exited with code {exit_code} without a result line" + (
                f": {_last_line(stderr_tail)}" if stderr_tail.strip() else ""
            )
        elif not result.ok:
            reason = f"{_failure_label(result)}: {result.message}"
        elif exit_code != 0:
            reason = f"Claude Code exited with code {exit_code} after reporting success"
        else:
            reason = None
        return ClaudeOutcome(
            ok=reason is None,
            reason=reason,
            result=result,
            exit_code=exit_code,
            num_turns=result.num_turns if result else None,
            cost_usd=result.total_cost_usd if result else None,
            duration_ms=result.duration_ms if result else None,
            summary=result.result_text if result else "",
            permission_denials=list(result.permission_denials) if result else [],
            stderr_tail=stderr_tail,
            denials=self.collector.denials,
            structured_output=result.structured_output if result else None,
            rate_limited=reason is not None and _rate_limited(result, self.rate_limit),
            rate_limit_resets_at=self.rate_limit.resets_at if self.rate_limit else None,
        )


def _rate_limited(result: Result | None, event: RateLimitEvent | None) -> bool:
    """A failed run that the API refused for load, not for anything in the attempt."""
    if result is not None and result.api_error_status in RATE_LIMIT_STATUSES:
        return True
    return event is not None and (result is None or result.is_error)


def _git_dir_entries(git_dir: Path) -> set[str]:
    """Every path in a git directory except the object store's fan-out (which is large and
    which the sandbox never touches): what was there before a run."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(git_dir):
        rel = Path(dirpath).relative_to(git_dir)
        if rel == Path("objects"):
            dirnames[:] = [d for d in dirnames if d == "info"]
        found.update((rel / name).as_posix() for name in dirnames + filenames)
    return found


def _remove_new_empty_entries(git_dir: Path, before: set[str]) -> None:
    """Take away the empty files and directories Claude Code's sandbox leaves in a git
    directory as mount points for the paths its deny rules cover (``config.worktree``,
    ``objects/info/alternates``, ...), so the main checkout's ``.git`` is as it was. Only
    entries that are new and empty go; anything with content stays for the checks to see."""
    for rel in sorted(_git_dir_entries(git_dir) - before, key=len, reverse=True):
        path = git_dir / rel
        with contextlib.suppress(OSError):
            if path.is_symlink():
                continue
            if path.is_dir():
                path.rmdir()
            elif path.is_file() and path.stat().st_size == 0:
                path.unlink()


def _remove_empty_staging(root: Path) -> None:
    """Take away the CLI's staging dir from a checkout that had no ``.claude`` before."""
    with contextlib.suppress(OSError):
        (root / STAGING_DIR).rmdir()
        (root / STAGING_DIR.parent).rmdir()


def _cut_result(line: str) -> bool:
    """Whether an unparsed last line is the start of a result line (its keys vary in order
    between CLI versions, so any of its usual keys will do)."""
    return line.startswith("{") and any(
        key in line for key in ('"type":"result"', '"duration_api_ms"', '"total_cost_usd"')
    )


def _failure_label(result: Result) -> str:
    if result.terminal_reason == "max_turns" or result.subtype == "error_max_turns":
        return "max turns reached"
    if "budget" in result.subtype:
        return "budget reached"
    if result.api_error_status is not None:
        return f"API error {result.api_error_status}"
    return "Claude Code reported an error"


def _wide_pipe() -> tuple[int, int]:
    """A pipe for the CLI's stdout with room for a whole long line.

    The CLI can exit while its last write to a full pipe is still pending, which cuts the
    result line short; a large pipe buffer lets that write land in the kernel at once.
    """
    read_end, write_end = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read_end, write_end


def _start_error(exc: OSError | ValueError) -> str:
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"claude could not be started: {detail}"


def _failed(reason: str) -> ClaudeOutcome:
    return ClaudeOutcome(
        ok=False,
        reason=reason,
        result=None,
        exit_code=None,
        num_turns=None,
        cost_usd=None,
        duration_ms=None,
        summary="",
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


async def _stop_tree(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL, the CLI's process group and every process it started.

    The CLI runs shell commands in sessions of their own, so signalling its process group
    alone would leave a hung test run behind; the descendants are found before the CLI
    dies (after that they are reparented and can no longer be traced to it).
    """
    if proc.returncode is not None:
        return
    tree = _descendants(proc.pid)
    groups = {proc.pid} | {_pgid(pid) for pid in tree}
    _signal_groups(groups, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_GRACE_SECONDS
    while loop.time() < deadline:
        if proc.returncode is not None and not any(_alive(pid) for pid in tree):
            return
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(0.05):
                await asyncio.shield(proc.wait())
    if proc.returncode is None:
        tree |= _descendants(proc.pid)
    survivors = {pid for pid in tree if _alive(pid)}
    final: set[int | None] = {proc.pid, *(_pgid(pid) for pid in survivors)}
    _signal_groups(final, signal.SIGKILL)
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(asyncio.TimeoutError):
        async with asyncio.timeout(KILL_GRACE_SECONDS):
            await proc.wait()


def _signal_groups(groups: set[int | None], sig: signal.Signals) -> None:
    own = os.getpgrp()
    for group in groups:
        if group is None or group <= 1 or group == own:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in _process_table():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _process_table() -> list[tuple[int, int]]:
    proc = Path("/proc")
    if proc.is_dir():
        table = []
        for entry in proc.iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
                table.append((int(entry.name), int(stat[1])))
        return table
    try:
        listing = subprocess.run(
            ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [
        (int(fields[0]), int(fields[1]))
        for fields in (line.split() for line in listing.splitlines())
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit()
    ]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ..."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    if stat is not None:
        return stat[0] not in ("Z", "X")
    if Path("/proc").is_dir():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
