"""The console's engine: every decision lives here, behind commands in and events out.

The terminal UI, the Telegram bot and the headless ``autofix serve`` all drive the same
:class:`Engine`: they call :meth:`Engine.approve`, :meth:`Engine.skip` and
:meth:`Engine.retry`, and render the :data:`EngineEvent` values it publishes. Because each
state change is a compare-and-set in the store, two approvals of the same fix (a key press
and a Telegram tap at the same moment) produce exactly one action.

Everything runs on one asyncio loop: the agent links, the ingest batcher, the fix workers
(worktree, Claude Code, tests) and publishing (commit, push, pull request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from agent.wire import ErrorEvent, Hello
from console.config import ConsoleConfig, ServiceConfig
from console.fix.claude import ClaudeOutcome, StreamEvent, run_claude
from console.fix.git import GitError
from console.fix.github import GitHubError
from console.fix.paths import touched_sensitive
from console.fix.prompt import build_prompt
from console.fix.publish import publish_attempt
from console.fix.ready import ReadyWorktrees
from console.fix.sandbox.cage import CageUnavailable, cage_env, cage_for
from console.fix.sandbox.childenv import child_env
from console.fix.testrun import TestResult, TestRunError, run_tests
from console.fix.worktree import (
    TestWrites,
    Worktree,
    diff,
    open_worktree,
    remove_worktree,
    snapshot_files,
    snapshot_main,
    undo_test_writes,
    verify_main_untouched,
)
from console.link import LinkManager, LinkProblem, LinkStatus
from console.models import AttemptRow, Denial, ErrorRow, State
from console.storable import Received
from console.store import Store

log = logging.getLogger(__name__)

INGEST_BATCH = 500
INGEST_GATHER_SECONDS = 0.01
TRANSCRIPT_FLUSH_SECONDS = 0.5
TEST_DIRS = ("test", "tests", "__tests__", "spec")


# --- what the engine publishes -------------------------------------------------------------


@dataclass(frozen=True)
class ErrorChanged:
    """An error was created, counted again, or moved to another state."""

    error: ErrorRow


@dataclass(frozen=True)
class AttemptChanged:
    """A fix attempt changed state or gained results (cost, diff, test result, PR)."""

    attempt: AttemptRow


@dataclass(frozen=True)
class ClaudeActivity:
    """One parsed line of Claude's stream (or a refusal it revealed) for the live panel."""

    attempt_id: int
    event: StreamEvent


@dataclass(frozen=True)
class LinkChanged:
    status: LinkStatus


@dataclass(frozen=True)
class Notice:
    """Something a person should see: failures are never silent."""

    level: Literal["info", "warning", "error"]
    text: str
    error_id: int | None = None
    attempt_id: int | None = None


@dataclass(frozen=True)
class TelegramChanged:
    """The Telegram bot's state for the header: ``on``, ``off`` or ``error``."""

    state: Literal["on", "off", "error"]
    detail: str | None = None


class TelegramControl(Protocol):
    """What the engine (and so the UI's ``t`` key) can ask of the Telegram bot."""

    @property
    def state(self) -> str: ...

    async def set_enabled(self, enabled: bool) -> None: ...


EngineEvent = (
    ErrorChanged | AttemptChanged | ClaudeActivity | LinkChanged | Notice | TelegramChanged
)
Listener = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class CommandResult:
    """The answer to a command; ``ok`` False means nothing was done, ``message`` says why."""

    ok: bool
    message: str
    attempt_id: int | None = None


# --- the engine ----------------------------------------------------------------------------


class Engine:
    """Owns the store, the agent links and the fix workers; views only call its commands."""

    def __init__(self, config: ConsoleConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self._listeners: list[Listener] = []
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[int, asyncio.Event] = {}
        self._worktrees: dict[int, Worktree] = {}
        self._ready = ReadyWorktrees(enabled=config.worktree.keep_ready)
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._ingest_queues: dict[str, asyncio.Queue[Received]] = {}
        self._ingest_tasks: dict[str, asyncio.Task[None]] = {}
        self._links: LinkManager | None = None
        self._started = False
        self._closing = False
        self._unknown_services: set[str] = set()
        # Set by the Telegram bot when one is configured; the UI toggles it through here.
        self.telegram: TelegramControl | None = None

    @classmethod
    async def open(cls, config: ConsoleConfig) -> Engine:
        """Open the store at the configured place; call :meth:`start` to begin work."""
        store = await Store.open(config.db_path)
        return cls(config, store)

    # --- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every engine event; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: EngineEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken view must not stop the engine
                log.exception("engine listener failed on %r", type(event).__name__)

    def report(self, event: EngineEvent) -> None:
        """For components on the engine's loop (the Telegram bot) to report their state."""
        self._emit(event)

    async def set_telegram(self, enabled: bool) -> CommandResult:
        """Turn Telegram notifications and buttons on or off (the UI's ``t`` key)."""
        if self.telegram is None:
            return CommandResult(False, "Telegram is not configured ([telegram] in the config)")
        await self.telegram.set_enabled(enabled)
        return CommandResult(True, f"Telegram {'on' if enabled else 'off'}")

    def notify(
        self,
        level: Literal["info", "warning", "error"],
        text: str,
        *,
        error_id: int | None = None,
        attempt_id: int | None = None,
    ) -> None:
        log.log(
            {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}[level],
            text,
        )
        self._emit(Notice(level, text, error_id=error_id, attempt_id=attempt_id))

    async def _emit_error(self, error_id: int) -> ErrorRow | None:
        row = await self.store.error(error_id)
        if row is not None:
            self._emit(ErrorChanged(row))
        return row

    async def _emit_attempt(self, attempt_id: int) -> AttemptRow | None:
        row = await self.store.attempt(attempt_id)
        if row is not None:
            self._emit(AttemptChanged(row))
            await self._emit_error(row.error_id)
        return row

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, *, links: bool = True) -> None:
        """Recover from a previous run, start the fix workers and (optionally) the links."""
        if self._started:
            return
        self._started = True
        await self._recover()
        for i in range(max(1, self.config.concurrency)):
            self._workers.append(asyncio.create_task(self._worker(), name=f"fix-worker-{i}"))
        for service in self.config.services:
            self._refill(service)
        if links and self.config.hosts:
            self._links = LinkManager(
                self.config.hosts,
                since=self.store.last_seq,
                on_event=self._on_link_event,
                on_status=lambda status: self._emit(LinkChanged(status)),
                on_problem=self._on_link_problem,
                on_hello=self._on_hello,
            )
            self._links.start()

    async def stop(self) -> None:
        """Stop links and workers; running attempts are cancelled and marked interrupted."""
        self._closing = True
        if self._links is not None:
            await self._links.stop()
        for host in list(self._ingest_queues):
            await self._drain_ingest(host)
        for cancel in self._running.values():
            cancel.set()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for task in self._ingest_tasks.values():
            task.cancel()
        await asyncio.gather(*self._ingest_tasks.values(), return_exceptions=True)
        await self._ready.close()
        await self.store.close()

    @property
    def busy(self) -> bool:
        """True while a fix attempt is running (the UI asks before quitting)."""
        return bool(self._running)

    def link_statuses(self) -> dict[str, LinkStatus]:
        return self._links.statuses() if self._links else {}

    async def _recover(self) -> None:
        for attempt in await self.store.recover():
            self.notify(
                "warning",
                f"attempt {attempt.id} was interrupted by a console stop; retry or skip it",
                error_id=attempt.error_id,
                attempt_id=attempt.id,
            )
            await self._discard_worktree(attempt)

    # --- ingest ----------------------------------------------------------------------------

    async def _on_hello(self, host: str, hello: Hello) -> None:
        await self.store.set_host_instance(host, hello.instance)

    def _on_link_problem(self, problem: LinkProblem) -> None:
        self.notify("warning", f"{problem.host}: {problem.message}")

    async def _on_link_event(self, host: str, event: Received) -> None:
        queue = self._ingest_queues.get(host)
        if queue is None:
            queue = asyncio.Queue(maxsize=INGEST_BATCH * 4)
            self._ingest_queues[host] = queue
            self._ingest_tasks[host] = asyncio.create_task(self._ingest_loop(host, queue))
        await queue.put(event)

    async def _ingest_loop(self, host: str, queue: asyncio.Queue[Received]) -> None:
        """Store a host's events in batches: one transaction per burst, not per line."""
        while True:
            batch = [await queue.get()]
            if queue.qsize() < INGEST_BATCH:
                # Let the link read on for a moment: one transaction per burst, not per line.
                await asyncio.sleep(INGEST_GATHER_SECONDS)
            while len(batch) < INGEST_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self.ingest(host, batch)
            except Exception as exc:
                # Nothing is lost: the link resumes after the last *stored* seq.
                self.notify("error", f"{host}: storing {len(batch)} event(s) failed: {exc}")
            finally:
                for _ in batch:
                    queue.task_done()

    async def _drain_ingest(self, host: str) -> None:
        queue = self._ingest_queues.get(host)
        if queue is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(queue.join(), 10)

    async def ingest(self, host: str, events: Sequence[ErrorEvent | Received]) -> list[int]:
        """Store events from a host; new errors enter the queue. Returns the new error ids.

        Events from a link come with their wire line, which the store keeps as it is.
        """
        results = await self.store.ingest(host, events)
        created: list[int] = []
        touched: dict[int, None] = {}
        for result in results:
            if result.refused is not None:
                self.notify("error", result.refused)
                continue
            if result.duplicate:
                continue
            touched[result.error_id] = None
            if result.created:
                created.append(result.error_id)
        for error_id in created:
            await self._enqueue_new(error_id)
        counted = [error_id for error_id in touched if error_id not in created]
        if counted and self._listeners:
            for row in await self.store.errors_by_id(counted):
                self._emit(ErrorChanged(row))
        return created

    async def _enqueue_new(self, error_id: int) -> None:
        if not await self.store.transition(error_id, State.NEW, State.AWAITING_APPROVAL):
            return
        row = await self._emit_error(error_id)
        if row is None:
            return
        if self.config.service(row.service) is None:
            if row.service not in self._unknown_services:
                self._unknown_services.add(row.service)
                self.notify(
                    "warning",
                    f"errors from service {row.service!r} can be viewed but not fixed: "
                    "it has no [[services]] entry in the config",
                    error_id=error_id,
                )
            return
        if row.severity in self.config.auto_approve:
            await self.approve(error_id, actor="auto")

    # --- commands --------------------------------------------------------------------------

    async def approve(self, error_id: int, actor: str) -> CommandResult:
        """Approve what the error is waiting for: a fix attempt, or opening the PR."""
        error = await self.store.error(error_id)
        if error is None:
            return CommandResult(False, f"no error {error_id}")
        if error.state is State.AWAITING_APPROVAL:
            return await self._start_attempt(error, actor, expected=State.AWAITING_APPROVAL)
        if error.state is State.REVIEW and error.current_attempt_id is not None:
            return await self.publish(error.current_attempt_id, actor)
        return CommandResult(False, f"already decided: error {error_id} is {error.state.value}")

    async def skip(self, error_id: int, actor: str, reason: str | None = None) -> CommandResult:
        """Shelve the error (and discard its attempt's worktree)."""
        error = await self.store.error(error_id)
        if error is None:
            return CommandResult(False, f"no error {error_id}")
        if error.state not in (
            State.AWAITING_APPROVAL,
            State.REVIEW,
            State.FAILED,
            State.INTERRUPTED,
        ):
            return CommandResult(False, f"already decided: error {error_id} is {error.state.value}")
        lock = self._locks[error.current_attempt_id or -error_id]
        async with lock:
            moved = await self.store.transition(
                error_id,
                error.state,
                State.SKIPPED,
                attempt_id=error.current_attempt_id,
                actor=actor,
                reason=reason,
            )
        if not moved:
            current = await self.store.error(error_id)
            state = current.state.value if current else "gone"
            return CommandResult(False, f"already decided: error {error_id} is {state}")
        if error.current_attempt_id is not None:
            attempt = await self.store.attempt(error.current_attempt_id)
            if attempt is not None:
                await self._discard_worktree(attempt)
            await self._emit_attempt(error.current_attempt_id)
        else:
            await self._emit_error(error_id)
        return CommandResult(True, f"skipped error {error_id}", error.current_attempt_id)

    async def retry(
        self, error_id: int, actor: str, instruction: str | None = None
    ) -> CommandResult:
        """Start a new attempt from a clean base, optionally with an extra instruction."""
        error = await self.store.error(error_id)
        if error is None:
            return CommandResult(False, f"no error {error_id}")
        if error.state not in (State.REVIEW, State.FAILED, State.INTERRUPTED):
            return CommandResult(False, f"cannot retry: error {error_id} is {error.state.value}")
        previous = error.current_attempt_id
        result = await self._start_attempt(
            error, actor, expected=error.state, instruction=(instruction or "").strip() or None
        )
        if result.ok and previous is not None:
            old = await self.store.attempt(previous)
            if old is not None:
                await self._discard_worktree(old, keep_branch=True)
        return result

    async def reopen(self, error_id: int, actor: str) -> CommandResult:
        """Bring a skipped error back to awaiting approval."""
        if await self.store.transition(
            error_id, State.SKIPPED, State.AWAITING_APPROVAL, actor=actor
        ):
            await self._emit_error(error_id)
            return CommandResult(True, f"error {error_id} awaits approval again")
        return CommandResult(False, f"error {error_id} is not skipped")

    async def _start_attempt(
        self,
        error: ErrorRow,
        actor: str,
        *,
        expected: State,
        instruction: str | None = None,
    ) -> CommandResult:
        if self.config.service(error.service) is None:
            return CommandResult(
                False, f"service {error.service!r} is not configured; add it to [[services]]"
            )
        attempt = await self.store.create_attempt(
            error.id, instruction, expected=expected, actor=actor
        )
        if attempt is None:
            current = await self.store.error(error.id)
            state = current.state.value if current else "gone"
            return CommandResult(False, f"already decided: error {error.id} is {state}")
        self._queue.put_nowait(attempt.id)
        await self._emit_attempt(attempt.id)
        waiting = len(self._running) >= max(1, self.config.concurrency)
        message = f"fix attempt {attempt.id} " + ("queued" if waiting else "started")
        return CommandResult(True, message, attempt.id)

    # --- fix attempts ----------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            attempt_id = await self._queue.get()
            try:
                await self._run_attempt(attempt_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine must survive any attempt
                log.exception("attempt %s crashed", attempt_id)
                await self._fail(attempt_id, f"internal error: {exc!r}")
            finally:
                self._queue.task_done()

    async def wait_idle(self) -> None:
        """Wait until every queued attempt has finished (for the CLI and tests)."""
        await self._queue.join()

    async def wait_ready_worktrees(self) -> None:
        """Wait until the spare worktrees being prepared are ready (for benches and tests)."""
        await self._ready.settled()

    def _refill(self, service: ServiceConfig) -> None:
        self._ready.refill(service.repo, base_branch=service.base_branch, remote=service.remote)

    async def _run_attempt(self, attempt_id: int) -> None:
        attempt = await self.store.attempt(attempt_id)
        if attempt is None or attempt.state is not State.FIXING:
            return
        error = await self.store.error(attempt.error_id)
        if error is None or error.current_attempt_id != attempt_id:
            return
        service = self.config.service(error.service)
        if service is None:
            await self._fail(attempt_id, f"service {error.service!r} is not configured")
            return
        cancel = asyncio.Event()
        self._running[attempt_id] = cancel
        started = time.monotonic()
        # The worktree is made while the main checkout is read: neither touches what the
        # other reads, and on a large repository each takes a while.
        creating = asyncio.create_task(
            self._ready.create(
                service.repo,
                error.fingerprint,
                base_branch=service.base_branch,
                remote=service.remote,
            )
        )
        try:
            before = await snapshot_main(service.repo)
        except BaseException as exc:
            self._running.pop(attempt_id, None)
            await self._abandon_worktree(attempt_id, creating)
            if not isinstance(exc, GitError):
                raise
            await self._fail(attempt_id, f"repository {service.repo}: {exc}")
            return
        try:
            await self._attempt_steps(attempt, error, service, cancel, creating)
        except asyncio.CancelledError:
            await self._interrupt(attempt_id)
            raise
        except GitError as exc:
            await self._fail(attempt_id, f"git: {exc}")
        finally:
            self._running.pop(attempt_id, None)
            problems = await self._verify_main(service, before)
            if problems:
                text = "; ".join(problems)
                self.notify(
                    "error",
                    f"the main checkout of {service.name} changed during attempt "
                    f"{attempt_id}: {text}",
                    error_id=error.id,
                    attempt_id=attempt_id,
                )
                await self._fail(attempt_id, f"main checkout changed: {text}")
            self._refill(service)
            log.info("attempt %s took %.1fs", attempt_id, time.monotonic() - started)

    async def _abandon_worktree(self, attempt_id: int, creating: asyncio.Task[Worktree]) -> None:
        """Stop making the worktree of an attempt that ends before using it; one already
        made is recorded, so failing or recovering the attempt removes it."""
        creating.cancel()
        try:
            wt = await creating
        except (asyncio.CancelledError, GitError, OSError, ValueError):
            return
        self._worktrees[attempt_id] = wt
        await self.store.update_attempt(attempt_id, branch=wt.branch, worktree=str(wt.path))

    async def _verify_main(self, service: ServiceConfig, before: object) -> list[str]:
        try:
            return await verify_main_untouched(service.repo, before)  # type: ignore[arg-type]
        except GitError as exc:
            return [f"could not check the main checkout: {exc}"]

    async def _attempt_steps(
        self,
        attempt: AttemptRow,
        error: ErrorRow,
        service: ServiceConfig,
        cancel: asyncio.Event,
        creating: asyncio.Task[Worktree],
    ) -> None:
        attempt_id = attempt.id
        wt = await creating
        self._worktrees[attempt_id] = wt
        await self.store.update_attempt(attempt_id, branch=wt.branch, worktree=str(wt.path))
        await self._emit_attempt(attempt_id)
        if wt.warning:
            self.notify("warning", wt.warning, error_id=error.id, attempt_id=attempt_id)

        if service.setup_command:
            # Before Claude, on the base's code only: it keeps the network (npm ci), but
            # nothing of what Claude writes has run yet.
            setup = await run_tests(
                service.setup_command,
                wt.path,
                service.test_timeout_seconds,
                env=_child_env(),
            )
            if not setup.passed:
                await self._fail(
                    attempt_id,
                    f"setup command `{service.setup_command}` failed "
                    f"({_exit_text(setup)}): {_last_line(setup.output_tail)}",
                )
                return

        prompt = build_prompt(
            error,
            wt.path,
            service.app_root,
            attempt.extra_instruction,
            service.test_command,
            has_tests=any((wt.path / d).is_dir() for d in TEST_DIRS),
        )
        outcome = await self._run_claude(attempt_id, prompt, wt.path, service, cancel)
        await self.store.update_attempt(
            attempt_id,
            claude_cost_usd=outcome.cost_usd,
            claude_turns=outcome.num_turns,
            claude_duration_ms=outcome.duration_ms,
            claude_summary=outcome.summary,
            claude_denials=Denial.encode_all(outcome.denials),
        )
        if cancel.is_set() or self._closing:
            await self._interrupt(attempt_id)
            return
        if not outcome.ok:
            await self._fail(attempt_id, f"Claude Code: {outcome.reason}")
            return

        if not await self.store.transition_attempt(attempt_id, State.FIXING, State.TESTING):
            return
        await self._emit_attempt(attempt_id)
        ran = await self._caged_tests(attempt_id, wt, service)
        if ran is None:
            return
        result, written = ran
        change = await diff(wt)
        await self.store.update_attempt(attempt_id, diff=change.text, diff_stat=change.stat)
        if not change.files:
            await self._fail(attempt_id, "Claude Code finished without changing any file")
            return
        if not result.passed and service.require_passing_tests:
            await self._fail(
                attempt_id,
                f"tests failed ({_exit_text(result)}): {_last_line(result.output_tail)}",
            )
            return
        sensitive = touched_sensitive(change.stat, service.sensitive_paths)
        if not await self.store.transition_attempt(attempt_id, State.TESTING, State.REVIEW):
            return
        await self._emit_attempt(attempt_id)
        tests = "tests passed" if result.passed else f"tests FAILED ({_exit_text(result)})"
        flag = f"; touches sensitive paths: {', '.join(sensitive)}" if sensitive else ""
        if written.paths:
            flag += f"; {len(written.paths)} file(s) written by the tests were not kept"
        self.notify(
            "info",
            f"fix for error {error.id} is ready for review: {len(change.files)} file(s), "
            f"{tests}{flag}",
            error_id=error.id,
            attempt_id=attempt_id,
        )

    async def _caged_tests(
        self, attempt_id: int, wt: Worktree, service: ServiceConfig
    ) -> tuple[TestResult, TestWrites] | None:
        """Run the tests on Claude's edits in the cage, then undo whatever they wrote.

        None when they could not run at all (the attempt has failed with the reason).
        """
        before = await snapshot_files(wt)
        try:
            cage = cage_for(wt.path, hidden=(self.config.state_dir,))
            result = await run_tests(
                service.test_command,
                wt.path,
                service.test_timeout_seconds,
                env=cage_env(_child_env()),
                cage=cage,
            )
        except (CageUnavailable, TestRunError) as exc:
            await undo_test_writes(wt, before)
            await self._fail(attempt_id, f"tests not run: {exc}")
            return None
        written = await undo_test_writes(wt, before)
        tail = result.output_tail
        if written.paths:
            tail = (
                f"{tail}\n[written by the tests, not part of the fix and undone: "
                f"{', '.join(written.paths)}]"
            ).lstrip("\n")
        await self.store.record_test_result(
            attempt_id,
            command=service.test_command,
            exit_code=result.exit_code,
            output_tail=tail,
            duration_ms=int(result.duration_s * 1000),
            timed_out=result.timed_out,
        )
        return result, written

    async def _run_claude(
        self,
        attempt_id: int,
        prompt: str,
        cwd: Path,
        service: ServiceConfig,
        cancel: asyncio.Event,
    ) -> ClaudeOutcome:
        pending: list[str] = []
        last_flush = time.monotonic()

        async def flush() -> None:
            nonlocal last_flush
            if pending:
                lines = pending[:]
                pending.clear()
                await self.store.append_transcript(attempt_id, lines)
            last_flush = time.monotonic()

        flushes: set[asyncio.Task[None]] = set()

        def on_line(line: str) -> None:
            pending.append(line)
            if time.monotonic() - last_flush >= TRANSCRIPT_FLUSH_SECONDS:
                task = asyncio.create_task(flush())
                flushes.add(task)
                task.add_done_callback(flushes.discard)

        def on_event(event: StreamEvent) -> None:
            self._emit(ClaudeActivity(attempt_id, event))

        try:
            return await run_claude(
                prompt=prompt,
                cwd=cwd,
                config=self.config.claude,
                test_command=service.test_command,
                state_dir=self.config.state_dir,
                on_event=on_event,
                transcript=on_line,
                cancel=cancel,
            )
        finally:
            if flushes:
                await asyncio.gather(*flushes, return_exceptions=True)
            await flush()

    async def _fail(self, attempt_id: int, reason: str) -> None:
        """Mark an attempt failed; its worktree goes first so a failed state is final."""
        attempt = await self.store.attempt(attempt_id)
        if attempt is None or attempt.state not in (State.FIXING, State.TESTING, State.REVIEW):
            return
        await self._discard_worktree(attempt)
        if await self.store.transition_attempt(
            attempt_id, attempt.state, State.FAILED, reason=reason
        ):
            self.notify(
                "error",
                f"fix attempt {attempt_id} failed: {reason}",
                error_id=attempt.error_id,
                attempt_id=attempt_id,
            )
            await self._emit_attempt(attempt_id)

    async def _interrupt(self, attempt_id: int) -> None:
        attempt = await self.store.attempt(attempt_id)
        if attempt is None:
            return
        for state in (State.FIXING, State.TESTING):
            if attempt.state is state and await self.store.transition_attempt(
                attempt_id, state, State.INTERRUPTED, reason="stopped before it finished"
            ):
                await self._emit_attempt(attempt_id)

    async def _discard_worktree(self, attempt: AttemptRow, *, keep_branch: bool = False) -> None:
        """Remove an attempt's worktree; the branch goes only if the config says so."""
        wt = self._worktrees.pop(attempt.id, None)
        error = await self.store.error(attempt.error_id)
        service = self.config.service(error.service) if error else None
        if service is None or not attempt.worktree or not attempt.branch:
            return
        if wt is None:
            if not Path(attempt.worktree).is_dir():
                return
            try:
                wt = await open_worktree(
                    service.repo,
                    Path(attempt.worktree),
                    attempt.branch,
                    base_branch=service.base_branch,
                    remote=service.remote,
                )
            except GitError:
                return
        delete = self.config.worktree.delete_branch_on_discard and not keep_branch
        try:
            await remove_worktree(service.repo, wt, delete_branch=delete)
        except (GitError, ValueError) as exc:
            self.notify(
                "warning",
                f"could not remove worktree {attempt.worktree}: {exc}",
                attempt_id=attempt.id,
            )

    # --- publishing ------------------------------------------------------------------------

    async def publish(self, attempt_id: int, actor: str) -> CommandResult:
        """Commit, push and open the PR for a reviewed attempt, exactly once."""
        async with self._locks[attempt_id]:
            attempt = await self.store.attempt(attempt_id)
            if attempt is None:
                return CommandResult(False, f"no attempt {attempt_id}")
            if attempt.state is not State.REVIEW:
                return CommandResult(
                    False, f"already decided: attempt {attempt_id} is {attempt.state.value}"
                )
            error = await self.store.error(attempt.error_id)
            service = self.config.service(error.service) if error else None
            if error is None or service is None or not attempt.worktree or not attempt.branch:
                return CommandResult(False, f"attempt {attempt_id} has no worktree to publish")
            try:
                url, number, note = await self._push_and_open_pr(attempt, error, service)
            except (GitError, GitHubError, OSError) as exc:
                await self.store.update_attempt(attempt_id, reason=f"publishing failed: {exc}")
                self.notify(
                    "error",
                    f"publishing attempt {attempt_id} failed: {exc}",
                    error_id=error.id,
                    attempt_id=attempt_id,
                )
                await self._emit_attempt(attempt_id)
                return CommandResult(False, f"publishing failed: {exc}", attempt_id)
            moved = await self.store.transition_attempt(
                attempt_id,
                State.REVIEW,
                State.PR_OPENED,
                actor=actor,
                reason=note,
                pr_url=url,
                pr_number=number,
            )
            if not moved:
                return CommandResult(False, f"already decided: attempt {attempt_id}")
            refreshed = await self.store.attempt(attempt_id)
            if refreshed is not None:
                await self._discard_worktree(refreshed, keep_branch=True)
            await self._emit_attempt(attempt_id)
            self.notify("info", note, error_id=error.id, attempt_id=attempt_id)
            return CommandResult(True, note, attempt_id)

    async def _push_and_open_pr(
        self, attempt: AttemptRow, error: ErrorRow, service: ServiceConfig
    ) -> tuple[str | None, int | None, str]:
        wt = self._worktrees.get(attempt.id) or await open_worktree(
            service.repo,
            Path(attempt.worktree or ""),
            attempt.branch or "",
            base_branch=service.base_branch,
            remote=service.remote,
        )
        tests = await self.store.test_results(attempt.id)
        last_test = tests[-1] if tests else None
        published = await publish_attempt(
            wt,
            error,
            service,
            self.config.github,
            summary=attempt.claude_summary or "",
            last_test=(
                TestResult(
                    exit_code=last_test.exit_code,
                    passed=last_test.exit_code == 0,
                    timed_out=last_test.timed_out,
                    duration_s=last_test.duration_ms / 1000,
                    output_tail=last_test.output_tail,
                )
                if last_test
                else None
            ),
            stat=attempt.diff_stat,
        )
        if published.url is not None and published.number is not None:
            await self.store.record_pr(attempt.id, wt.branch, published.url, published.number)
        for warning in published.warnings:
            self.notify("warning", warning, error_id=error.id, attempt_id=attempt.id)
        return published.url, published.number, published.note


def _child_env() -> dict[str, str]:
    """What the service's own commands (setup, tests) see of the console's environment:
    the allow list without any credential."""
    return child_env(os.environ, allow_credentials=False)


def _exit_text(result: TestResult) -> str:
    if result.timed_out:
        return "timed out"
    return f"exit {result.exit_code}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"
