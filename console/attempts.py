"""One fix attempt's pipeline: worktree -> setup -> Claude Code -> caged tests -> diff.

The engine decides *whether* an attempt runs (approve, retry) and what happens to its
result (publish, skip); :class:`AttemptRunner` only carries one out, reporting every step
through the callables it is given, and removes worktrees when an attempt is over. It also
keeps each service's spare checkout (:mod:`console.fix.ready`) that attempts start from.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from agent.redact import Redactor, env_values
from console.config import ConsoleConfig, ServiceConfig
from console.events import ClaudeActivity, EngineEvent, Notify
from console.fix.claude import ClaudeOutcome, RunShape, StreamEvent, run_claude
from console.fix.git import GitError
from console.fix.paths import TEST_DIRS, touched_sensitive
from console.fix.prompt import build_prompt, verify_prompt
from console.fix.ready import ReadyWorktrees
from console.fix.sandbox.cage import CageUnavailable, cage_env, cage_for
from console.fix.sandbox.childenv import child_env
from console.fix.sandbox.claude_policy import SECRET_ENV
from console.fix.testrun import TestResult, TestRunError, run_tests
from console.fix.transcript import RoundStart
from console.fix.verdict import VERDICT_SCHEMA, Verdict, VerdictError, parse_verdict, report_title
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
from console.models import AttemptRow, Denial, ErrorRow, State, attempt_name
from console.regression import after_merge, previous_fix
from console.store import Store

log = logging.getLogger(__name__)

TRANSCRIPT_FLUSH_SECONDS = 0.5


@dataclass(frozen=True)
class Requeued:
    """An attempt Claude's API refused for load (429/529): it goes back to the queue.

    ``resets_at`` is when the limit resets (epoch seconds), when the CLI said.
    """

    resets_at: float | None
    reason: str


class AttemptRunner:
    """Carries out attempts the engine queued and cleans up after them.

    ``emit`` publishes an engine event, ``notify`` tells a person something, and
    ``changed`` re-reads an attempt (and its error) from the store and publishes both.
    """

    def __init__(
        self,
        config: ConsoleConfig,
        store: Store,
        *,
        emit: Callable[[EngineEvent], None],
        notify: Notify,
        changed: Callable[[int], Awaitable[object]],
    ) -> None:
        self._config = config
        self._store = store
        self._emit = emit
        self._notify = notify
        self._changed = changed
        self._worktrees: dict[int, Worktree] = {}
        self._ready = ReadyWorktrees(enabled=config.worktree.keep_ready)
        # Failing test output goes back to Claude scrubbed like the agent scrubs logs, and
        # without the values of the console's own secrets.
        self._redactor = Redactor(values=env_values(SECRET_ENV))
        # The attempts running now, each with the event that cancels it.
        self.running: dict[int, asyncio.Event] = {}
        # Set while the console stops: a finishing attempt is interrupted, not failed.
        self.closing = False

    def reconfigure(self, config: ConsoleConfig) -> None:
        """A reloaded config, for the attempts that start from now on."""
        self._config = config

    def cancel_all(self) -> None:
        """Ask every running attempt to stop; each ends as interrupted."""
        self.closing = True
        for cancel in self.running.values():
            cancel.set()

    def refill(self, service: ServiceConfig) -> None:
        """Prepare the service's spare checkout in the background (see console.fix.ready)."""
        self._ready.refill(service.repo, base_branch=service.base_branch, remote=service.remote)

    async def spares_ready(self) -> None:
        """Wait until the spare checkouts being prepared are ready."""
        await self._ready.settled()

    async def close(self) -> None:
        """Remove every spare checkout; call once the attempts have stopped."""
        await self._ready.close()

    async def worktree_of(self, attempt: AttemptRow, service: ServiceConfig) -> Worktree:
        """The attempt's worktree: the one this run made, or the one on disk reopened."""
        return self._worktrees.get(attempt.id) or await open_worktree(
            service.repo,
            Path(attempt.worktree or ""),
            attempt.branch or "",
            base_branch=service.base_branch,
            remote=service.remote,
        )

    async def run(self, attempt_id: int) -> Requeued | None:
        """Run one queued attempt to review, failure or interruption, or hand it back to
        the queue (:class:`Requeued`); the main checkout is checked afterwards whatever
        happened."""
        attempt = await self._store.attempt(attempt_id)
        if attempt is None or attempt.state is not State.FIXING:
            return None
        error = await self._store.error(attempt.error_id)
        if error is None or error.current_attempt_id != attempt_id:
            return None
        service = self._config.service(error.service)
        if service is None:
            await self.fail(attempt_id, f"service {error.service!r} is not configured")
            return None
        cancel = asyncio.Event()
        self.running[attempt_id] = cancel
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
            self.running.pop(attempt_id, None)
            await self._abandon_worktree(attempt_id, creating)
            if not isinstance(exc, GitError):
                raise
            await self.fail(attempt_id, f"repository {service.repo}: {exc}")
            return None
        requeued: Requeued | None = None
        try:
            requeued = await self._attempt_steps(attempt, error, service, cancel, creating)
        except asyncio.CancelledError:
            await self._interrupt(attempt_id)
            raise
        except GitError as exc:
            await self.fail(attempt_id, f"git: {exc}")
        finally:
            self.running.pop(attempt_id, None)
            problems = await self._verify_main(service, before)
            if problems:
                text = "; ".join(problems)
                self._notify(
                    "error",
                    f"the main checkout of {service.name} changed during "
                    f"{attempt_name(attempt, error)}: {text}",
                    error_id=error.id,
                    attempt_id=attempt_id,
                )
                await self.fail(attempt_id, f"main checkout changed: {text}")
                requeued = None
            self.refill(service)
            log.info("attempt %s took %.1fs", attempt_id, time.monotonic() - started)
        return requeued

    async def _abandon_worktree(self, attempt_id: int, creating: asyncio.Task[Worktree]) -> None:
        """Stop making the worktree of an attempt that ends before using it; one already
        made is recorded, so failing or recovering the attempt removes it."""
        creating.cancel()
        try:
            wt = await creating
        except (asyncio.CancelledError, GitError, OSError, ValueError):
            return
        self._worktrees[attempt_id] = wt
        await self._store.update_attempt(attempt_id, branch=wt.branch, worktree=str(wt.path))

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
    ) -> Requeued | None:
        attempt_id = attempt.id
        wt = await creating
        self._worktrees[attempt_id] = wt
        await self._store.update_attempt(attempt_id, branch=wt.branch, worktree=str(wt.path))
        await self._changed(attempt_id)
        if wt.warning:
            self._notify("warning", wt.warning, error_id=error.id, attempt_id=attempt_id)

        # Before Claude, on the base's code only: they keep the network (npm ci), but
        # nothing of what Claude writes has run yet. The build leaves the source maps that
        # turn the stack's dist/*.js frames into the source lines the prompt shows.
        for step, command in (("setup", service.setup_command), ("build", service.build_command)):
            if not command:
                continue
            setup = await run_tests(
                command, wt.path, service.test_timeout_seconds, env=_child_env()
            )
            if not setup.passed:
                await self.fail(
                    attempt_id,
                    f"{step} command `{command}` failed "
                    f"({_exit_text(setup)}): {_last_line(setup.output_tail)}",
                )
                return None

        read_only = service.stop_at == "report"
        # A retry after a regression is told what the merged fix was and why it did not hold.
        merged = await after_merge(self._store, error, before=attempt_id)
        prompt = build_prompt(
            error,
            wt.path,
            service.app_root,
            attempt.extra_instruction,
            service.test_command,
            has_tests=any((wt.path / d).is_dir() for d in TEST_DIRS),
            constraints=service.constraints,
            read_only=read_only,
            previous=previous_fix(merged) if merged is not None else None,
        )
        ran = await self._rounds(attempt_id, attempt, prompt, wt, service, cancel, read_only)
        if ran is None or isinstance(ran, Requeued):
            return ran
        if isinstance(ran, Verdict):
            await self._report(attempt_id, error, ran)
            return None
        result, written = ran
        if not await self._store.transition_attempt(attempt_id, State.FIXING, State.TESTING):
            return None
        await self._changed(attempt_id)
        change = await diff(wt)
        await self._store.update_attempt(attempt_id, diff=change.text, diff_stat=change.stat)
        if not change.files:
            await self.fail(attempt_id, "Claude Code finished without changing any file")
            return None
        if not result.passed and service.require_passing_tests:
            await self.fail(
                attempt_id,
                f"tests failed ({_exit_text(result)}): {_last_line(result.output_tail)}",
            )
            return None
        sensitive = touched_sensitive(change.stat, service.sensitive_paths)
        if not await self._store.transition_attempt(attempt_id, State.TESTING, State.REVIEW):
            return None
        await self._changed(attempt_id)
        tests = "tests passed" if result.passed else f"tests FAILED ({_exit_text(result)})"
        flag = f"; touches sensitive paths: {', '.join(sensitive)}" if sensitive else ""
        if written.paths:
            flag += f"; {len(written.paths)} file(s) written by the tests were not kept"
        self._notify(
            "info",
            f"fix for error {error.id} is ready for review: {len(change.files)} file(s), "
            f"{tests}{flag}",
            error_id=error.id,
            attempt_id=attempt_id,
        )
        return None

    async def _rounds(
        self,
        attempt_id: int,
        attempt: AttemptRow,
        prompt: str,
        wt: Worktree,
        service: ServiceConfig,
        cancel: asyncio.Event,
        read_only: bool,
    ) -> tuple[TestResult, TestWrites] | Verdict | Requeued | None:
        """Claude and the caged tests, round after round in one Claude session.

        The first round runs on the prompt; when the tests fail on the edits, each further
        round (up to ``claude.verify_rounds``) resumes the session with the failing output.
        Every round is recorded and its cost and turns added to the attempt's. Returns the
        last test run, the verdict when it is a report rather than a fix, :class:`Requeued`
        when the API refused for load, or None when the attempt has already ended (failed
        or interrupted).
        """
        rounds = 1 if read_only else 1 + self._config.claude.verify_rounds
        session = str(uuid.uuid4())
        spent = _Spent()
        ran: tuple[TestResult, TestWrites] | None = None
        for number in range(1, rounds + 1):
            if ran is not None:
                separator = RoundStart(number, rounds, f"tests failed ({_exit_text(ran[0])})")
                await self._store.append_transcript(attempt_id, [separator.line()])
                self._emit(ClaudeActivity(attempt_id, separator))
                prompt = verify_prompt(
                    service.test_command,
                    self._redactor.redact(ran[0].output_tail),
                    number,
                    rounds,
                )
            shape = RunShape(
                session_id=session,
                resume=number > 1,
                json_schema=VERDICT_SCHEMA,
                read_only=read_only,
            )
            outcome = await self._run_claude(attempt_id, prompt, wt.path, service, cancel, shape)
            await self._store.update_attempt(attempt_id, **spent.add(outcome))
            if cancel.is_set() or self.closing:
                await self._interrupt(attempt_id)
                return None
            if outcome.rate_limited:
                # Not the attempt's fault: it starts again from a fresh worktree once the
                # queue resumes, and is not marked failed.
                await self.discard_worktree(await self._store.attempt(attempt_id) or attempt)
                return Requeued(outcome.rate_limit_resets_at, outcome.reason or "rate-limited")
            if not outcome.ok:
                await self._record_round(attempt_id, number, outcome, None)
                await self.fail(attempt_id, f"Claude Code: {outcome.reason}")
                return None
            try:
                verdict = parse_verdict(outcome.structured_output)
            except VerdictError as exc:
                await self._record_round(attempt_id, number, outcome, None)
                await self.fail(attempt_id, f"invalid verdict: {exc}")
                return None
            await self._store.update_attempt(
                attempt_id, verdict=verdict.encode(), claude_summary=verdict.summary
            )
            if not verdict.is_fix:
                await self._record_round(attempt_id, number, outcome, None)
                return verdict
            if read_only:
                await self._record_round(attempt_id, number, outcome, None)
                await self.fail(
                    attempt_id,
                    "invalid verdict: outcome 'fixed' from a read-only investigation "
                    f"(service {service.name} stops at the report)",
                )
                return None
            ran = await self._caged_tests(attempt_id, wt, service)
            await self._record_round(attempt_id, number, outcome, ran[0].passed if ran else None)
            if ran is None or ran[0].passed:
                return ran
        return ran

    async def _record_round(
        self, attempt_id: int, number: int, outcome: ClaudeOutcome, passed: bool | None
    ) -> None:
        await self._store.record_round(
            attempt_id,
            number,
            turns=outcome.num_turns,
            cost_usd=outcome.cost_usd,
            tests_passed=passed,
        )
        await self._changed(attempt_id)

    async def _report(self, attempt_id: int, error: ErrorRow, verdict: Verdict) -> None:
        """End an attempt as an investigation report: no diff and no worktree left; the
        verdict is kept with the attempt and shown in review, and nothing can be pushed."""
        attempt = await self._store.attempt(attempt_id)
        if attempt is None:
            return
        await self.discard_worktree(attempt)
        for old, new in ((State.FIXING, State.TESTING), (State.TESTING, State.REVIEW)):
            if not await self._store.transition_attempt(attempt_id, old, new):
                return
        await self._changed(attempt_id)
        self._notify(
            "info",
            f"report for error {error.id}: {report_title(verdict)}: {verdict.summary}",
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
            cage = cage_for(wt.path, hidden=(self._config.state_dir,))
            result = await run_tests(
                service.test_command,
                wt.path,
                service.test_timeout_seconds,
                env=cage_env(_child_env()),
                cage=cage,
            )
        except (CageUnavailable, TestRunError) as exc:
            await undo_test_writes(wt, before)
            await self.fail(attempt_id, f"tests not run: {exc}")
            return None
        written = await undo_test_writes(wt, before)
        tail = result.output_tail
        if written.paths:
            tail = (
                f"{tail}\n[written by the tests, not part of the fix and undone: "
                f"{', '.join(written.paths)}]"
            ).lstrip("\n")
        await self._store.record_test_result(
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
        shape: RunShape,
    ) -> ClaudeOutcome:
        pending: list[str] = []
        last_flush = time.monotonic()

        async def flush() -> None:
            nonlocal last_flush
            if pending:
                lines = pending[:]
                pending.clear()
                await self._store.append_transcript(attempt_id, lines)
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
                config=self._config.claude,
                test_command=service.test_command,
                state_dir=self._config.state_dir,
                on_event=on_event,
                transcript=on_line,
                cancel=cancel,
                shape=shape,
            )
        finally:
            if flushes:
                await asyncio.gather(*flushes, return_exceptions=True)
            await flush()

    async def fail(self, attempt_id: int, reason: str) -> None:
        """Mark an attempt failed; its worktree goes first so a failed state is final."""
        attempt = await self._store.attempt(attempt_id)
        if attempt is None or attempt.state not in (State.FIXING, State.TESTING, State.REVIEW):
            return
        await self.discard_worktree(attempt)
        if await self._store.transition_attempt(
            attempt_id, attempt.state, State.FAILED, reason=reason
        ):
            error = await self._store.error(attempt.error_id)
            self._notify(
                "error",
                f"fix {attempt_name(attempt, error)} failed: {reason}",
                error_id=attempt.error_id,
                attempt_id=attempt_id,
            )
            await self._changed(attempt_id)

    async def _interrupt(self, attempt_id: int) -> None:
        attempt = await self._store.attempt(attempt_id)
        if attempt is None:
            return
        for state in (State.FIXING, State.TESTING):
            if attempt.state is state and await self._store.transition_attempt(
                attempt_id, state, State.INTERRUPTED, reason="stopped before it finished"
            ):
                await self._changed(attempt_id)

    async def discard_worktree(self, attempt: AttemptRow, *, keep_branch: bool = False) -> None:
        """Remove an attempt's worktree; the branch goes only if the config says so."""
        wt = self._worktrees.pop(attempt.id, None)
        error = await self._store.error(attempt.error_id)
        service = self._config.service(error.service) if error else None
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
        delete = self._config.worktree.delete_branch_on_discard and not keep_branch
        try:
            await remove_worktree(service.repo, wt, delete_branch=delete)
        except (GitError, ValueError) as exc:
            self._notify(
                "warning",
                f"could not remove worktree {attempt.worktree}: {exc}",
                attempt_id=attempt.id,
            )


_N = TypeVar("_N", int, float)


class _Spent:
    """What an attempt's rounds have used so far, summed into the attempt's columns."""

    def __init__(self) -> None:
        self.cost: float | None = None
        self.turns: int | None = None
        self.duration: int | None = None
        self.denials: list[Denial] = []

    def add(self, outcome: ClaudeOutcome) -> dict[str, object]:
        """Add one round; returns the attempt fields to write."""
        self.cost = _plus(self.cost, outcome.cost_usd)
        self.turns = _plus(self.turns, outcome.num_turns)
        self.duration = _plus(self.duration, outcome.duration_ms)
        self.denials += outcome.denials
        return {
            "claude_cost_usd": self.cost,
            "claude_turns": self.turns,
            "claude_duration_ms": self.duration,
            "claude_summary": outcome.summary,
            "claude_denials": Denial.encode_all(self.denials),
        }


def _plus(total: _N | None, more: _N | None) -> _N | None:
    if more is None:
        return total
    return more if total is None else total + more


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
