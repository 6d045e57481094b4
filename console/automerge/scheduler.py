"""Carrying out auto-merge: from an opened fix PR to its squash merge, or to the reason not.

For each PR of a service whose ``[services.auto_merge]`` is enabled, one task: evaluate the
gates that are known at once (lines, files, tests, risk, paths, the day's count), then read
the PR's checks until they are green, then soak for ``soak_minutes`` while a person can
stop it, then evaluate every gate again on fresh checks and merge through GitHub's merge
endpoint with ``squash``, only while the PR's head is still the commit whose checks passed.
Each outcome (merged, stopped, refused) is a decision in the store, which is what a
restarted console reads to know which PRs are still on their way; a soak interrupted by a
restart starts again. A service whose auto-merged fix regressed is paused (also a decision)
until a person resumes it. Every decision goes through the engine's
:class:`~console.decision_log.DecisionLog`, so it is published and said as it is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from console.automerge.gates import Candidate, Gates, evaluate
from console.automerge.plan import (
    MERGED_ACTION,
    OUTCOME_ACTIONS,
    PAUSED_ACTION,
    REFUSED_ACTION,
    RESUMED_ACTION,
    STOPPED_ACTION,
    MergePlan,
    MergeStep,
)
from console.automerge.policy import AutoMergePolicy
from console.config import ConsoleConfig, ServiceConfig
from console.decision_log import DecisionLog
from console.events import CommandResult, NoticeLevel
from console.fix.frames import stack_files
from console.fix.git import GitError
from console.fix.github import (
    CheckSummary,
    GitHubError,
    Merged,
    merge_pull_request,
    pr_title,
    read_checks,
)
from console.fix.publish import plan_publish
from console.models import AttemptRow, DecisionRow, ErrorRow, State
from console.store import Store

log = logging.getLogger(__name__)

CHECKS_POLL_SECONDS = 30.0
AUTO_MERGE_ACTOR = "auto-merge"

Publish = Callable[[MergePlan], None]
OnMerged = Callable[[AttemptRow, Merged, MergePlan], Awaitable[None]]


class _Refused(Exception):
    """A step that ends the plan without a merge; the message says why."""


class _Gone(Exception):
    """The PR is no longer this console's to merge (merged or closed by a person, a new
    attempt, or another console sharing the store decided it); nothing is recorded."""


class AutoMerger:
    """Runs the automatic merges of one engine; the engine hands it what to watch."""

    def __init__(
        self,
        config: ConsoleConfig,
        store: Store,
        *,
        publish: Publish,
        decisions: DecisionLog,
        merged: OnMerged,
        poll_seconds: float = CHECKS_POLL_SECONDS,
    ) -> None:
        self.config = config
        self.poll_seconds = poll_seconds
        self._store = store
        self._publish = publish
        self._decisions = decisions
        self._notify = decisions.notify
        self._merged = merged
        self._plans: dict[int, MergePlan] = {}
        self._stops: dict[int, asyncio.Event] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._paused: dict[str, str] = {}
        # One merge decision at a time per service, so two soaks cannot both take the day's
        # last merge.
        self._service_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # --- what the views ask ----------------------------------------------------------------

    def plan(self, attempt_id: int | None) -> MergePlan | None:
        """The automatic merge of an attempt's PR, when it has one (this run of the console)."""
        return None if attempt_id is None else self._plans.get(attempt_id)

    def paused(self, service: str) -> str | None:
        """Why auto-merge is paused for ``service``; None when it is not."""
        return self._paused.get(service)

    async def merged_by_it(self, attempt_id: int | None) -> DecisionRow | None:
        """The decision that auto-merged the attempt's PR; None when a person merged it (or
        nothing did)."""
        if attempt_id is None:
            return None
        decided = await self._store.decisions(attempt_id=attempt_id, limit=100_000)
        return next((d for d in decided if d.action == MERGED_ACTION), None)

    def _policy(self, service: str) -> AutoMergePolicy | None:
        found = self.config.service(service)
        return found.auto_merge if found is not None and found.auto_merge.enabled else None

    # --- starting and stopping ---------------------------------------------------------------

    async def start(self) -> None:
        """Read the pauses, then watch every opened PR of an auto-merge service that has no
        outcome yet (a console stopped during a soak soaks again from the start)."""
        for service in self.config.services:
            if not service.auto_merge.enabled:
                continue
            marks = await self._store.service_decisions(
                service.name, (PAUSED_ACTION, RESUMED_ACTION)
            )
            if marks and marks[-1].action == PAUSED_ACTION:
                self._paused[service.name] = marks[-1].reason or "paused"
        enabled = {s.name for s in self.config.services if s.auto_merge.enabled}
        if not enabled:
            return
        for attempt in await self._store.attempts(states=State.PR_OPENED):
            error = await self._store.error(attempt.error_id)
            if error is None or error.service not in enabled:
                continue
            if error.current_attempt_id != attempt.id or attempt.pr_number is None:
                continue
            decided = await self._store.decisions(attempt_id=attempt.id, limit=100_000)
            if not any(d.action in OUTCOME_ACTIONS for d in decided):
                self.watch(attempt.id)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def watch(self, attempt_id: int) -> None:
        """Take an opened PR on its way to an automatic merge (once)."""
        if attempt_id in self._tasks:
            return
        self._stops[attempt_id] = asyncio.Event()
        task = asyncio.create_task(self._run(attempt_id), name=f"auto-merge-{attempt_id}")
        self._tasks[attempt_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(attempt_id, None))

    async def wait(self, attempt_id: int) -> None:
        """Until the attempt's automatic merge is over (for tests and the headless modes)."""
        task = self._tasks.get(attempt_id)
        if task is not None:
            await asyncio.shield(task)

    # --- a person's decisions ---------------------------------------------------------------

    async def stop(self, attempt_id: int, actor: str) -> CommandResult:
        """Stop an automatic merge that has not started merging; the PR stays open for a
        person to merge or close."""
        plan = self._plans.get(attempt_id)
        if plan is None or not plan.stoppable:
            word = plan.step.value if plan is not None else "not waiting"
            return CommandResult(False, f"no auto-merge to stop for attempt {attempt_id} ({word})")
        # Stopped before anything is awaited, so the merge cannot start in between.
        self._stops[attempt_id].set()
        self._set(plan, MergeStep.STOPPED, note=actor)
        said = f"auto-merge of PR #{plan.pr_number} stopped; the PR stays open"
        error = await self._store.error(plan.error_id)
        if error is not None:
            await self._decisions.note(
                error,
                STOPPED_ACTION,
                actor,
                f"auto-merge of PR #{plan.pr_number} stopped",
                attempt_id=attempt_id,
                said=said,
            )
        return CommandResult(True, said, attempt_id, noticed=error is not None)

    async def pause(self, error: ErrorRow, actor: str, reason: str) -> None:
        """Pause auto-merge for the error's service until a person resumes it (a second
        pause while paused records nothing more)."""
        if error.service in self._paused:
            return
        self._paused[error.service] = reason
        await self._decisions.note(
            error,
            PAUSED_ACTION,
            actor,
            reason,
            level="warning",
            said=f"auto-merge for {error.service} is paused ({reason}); resume it with x in "
            "the console or Resume auto-merge on Telegram",
        )
        self._republish(error.service)

    async def resume(self, error: ErrorRow, actor: str) -> CommandResult:
        """Let auto-merge work for the error's service again."""
        if error.service not in self._paused:
            return CommandResult(False, f"auto-merge for {error.service} is not paused")
        del self._paused[error.service]
        said = f"auto-merge for {error.service} resumed"
        await self._decisions.note(error, RESUMED_ACTION, actor, said)
        self._republish(error.service)
        return CommandResult(True, said, noticed=True)

    def _republish(self, service: str) -> None:
        """The service's plans again, so their views show the pause (and its Resume)."""
        for plan in list(self._plans.values()):
            if plan.service == service:
                self._publish(plan)

    # --- one PR's way to the merge -------------------------------------------------------------

    def _set(self, plan: MergePlan, step: MergeStep, **changes: object) -> MergePlan:
        """Publish the plan's next step; a plan a person stopped stays stopped (a check read
        or a re-evaluation in flight when the stop came must not bring it back)."""
        current = self._plans.get(plan.attempt_id)
        if current is not None and current.step is MergeStep.STOPPED:
            return current
        fresh = MergePlan(
            attempt_id=plan.attempt_id,
            error_id=plan.error_id,
            service=plan.service,
            pr_number=plan.pr_number,
            step=step,
            gates=changes.get("gates", plan.gates),  # type: ignore[arg-type]
            due_at=changes.get("due_at", plan.due_at),  # type: ignore[arg-type]
            note=str(changes.get("note", plan.note)),
        )
        self._plans[plan.attempt_id] = fresh
        self._publish(fresh)
        return fresh

    def _tell(self, level: NoticeLevel, plan: MergePlan, text: str) -> None:
        self._notify(level, text, error_id=plan.error_id, attempt_id=plan.attempt_id)

    async def _run(self, attempt_id: int) -> None:
        try:
            await self._carry_out(attempt_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one PR's failure must not stop the console
            log.exception("auto-merge of attempt %s failed", attempt_id)
            self._notify(
                "error",
                f"auto-merge of attempt {attempt_id} failed: {exc!r}",
                attempt_id=attempt_id,
            )

    async def _carry_out(self, attempt_id: int) -> None:
        attempt = await self._store.attempt(attempt_id)
        error = await self._store.error(attempt.error_id) if attempt is not None else None
        if attempt is None or error is None or attempt.pr_number is None:
            return
        service = self.config.service(error.service)
        policy = self._policy(error.service)
        if service is None or policy is None:
            return
        try:
            candidate = await self._candidate(attempt, error, service, None)
        except _Gone:  # it moved on before it was looked at: nothing to say
            return
        plan = MergePlan(
            attempt_id,
            error.id,
            error.service,
            attempt.pr_number,
            MergeStep.CHECKS,
            evaluate(policy, candidate),
        )
        stop = self._stops[attempt_id]
        try:
            plan, checks = await self._await_checks(plan, attempt, error, service, stop)
            if stop.is_set():
                return
            due = time.time() + policy.soak_minutes * 60
            plan = self._set(plan, MergeStep.SOAKING, due_at=due)
            self._tell("info", plan, f"{plan.line()}; stop it with x (or Stop on Telegram)")
            if await _stopped_within(stop, due - time.time()):
                return
            async with self._service_locks[error.service]:
                checks = await self._checks(service, attempt)
                fresh = await self._candidate(attempt, error, service, checks)
                gates = evaluate(policy, fresh)
                if stop.is_set():
                    return
                if not gates.passed:
                    raise _Refused(gates.refusal() or "the checks are running again")
                plan = self._set(plan, MergeStep.MERGING, gates=gates)
                merged = await self._merge(service, attempt, error, checks.sha, gates)
                # Said (with the plan's line) once the plan shows the merge.
                await self._decisions.note(
                    error,
                    MERGED_ACTION,
                    AUTO_MERGE_ACTOR,
                    f"squash-merged PR #{plan.pr_number} as {merged.sha[:12]}: {gates.summary()}",
                    attempt_id=attempt_id,
                    said="",
                )
            plan = self._set(plan, MergeStep.MERGED, note=merged.sha[:12])
            self._tell("info", plan, plan.line())
            await self._merged(attempt, merged, plan)
        except _Gone as gone:
            self._set(plan, MergeStep.REFUSED, note=str(gone))
        except _Refused as refused:
            if stop.is_set():
                return
            why = str(refused)
            # Said with the plan's line once the plan shows the refusal.
            await self._decisions.note(
                error, REFUSED_ACTION, AUTO_MERGE_ACTOR, why, attempt_id=attempt_id, said=""
            )
            plan = self._set(plan, MergeStep.REFUSED, note=why)
            self._tell("warning", plan, f"PR #{plan.pr_number} {plan.line()}; it stays open")

    async def _await_checks(
        self,
        plan: MergePlan,
        attempt: AttemptRow,
        error: ErrorRow,
        service: ServiceConfig,
        stop: asyncio.Event,
    ) -> tuple[MergePlan, CheckSummary]:
        """Read the PR's checks until every gate passes; a failed gate ends the plan."""
        policy = service.auto_merge
        self._set(plan, MergeStep.CHECKS)
        while True:
            if plan.gates.failed and not any(r.name == "checks" for r in plan.gates.failed):
                raise _Refused(plan.gates.refusal())
            checks = await self._checks(service, attempt)
            gates = evaluate(policy, await self._candidate(attempt, error, service, checks))
            if stop.is_set():
                return plan, checks
            plan = self._set(plan, MergeStep.CHECKS, gates=gates)
            if gates.failed:
                raise _Refused(gates.refusal())
            if gates.passed:
                return plan, checks
            if await _stopped_within(stop, self.poll_seconds):
                return plan, checks

    async def _candidate(
        self,
        attempt: AttemptRow,
        error: ErrorRow,
        service: ServiceConfig,
        checks: CheckSummary | None,
    ) -> Candidate:
        """What the gates look at now; an error that left ``pr_opened`` meanwhile, or an
        outcome another console recorded, ends the plan (:class:`_Gone`)."""
        now = await self._store.error(error.id)
        if now is None or now.state is not State.PR_OPENED or now.current_attempt_id != attempt.id:
            word = now.state.value if now is not None else "gone"
            raise _Gone(f"the error is {word} now; nothing to merge")
        decided = await self._store.decisions(attempt_id=attempt.id, limit=100_000)
        elsewhere = next((d for d in decided if d.action in OUTCOME_ACTIONS), None)
        if elsewhere is not None:
            raise _Gone(
                f"already decided by {elsewhere.actor}: {elsewhere.reason or elsewhere.action}"
            )
        tests = await self._store.test_results(attempt.id)
        verdict = attempt.conclusion
        day = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00")
        today = await self._store.service_decisions(error.service, (MERGED_ACTION,), since=day)
        files = await asyncio.to_thread(
            stack_files, error.stack, service.repo, service.app_root, error.in_app
        )
        return Candidate(
            stat=attempt.diff_stat,
            stack_files=tuple(files),
            tests_passed=(tests[-1].exit_code == 0 and not tests[-1].timed_out) if tests else None,
            risk=verdict.risk if verdict is not None else None,
            checks=checks,
            merged_today=len(today),
            paused=self._paused.get(error.service),
        )

    async def _github(self, service: ServiceConfig, what: str) -> tuple[str, str]:
        """The repository and token the PR was opened with; without them, a refusal."""
        plan = await plan_publish(service, self.config.github)
        if plan.repo_name is None or plan.token is None:
            raise _Refused(f"cannot {what}: {plan.missing} is not configured")
        return plan.repo_name, plan.token

    async def _checks(self, service: ServiceConfig, attempt: AttemptRow) -> CheckSummary:
        """The PR head's checks; GitHub out of reach or refusing is a refusal to merge."""
        try:
            repo, token = await self._github(service, "read the PR's checks")
            return await read_checks(
                api_url=self.config.github.api_url,
                token=token,
                repo_full_name=repo,
                ref=attempt.branch or "",
            )
        except (GitHubError, GitError, OSError) as exc:
            raise _Refused(f"reading the PR's checks failed: {exc}") from None

    async def _merge(
        self, service: ServiceConfig, attempt: AttemptRow, error: ErrorRow, sha: str, gates: Gates
    ) -> Merged:
        """Squash-merge through the API, only while the PR's head is ``sha``."""
        assert attempt.pr_number is not None
        try:
            repo, token = await self._github(service, "merge")
            return await merge_pull_request(
                api_url=self.config.github.api_url,
                token=token,
                repo_full_name=repo,
                number=attempt.pr_number,
                sha=sha,
                title=f"{pr_title(error.error_type, error.message)} (#{attempt.pr_number})",
                message=f"Merged automatically by LevAutoFix: {gates.summary()}.",
            )
        except (GitHubError, GitError, OSError) as exc:
            raise _Refused(str(exc)) from None


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for a person's stop; True when it came."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await stop.wait()
    return stop.is_set()
