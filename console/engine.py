"""The console's engine: every decision lives here, behind commands in and events out.

The terminal UI, the Telegram bot and the headless modes all drive the same
:class:`Engine`: :meth:`Engine.actions` answers which decisions are possible for an error
now (keys are greyed and buttons offered from it), and :meth:`~Engine.approve`,
:meth:`~Engine.publish`, :meth:`~Engine.skip`, :meth:`~Engine.retry`,
:meth:`~Engine.reopen` and :meth:`~Engine.fix` carry them out, refusing with the same rule.
Views render the events of :mod:`console.events`. Because each state change is a
compare-and-set in the store, two approvals of the same fix (a key press and a Telegram tap
at the same moment) produce exactly one action.

Everything runs on one asyncio loop: the agent links, the ingest batcher, the fix workers
(:mod:`console.attempts`) and publishing (:mod:`console.fix.publish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from agent.wire import ErrorEvent, Hello, Start, iso
from console.attempts import AttemptRunner
from console.automerge.plan import MergePlan
from console.automerge.scheduler import AUTO_MERGE_ACTOR, AutoMerger
from console.budget import QueueGate, QueueHold, clock_text
from console.config import ConfigError, ConsoleConfig, ServiceConfig, load_config
from console.decision_log import DecisionLog
from console.events import (
    AttemptChanged,
    AutoMergeChanged,
    ClaudeActivity,
    CommandResult,
    EngineEvent,
    ErrorChanged,
    LinkChanged,
    Listener,
    Notice,
    NoticeLevel,
    Regressed,
)
from console.fix.git import GitError
from console.fix.github import GitHubError, Merged, PullState
from console.fix.publish import publish_attempt
from console.fix.testrun import TestResult
from console.fix.verdict import report_title
from console.ingest_feed import IngestFeed
from console.lifecycle.poll import PullPoller
from console.lifecycle.revert import open_revert
from console.lifecycle.rules import is_muted
from console.lifecycle.watch import LifecycleWatch
from console.link import AgentLink, LinkManager, LinkProblem, LinkStatus
from console.models import (
    RUNNING_STATES,
    STATE_LABELS,
    Action,
    AttemptRow,
    ErrorRow,
    PullRequestRow,
    State,
    attempt_name,
    can_transition,
    error_name,
)
from console.regression import regressed_by, unanswered
from console.secret import store_password
from console.storable import Received
from console.store import HoldLost, Store, StoreError
from console.store.schema import now_iso
from console.transcript_feed import TranscriptFeed

log = logging.getLogger(__name__)

INGEST_BATCH = 500
INGEST_GATHER_SECONDS = 0.01
# A host another console sharing the store reads is shown as such after this long.
HOLD_NOTICE_SECONDS = 0.5
READ_ELSEWHERE = "read by another console sharing the store; taken over if it stops"
HOLD_LOST = "the store connection holding this host was lost; reading again once it is held"
# A decision names the attempt it is about: an attempt id, None for "before any attempt",
# or CURRENT for whichever attempt the error has when the command runs.
CURRENT: Literal["current"] = "current"
AttemptTarget = int | None | Literal["current"]
# What a merge notice says comes next.
MERGED_NEXT = "; resolved once the service restarts and the error stays away"


class TelegramControl(Protocol):
    """What the engine (and so the UI's ``t`` key) can ask of the Telegram bot."""

    @property
    def state(self) -> str: ...

    async def set_enabled(self, enabled: bool) -> None: ...


class Engine:
    """Owns the store, the agent links and the fix workers; views only call its commands."""

    def __init__(self, config: ConsoleConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self._listeners: list[Listener] = []
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._runner = AttemptRunner(
            config, store, emit=self._emit, notify=self.notify, changed=self._emit_attempt
        )
        # The file the config came from, which reload_config reads again (None: unknown).
        self.config_path: Path | None = None
        self._hold_shown: QueueHold | None = None
        self.gate = QueueGate(
            config.claude.daily_budget_usd, spent_today=self._spent_on, publish=self._on_hold
        )
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._ingest_feeds: dict[str, IngestFeed] = {}
        self._ingest_tasks: dict[str, asyncio.Task[None]] = {}
        self._links: LinkManager | None = None
        self._holds: list[asyncio.Task[None]] = []
        self._publishing: set[asyncio.Task[None]] = set()
        self._changed_errors: set[int] = set()
        self._changed_attempts: set[int] = set()
        self._changed_transcripts: set[int] = set()
        self._feed = TranscriptFeed(store)
        self._started = False
        self._unknown_services: set[str] = set()
        # Set by the Telegram bot when one is configured; the UI toggles it through here.
        self.telegram: TelegramControl | None = None
        # Every decision after the PR is recorded, published and said through this one log.
        self.decisions = DecisionLog(store, publish=self._emit_error, notify=self.notify)
        # After the PR: GitHub polling (merged, closed) and the resolve/regress/escalate rules.
        self.pulls = PullPoller(config, store, on_change=self._on_pull_change, notify=self.notify)
        self.lifecycle = LifecycleWatch(
            config, store, decisions=self.decisions, on_move=self._after_move
        )
        self._lifecycle_tasks: list[asyncio.Task[None]] = []
        # Reverts opened because an auto-merged fix regressed (git and GitHub take seconds;
        # the ingest that saw the regression does not wait for them).
        self._reverting: set[asyncio.Task[None]] = set()
        # Opened PRs of services with [services.auto_merge] on their way to a squash merge.
        self.auto_merge = AutoMerger(
            config,
            store,
            publish=lambda plan: self._emit(AutoMergeChanged(plan)),
            decisions=self.decisions,
            merged=self._on_auto_merged,
        )

    @classmethod
    async def open(cls, config: ConsoleConfig) -> Engine:
        """Open the store at the configured place; call :meth:`start` to begin work."""
        store = await Store.open(config.store_address, password=store_password(config))
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
        level: NoticeLevel,
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
        await self.gate.refresh()  # today's cost for the header from the start
        await self.auto_merge.start()
        for i in range(max(1, self.config.concurrency)):
            self._workers.append(asyncio.create_task(self._worker(), name=f"fix-worker-{i}"))
        for service in self.config.services:
            self._runner.refill(service)
        self._lifecycle_tasks = [
            asyncio.create_task(self.pulls.run(), name="pr-poller"),
            asyncio.create_task(self._sweep_loop(), name="lifecycle-sweep"),
        ]
        # Another console sharing the store publishes its changes; show them as ours.
        self.store.on_change(self._on_store_change)
        if links and self.config.hosts:
            self._links = LinkManager(
                self.config.hosts,
                since=self.store.last_seq,
                on_events=self._on_link_events,
                on_status=lambda status: self._emit(LinkChanged(status)),
                on_problem=self._on_link_problem,
                on_hello=self._on_hello,
            )
            for name, link in self._links.links.items():
                self._holds.append(
                    asyncio.create_task(self._read_host(name, link), name=f"hold-{name}")
                )

    async def _read_host(self, name: str, link: AgentLink) -> None:
        """Read ``name`` while this console alone may (at once on SQLite); on a shared store
        another console may be reading it, and this one takes over the moment that one goes
        away, resuming after the last seq the store holds. If this console's hold on the
        host is lost (its lock connection ended), the link stops at once and the host is
        asked for again: whichever console holds it next resumes from the store."""
        while True:
            held = asyncio.ensure_future(self.store.hold_host(name))
            try:
                done, _ = await asyncio.wait({held}, timeout=HOLD_NOTICE_SECONDS)
                if not done:
                    self._emit(
                        LinkChanged(LinkStatus(host=name, state="stopped", error=READ_ELSEWHERE))
                    )
                hold = await held
            finally:
                held.cancel()
            link.start()
            await hold.lost.wait()
            await link.stop()
            self.notify("warning", f"{name}: {HOLD_LOST}")
            self._emit(LinkChanged(LinkStatus(host=name, state="stopped", error=HOLD_LOST)))

    async def stop(self) -> None:
        """Stop links and workers; running attempts are cancelled and marked interrupted."""
        self._runner.closing = True
        background = [*self._lifecycle_tasks, *self._holds, *self._publishing, *self._reverting]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self._links is not None:
            await self._links.stop()
        for host in list(self._ingest_feeds):
            await self._drain_ingest(host)
        self._runner.cancel_all()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for task in self._ingest_tasks.values():
            task.cancel()
        await asyncio.gather(*self._ingest_tasks.values(), return_exceptions=True)
        await self.auto_merge.close()
        await self._runner.close()
        await self.store.close()

    @property
    def busy(self) -> bool:
        """True while a fix attempt is running (the UI asks before quitting)."""
        return bool(self._runner.running)

    def link_statuses(self) -> dict[str, LinkStatus]:
        return self._links.statuses() if self._links else {}

    async def _recover(self) -> None:
        """Interrupt the attempts whose console stopped (this one's last run, or another
        console sharing the store that went away), and watch the running attempts of the
        other consoles so this one learns the moment any of them goes away."""
        for attempt in await self.store.recover():
            error = await self.store.error(attempt.error_id)
            self.notify(
                "warning",
                f"{attempt_name(attempt, error)} was interrupted by a console stop; "
                "retry or skip it",
                error_id=attempt.error_id,
                attempt_id=attempt.id,
            )
            # A worktree is on the machine that ran the attempt.
            if attempt.runner in (None, self.store.runner):
                await self._runner.discard_worktree(attempt)
            await self._emit_attempt(attempt.id)
        for attempt in await self.store.running_attempts():
            self._watch_runner(attempt)

    def _watch_runner(self, attempt: AttemptRow) -> None:
        if attempt.state in RUNNING_STATES and attempt.runner_session:
            self.store.watch_runner(attempt.runner_session, self._runner_gone)

    async def _runner_gone(self) -> None:
        with contextlib.suppress(StoreError):  # this console is stopping too
            await self._recover()

    def _on_store_change(self, kind: str, row_id: int) -> None:
        """Another console committed a change to an error or an attempt, or new lines of an
        attempt's transcript: publish it as this console publishes its own. Changes are
        gathered while a read is under way, so a burst (another console ingesting a flood)
        costs a few reads, not one per row."""
        changed = {
            "error": self._changed_errors,
            "attempt": self._changed_attempts,
            "transcript": self._changed_transcripts,
        }.get(kind)
        if changed is None:
            return  # announced by a newer console: nothing this one shows
        changed.add(row_id)
        if not self._publishing:
            task = asyncio.create_task(self._publish_changes(), name="publish-changes")
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish_changes(self) -> None:
        with contextlib.suppress(StoreError):  # the store closed under it: the engine stops
            while self._changed_errors or self._changed_attempts or self._changed_transcripts:
                transcripts, self._changed_transcripts = self._changed_transcripts, set()
                for attempt_id in sorted(transcripts):
                    attempt = await self.store.attempt(attempt_id)
                    if attempt is None or attempt.runner_session == self.store.session:
                        continue  # this console's own run: shown as it was parsed
                    for event in await self._feed.new_events(attempt_id):
                        self._emit(ClaudeActivity(attempt_id, event))
                attempts, self._changed_attempts = self._changed_attempts, set()
                errors, self._changed_errors = self._changed_errors, set()
                for attempt_id in sorted(attempts):
                    row = await self.store.attempt(attempt_id)
                    if row is None:
                        continue
                    self._emit(AttemptChanged(row))
                    errors.add(row.error_id)
                    self._watch_runner(row)
                if errors:
                    for error in await self.store.errors_by_id(sorted(errors)):
                        self._emit(ErrorChanged(error))

    # --- ingest ----------------------------------------------------------------------------

    async def _on_hello(self, host: str, hello: Hello) -> None:
        await self.store.set_host_instance(host, hello.instance)

    def _on_link_problem(self, problem: LinkProblem) -> None:
        self.notify("warning", f"{problem.host}: {problem.message}")

    async def _on_link_events(self, host: str, events: list[Received | Start]) -> None:
        feed = self._ingest_feeds.get(host)
        if feed is None:
            feed = self._ingest_feeds[host] = IngestFeed(limit=INGEST_BATCH * 4)
            self._ingest_tasks[host] = asyncio.create_task(self._ingest_loop(host, feed))
        await feed.put(events)  # waits while the store is behind: the link waits for it

    async def _ingest_loop(self, host: str, feed: IngestFeed) -> None:
        """Store a host's events in batches: one transaction per burst, not per line."""
        while True:
            await feed.arrived()
            if len(feed) < INGEST_BATCH:
                # Let the link read on for a moment: one transaction per burst, not per line.
                await asyncio.sleep(INGEST_GATHER_SECONDS)
            batch = feed.take(INGEST_BATCH)
            try:
                await self.ingest(host, batch)
            except HoldLost:
                pass  # read after the host's hold was lost: its holder stores these instead
            except Exception as exc:
                # Nothing is lost: the link resumes after the last *stored* seq.
                self.notify("error", f"{host}: storing {len(batch)} event(s) failed: {exc}")
            finally:
                feed.done()

    async def _drain_ingest(self, host: str) -> None:
        feed = self._ingest_feeds.get(host)
        if feed is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(10):
                    await feed.join()

    async def ingest(self, host: str, events: Sequence[ErrorEvent | Received | Start]) -> list[int]:
        """Store events from a host; new errors enter the queue. Returns the new error ids.

        Events from a link come with their wire line, which the store keeps as it is. The
        service starts among them are kept after the batch's errors, and the errors the
        batch counted again go through the lifecycle's rules (a regression, an escalation).
        """
        starts = [e for e in events if isinstance(e, Start)]
        errors = [e for e in events if not isinstance(e, Start)]
        outcome = await self.store.ingest_counted(host, errors) if errors else None
        results = outcome.results if outcome is not None else []
        await self.store.record_starts(host, starts)
        created: list[int] = []
        for result in results:
            if result.refused is not None:
                self.notify("error", result.refused)
            elif result.created:
                created.append(result.error_id)
        for error_id in created:
            await self._enqueue_new(error_id)
        rows = outcome.counted if outcome is not None else []
        if rows:
            for row in rows:
                self._emit(ErrorChanged(row))
            plain = [e.event if isinstance(e, Received) else e for e in errors]
            await self.lifecycle.after_ingest(host, plain, rows)
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

    # --- the flow: which decisions are possible, and carrying them out -----------------------

    def actions(self, error: ErrorRow, attempt: AttemptRow | None = None) -> frozenset[Action]:
        """Every decision a person can take now about ``error``: the one flow rule.

        ``attempt`` is the attempt the person is looking at, when they look at one; a
        decision about an attempt that is no longer the error's current one is none.
        Built on the store's transitions (:func:`~console.models.can_transition`), plus
        what the config allows: no fix for a service without a ``[[services]]`` entry, and
        no publish for a service whose ``stop_at`` is not ``pr`` or for a report.
        """
        service = self.config.service(error.service)
        publishable = (
            service is not None
            and service.stop_at == "pr"
            and not (attempt is not None and attempt.is_report)
        )
        found = _flow(error, attempt, fixable=service is not None, publishable=publishable)
        if attempt is not None and attempt.id != error.current_attempt_id:
            return found
        plan = self.auto_merge.plan(error.current_attempt_id)
        extra: set[Action] = set()
        if plan is not None and plan.stoppable:
            extra.add(Action.STOP_MERGE)
        if service is not None and self.auto_merge.paused(service.name) is not None:
            extra.add(Action.RESUME_MERGE)
        return found | extra if extra else found

    async def _allowed(
        self, error_id: int, action: Action, attempt_id: AttemptTarget = CURRENT
    ) -> ErrorRow | CommandResult:
        """The error, when ``action`` (about ``attempt_id``) is possible for it now; else
        the answer that says why not."""
        error = await self.store.error(error_id)
        if error is None:
            return CommandResult(False, f"no error {error_id}")
        refused = await self._refusal(action, error, attempt_id)
        return error if refused is None else refused

    async def refusal(self, error_id: int, action: Action) -> CommandResult | None:
        """Why ``action`` is not possible for the error now, as its command would answer;
        None when it is (a view asks before opening a dialog for it)."""
        error = await self._allowed(error_id, action)
        return error if isinstance(error, CommandResult) else None

    async def _refusal(
        self, action: Action, error: ErrorRow, attempt_id: AttemptTarget
    ) -> CommandResult | None:
        """None when ``action`` is possible for ``error`` (about ``attempt_id``), else the
        answer that says why not."""
        if attempt_id != CURRENT and attempt_id != error.current_attempt_id:
            if attempt_id is None:
                return CommandResult(False, f"already decided: {_named(error)} is {_word(error)}")
            old = await self.store.attempt(attempt_id)
            if old is None:
                return CommandResult(False, f"already decided: {_named(error)} has moved on")
            return CommandResult(
                False,
                f"already decided: {attempt_name(old, error)} is {STATE_LABELS[old.state]}",
            )
        if action in self.actions(error):
            return None
        if action in _flow(error, None, fixable=True):
            return CommandResult(
                False, f"service {error.service!r} is not configured; add it to [[services]]"
            )
        if action is Action.RETRY:
            return CommandResult(False, f"cannot retry: {_named(error)} is {_word(error)}")
        if action is Action.REOPEN:
            return CommandResult(False, f"{_named(error)} is not skipped")
        if action is Action.REVERT:
            return CommandResult(False, f"cannot revert: {_named(error)} is {_word(error)}")
        if action is Action.MUTE and Action.UNMUTE in self.actions(error):
            return CommandResult(False, f"{_named(error)} is muted already")
        if action is Action.MUTE:
            return CommandResult(False, f"cannot mute: {_named(error)} is {_word(error)}")
        if action is Action.UNMUTE:
            return CommandResult(False, f"{_named(error)} is not muted")
        if action is Action.STOP_MERGE:
            return CommandResult(False, f"no auto-merge to stop for {_named(error)}")
        if action is Action.RESUME_MERGE:
            return CommandResult(False, f"auto-merge for {error.service} is not paused")
        return CommandResult(False, f"already decided: {_named(error)} is {_word(error)}")

    async def approve(self, error_id: int, actor: str) -> CommandResult:
        """Start the fix attempt an error awaiting approval waits for."""
        error = await self._allowed(error_id, Action.APPROVE)
        if isinstance(error, CommandResult):
            return error
        return await self._start_attempt(error, actor, expected=State.AWAITING_APPROVAL)

    async def skip(
        self,
        error_id: int,
        actor: str,
        reason: str | None = None,
        *,
        attempt_id: AttemptTarget = CURRENT,
    ) -> CommandResult:
        """Shelve the error (and discard its attempt's worktree).

        ``attempt_id`` is the attempt the person decided on (None: the error before any
        attempt); once the error has moved on to another, the skip is refused.
        """
        error = await self._allowed(error_id, Action.SKIP, attempt_id)
        if isinstance(error, CommandResult):
            return error
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
            if current is None:
                return CommandResult(False, f"already decided: {_named(error)} is gone")
            return CommandResult(False, f"already decided: {_named(current)} is {_word(current)}")
        if error.current_attempt_id is not None:
            attempt = await self.store.attempt(error.current_attempt_id)
            if attempt is not None:
                await self._runner.discard_worktree(attempt)
            await self._emit_attempt(error.current_attempt_id)
        else:
            await self._emit_error(error_id)
        return CommandResult(True, f"skipped {_named(error)}", error.current_attempt_id)

    async def retry(
        self,
        error_id: int,
        actor: str,
        instruction: str | None = None,
        *,
        attempt_id: AttemptTarget = CURRENT,
    ) -> CommandResult:
        """Start a new attempt from a clean base, optionally with an extra instruction.

        ``attempt_id`` is the attempt being retried; once the error has moved on to
        another, the retry is refused.
        """
        error = await self._allowed(error_id, Action.RETRY, attempt_id)
        if isinstance(error, CommandResult):
            return error
        previous = error.current_attempt_id
        result = await self._start_attempt(
            error, actor, expected=error.state, instruction=(instruction or "").strip() or None
        )
        if result.ok and previous is not None:
            old = await self.store.attempt(previous)
            if old is not None:
                await self._runner.discard_worktree(old, keep_branch=True)
        return result

    async def reopen(self, error_id: int, actor: str) -> CommandResult:
        """Bring a skipped error back to awaiting approval."""
        error = await self._allowed(error_id, Action.REOPEN)
        if isinstance(error, CommandResult):
            return error
        if await self.store.transition(error_id, error.state, State.AWAITING_APPROVAL, actor=actor):
            await self._emit_error(error_id)
            return CommandResult(True, f"{_named(error)} awaits approval again")
        return CommandResult(False, f"{_named(error)} is not skipped")

    async def fix(self, error_id: int, actor: str) -> CommandResult:
        """A fix attempt now, from whatever state allows one (``autofix fix``): a skipped
        error is reopened and approved, a failed, interrupted or reviewed one retried, and
        one already being fixed answers with that attempt."""
        error = await self.store.error(error_id)
        if error is None:
            return CommandResult(False, f"no error {error_id}")
        if error.state in RUNNING_STATES:
            running = (
                await self.store.attempt(error.current_attempt_id)
                if error.current_attempt_id is not None
                else None
            )
            what = attempt_name(running, error) if running else f"a fix of {_named(error)}"
            return CommandResult(True, f"{what} is already running", error.current_attempt_id)
        allowed = self.actions(error)
        if Action.REOPEN in allowed:
            reopened = await self.reopen(error_id, actor)
            if not reopened.ok:
                return reopened
            return await self.approve(error_id, actor)
        if Action.RETRY in allowed:
            return await self.retry(error_id, actor)
        return await self.approve(error_id, actor)

    async def _start_attempt(
        self,
        error: ErrorRow,
        actor: str,
        *,
        expected: State,
        instruction: str | None = None,
    ) -> CommandResult:
        attempt = await self.store.create_attempt(
            error.id, instruction, expected=expected, actor=actor
        )
        if attempt is None:
            current = await self.store.error(error.id)
            now = _word(current) if current else "gone"
            return CommandResult(False, f"already decided: {_named(error)} is {now}")
        self._queue.put_nowait(attempt.id)
        await self._emit_attempt(attempt.id)
        waiting = len(self._runner.running) >= max(1, self.config.concurrency)
        message = f"fix {attempt_name(attempt, error)} " + ("queued" if waiting else "started")
        return CommandResult(True, message, attempt.id)

    def publish_refusal(self, attempt: AttemptRow, error: ErrorRow | None) -> str | None:
        """Why ``attempt`` may never be published (a report; a service that stops before
        the PR), whatever its state; None when it may be."""
        return _not_publishable(attempt, self.config.service(error.service) if error else None)

    async def publish(self, attempt_id: int, actor: str) -> CommandResult:
        """Commit and push a reviewed attempt, exactly once, and open its PR when GitHub is
        set up; the attempt ends ``pushed`` (branch only) or ``pr_opened``."""
        async with self._locks[attempt_id]:
            attempt = await self.store.attempt(attempt_id)
            if attempt is None:
                return CommandResult(False, f"no attempt {attempt_id}")
            error = await self.store.error(attempt.error_id)
            refused = self.publish_refusal(attempt, error)
            if refused is not None:
                self.notify("warning", refused, error_id=attempt.error_id, attempt_id=attempt_id)
                return CommandResult(False, refused, attempt_id, noticed=True)
            named = attempt_name(attempt, error)
            if error is None or Action.PUBLISH not in self.actions(error, attempt):
                return CommandResult(
                    False, f"already decided: {named} is {STATE_LABELS[attempt.state]}"
                )
            service = self.config.service(error.service)
            if service is None or not attempt.worktree or not attempt.branch:
                return CommandResult(False, f"{named} has no worktree to publish")
            try:
                url, number, note = await self._push_and_open_pr(attempt, error, service)
            except (GitError, GitHubError, OSError) as exc:
                await self.store.update_attempt(attempt_id, reason=f"publishing failed: {exc}")
                self.notify(
                    "error",
                    f"publishing {named} failed: {exc}",
                    error_id=error.id,
                    attempt_id=attempt_id,
                )
                await self._emit_attempt(attempt_id)
                return CommandResult(
                    False, f"publishing {named} failed: {exc}", attempt_id, noticed=True
                )
            moved = await self.store.transition_attempt(
                attempt_id,
                State.REVIEW,
                State.PUSHED if url is None else State.PR_OPENED,
                actor=actor,
                reason=note,
                pr_url=url,
                pr_number=number,
            )
            if not moved:
                return CommandResult(False, f"already decided: {named}")
            refreshed = await self.store.attempt(attempt_id)
            if refreshed is not None:
                await self._runner.discard_worktree(refreshed, keep_branch=True)
            await self._emit_attempt(attempt_id)
            self.notify("info", note, error_id=error.id, attempt_id=attempt_id)
            if url is not None:
                self.pulls.poke()
                if service.auto_merge.enabled:
                    self.auto_merge.watch(attempt_id)
            return CommandResult(True, note, attempt_id, noticed=True)

    async def _push_and_open_pr(
        self, attempt: AttemptRow, error: ErrorRow, service: ServiceConfig
    ) -> tuple[str | None, int | None, str]:
        wt = await self._runner.worktree_of(attempt, service)
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

    # --- after the PR: merged, closed, resolved, regressed; revert and mute ------------------

    async def _on_pull_change(self, pr: PullRequestRow, error_id: int, state: PullState) -> None:
        """A polled PR was merged or closed on GitHub: the error follows it."""
        error = await self.store.error(error_id)
        if error is None:
            return
        new = State.MERGED if state.state == "merged" else State.CLOSED
        who = f"github:{state.merged_by}" if state.merged_by else "github"
        reason = (
            f"pull request #{pr.number} merged"
            + (f" by {state.merged_by}" if state.merged_by else "")
            + (f" at {state.merged_at}" if state.merged_at else "")
            if new is State.MERGED
            else f"pull request #{pr.number} closed without merging"
        )
        after = "; retry or skip it" if new is State.CLOSED else MERGED_NEXT
        await self.decisions.move(
            error, new, who, reason, expected=State.PR_OPENED, said=reason + after
        )

    async def _after_move(self, error: ErrorRow, new: State, reason: str) -> None:
        """The lifecycle moved an error (recorded, published and said already): a
        regression is also published as :class:`Regressed`, and one of an automatically
        merged fix is auto-merge's to answer."""
        if new is State.REGRESSED:
            self._emit(Regressed(error, reason))
            await self._on_regressed(error, reason)

    async def _on_regressed(self, error: ErrorRow, reason: str) -> None:
        """An auto-merged fix's error came back on the merged code: auto-merge for its
        service pauses until a person resumes it, and with ``revert_on_regression`` the
        revert PR opens by itself; without it the revert is a person's call."""
        merged = await self.auto_merge.merged_by_it(error.current_attempt_id)
        service = self.config.service(error.service)
        if merged is None or service is None:
            return
        pr = await self.store.fix_pr(error.current_attempt_id)
        what = f"auto-merged PR #{pr.number}" if pr is not None else "an auto-merged fix"
        await self.auto_merge.pause(error, AUTO_MERGE_ACTOR, f"{what} regressed: {reason}")
        if not service.auto_merge.revert_on_regression:
            self.notify(
                "warning",
                f"{_named(error)}: {what} regressed; revert_on_regression is off, so "
                "reverting it (or retrying the fix) is yours to decide",
                error_id=error.id,
            )
            return
        task = asyncio.create_task(self._auto_revert(error.id), name=f"revert-{error.id}")
        self._reverting.add(task)
        task.add_done_callback(self._reverting.discard)

    async def _auto_revert(self, error_id: int) -> None:
        """Open the revert PR as auto-merge (the same path a person's Revert takes)."""
        try:
            await self.revert(error_id, AUTO_MERGE_ACTOR)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the console goes on; a person can still revert
            log.exception("reverting error %s failed", error_id)
            self.notify("error", f"opening the revert failed: {exc!r}", error_id=error_id)

    async def unanswered_regressions(self) -> list[ErrorRow]:
        """The regressed errors nobody has reverted or muted yet (the header's alarm)."""
        found = []
        for error in await self.store.errors(limit=10_000, state=State.REGRESSED):
            decisions = await self.store.decisions(error_id=error.id, limit=100_000)
            if unanswered(error, decisions):
                found.append(error)
        return found

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.lifecycle.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sweep must survive a bad row
                log.exception("lifecycle sweep failed")
                self.notify("error", f"checking merged fixes failed: {exc!r}")
            await asyncio.sleep(self.lifecycle.sweep_seconds)

    async def revert(self, error_id: int, actor: str) -> CommandResult:
        """Open a pull request reverting the merged fix of a regressed error (again: the
        one already open for it is found, not a second one)."""
        error = await self._allowed(error_id, Action.REVERT)
        if isinstance(error, CommandResult):
            return error
        service = self.config.service(error.service)
        pr = await self.store.fix_pr(error.current_attempt_id)
        if service is None or pr is None or error.current_attempt_id is None:
            return CommandResult(False, f"{_named(error)} has no merged fix to revert")
        why = next(
            (
                d.reason or ""
                for d in reversed(await self.store.decisions(error_id=error_id, limit=1000))
                if regressed_by(d)
            ),
            "",
        )
        async with self._locks[-error_id]:
            try:
                reverted = await open_revert(error, pr, service, self.config.github, why)
            except (GitError, GitHubError, OSError) as exc:
                self.notify("error", f"reverting failed: {exc}", error_id=error_id)
                return CommandResult(False, f"reverting failed: {exc}")
            await self.store.record_pr(
                error.current_attempt_id,
                reverted.branch,
                reverted.url,
                reverted.number,
                kind="revert",
            )
            verb = "opened" if reverted.created else "found the open"
            note = f"{verb} revert pull request #{reverted.number}: {reverted.url}"
            await self.decisions.note(error, "revert", actor, note)
        return CommandResult(True, note, error.current_attempt_id, noticed=True)

    async def mute(
        self,
        error_id: int,
        actor: str,
        *,
        minutes: float | None = None,
        occurrences: int | None = None,
    ) -> CommandResult:
        """Keep an error's notifications quiet for ``minutes`` and/or ``occurrences`` more
        (whichever ends first); its state still changes and shows in the table."""
        if minutes is None and occurrences is None:
            return CommandResult(False, "mute for how long: minutes or a number of occurrences")
        if (minutes is not None and minutes <= 0) or (occurrences is not None and occurrences <= 0):
            return CommandResult(False, "a mute needs a positive duration or count")
        error = await self._allowed(error_id, Action.MUTE)
        if isinstance(error, CommandResult):
            return error
        until = iso(time.time() + minutes * 60) if minutes is not None else None
        until_count = error.count + occurrences if occurrences is not None else None
        await self.store.set_mute(error_id, until=until, until_count=until_count, actor=actor)
        await self._emit_error(error_id)
        parts = [f"{minutes:g} min" if minutes is not None else ""]
        parts.append(f"{occurrences} more occurrence(s)" if occurrences is not None else "")
        return CommandResult(
            True, f"muted {_named(error)} for {' or '.join(p for p in parts if p)}"
        )

    async def unmute(self, error_id: int, actor: str) -> CommandResult:
        error = await self._allowed(error_id, Action.UNMUTE)
        if isinstance(error, CommandResult):
            return error
        await self.store.set_mute(error_id, until=None, until_count=None, actor=actor)
        await self._emit_error(error_id)
        return CommandResult(True, f"unmuted {_named(error)}")

    # --- auto-merge --------------------------------------------------------------------------

    async def stop_merge(
        self, error_id: int, actor: str, *, attempt_id: AttemptTarget = CURRENT
    ) -> CommandResult:
        """Stop the automatic merge of the error's PR during its soak; the PR stays open."""
        error = await self._allowed(error_id, Action.STOP_MERGE, attempt_id)
        if isinstance(error, CommandResult):
            return error
        assert error.current_attempt_id is not None  # a plan is about the current attempt
        return await self.auto_merge.stop(error.current_attempt_id, actor)

    async def resume_merge(self, error_id: int, actor: str) -> CommandResult:
        """Let auto-merge work again for the error's service after a regression paused it."""
        error = await self._allowed(error_id, Action.RESUME_MERGE)
        if isinstance(error, CommandResult):
            return error
        return await self.auto_merge.resume(error, actor)

    async def _on_auto_merged(self, attempt: AttemptRow, merged: Merged, plan: MergePlan) -> None:
        """A PR auto-merge squash-merged is merged at once, as the poller would find it:
        its PR row holds the merge commit and the error moves to merged (decided by
        auto-merge), so the quiet time and a regression count from this moment."""
        pr = await self.store.fix_pr(attempt.id)
        if pr is not None:
            await self.store.update_pr(
                pr.id,
                state="merged",
                merged_at=now_iso(),
                merge_sha=merged.sha,
                merged_by=AUTO_MERGE_ACTOR,
            )
        error = await self.store.error(attempt.error_id)
        if error is not None and error.current_attempt_id == attempt.id:
            reason = f"pull request #{plan.pr_number} squash-merged as {merged.sha[:12]}"
            await self.decisions.move(
                error,
                State.MERGED,
                AUTO_MERGE_ACTOR,
                reason,
                expected=State.PR_OPENED,
                said="",  # the scheduler says the merge with its gates
            )
        await self._emit_attempt(attempt.id)

    # --- fix workers -------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            attempt_id = await self._queue.get()
            try:
                await self.gate.wait_open()
                requeued = await self._runner.run(attempt_id)
                if requeued is None:
                    self.gate.ran()
                else:
                    resume = self.gate.rate_limited(requeued.resets_at, requeued.reason)
                    waiting = await self.store.attempt(attempt_id)
                    what = attempt_name(waiting) if waiting else "the fix attempt"
                    self.notify(
                        "warning",
                        f"Claude rate-limited, resuming {clock_text(resume)}: {what} is "
                        f"queued again ({requeued.reason})",
                        attempt_id=attempt_id,
                    )
                    self._queue.put_nowait(attempt_id)
                    await self._emit_attempt(attempt_id)
                # The attempt's cost (or the rate limit) shows at once, queued work or not.
                await self.gate.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine must survive any attempt
                log.exception("attempt %s crashed", attempt_id)
                await self._runner.fail(attempt_id, f"internal error: {exc!r}")
            finally:
                self._queue.task_done()

    # --- cost and rate limits ---------------------------------------------------------------

    async def _spent_on(self, day: str) -> float:
        return (await self.store.daily_costs(1)).get(day, 0.0)

    def _on_hold(self, hold: QueueHold) -> None:
        """Publish the queue's hold and say so when it starts or ends holding."""
        before, self._hold_shown = self._hold_shown, hold
        self._emit(hold)
        if hold.over_budget and not (before and before.over_budget):
            self.notify(
                "warning",
                f"daily Claude budget reached: ${hold.spent_today_usd:.2f} of "
                f"${hold.daily_budget_usd:.2f} spent today (UTC); approved fixes wait in the "
                "queue until claude.daily_budget_usd is raised and the config reloaded, or "
                "until midnight UTC",
            )
        elif before is not None and before.held and not hold.held:
            self.notify("info", "the fix queue resumes")

    async def reload_config(self, path: Path | None = None) -> CommandResult:
        """Read the config file (``path``, else the one it came from) again and take its
        ``[claude]`` section (budgets, model, limits) for the attempts that start from now
        on; other sections need a restart. A bad file changes nothing and the answer names
        the key."""
        path = path or self.config_path
        if path is None:
            return CommandResult(False, "config not reloaded: this console has no config file")
        try:
            fresh = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            return CommandResult(False, f"config not reloaded: {exc}")
        self.config = dataclasses.replace(self.config, claude=fresh.claude)
        self._runner.reconfigure(self.config)
        self.gate.set_budget(fresh.claude.daily_budget_usd)
        hold = await self.gate.refresh()
        return CommandResult(
            True,
            f"config reloaded: daily Claude budget ${fresh.claude.daily_budget_usd:.2f} "
            f"(${hold.spent_today_usd:.2f} spent today), "
            f"${fresh.claude.max_budget_usd:.2f} per attempt",
        )

    async def wait_idle(self) -> None:
        """Wait until every queued attempt has finished (for the CLI and tests)."""
        await self._queue.join()

    async def wait_ready_worktrees(self) -> None:
        """Wait until the spare worktrees being prepared are ready (for benches and tests)."""
        await self._runner.spares_ready()


def _not_publishable(attempt: AttemptRow, service: ServiceConfig | None) -> str | None:
    """Why an attempt's result must never be pushed, whatever its state; None when it may."""
    if attempt.is_report:
        verdict = attempt.conclusion
        title = report_title(verdict) if verdict else "report"
        return f"{attempt_name(attempt)} is an investigation report ({title}): nothing to publish"
    if service is not None and service.stop_at != "pr":
        return (
            f"service {service.name} stops at the {service.stop_at} "
            f"(services[].stop_at = {service.stop_at!r}): {attempt_name(attempt)} is not pushed"
        )
    return None


def _flow(
    error: ErrorRow, attempt: AttemptRow | None, *, fixable: bool, publishable: bool = True
) -> frozenset[Action]:
    """:meth:`Engine.actions` for a service that can (``fixable``) or cannot be fixed, and
    whose reviewed diffs may (``publishable``) or may not be pushed."""
    if attempt is not None and attempt.id != error.current_attempt_id:
        return frozenset()
    state = error.state
    found: set[Action] = set()
    if can_transition(state, State.FIXING) and fixable:
        found.add(Action.APPROVE if state is State.AWAITING_APPROVAL else Action.RETRY)
    if can_transition(state, State.SKIPPED):
        found.add(Action.SKIP)
    if state is not State.NEW and can_transition(state, State.AWAITING_APPROVAL):
        found.add(Action.REOPEN)
    if (
        publishable
        and can_transition(state, State.PR_OPENED)
        and error.current_attempt_id is not None
        and (attempt is None or attempt.state is State.REVIEW)
    ):
        found.add(Action.PUBLISH)
    if state is State.REGRESSED and fixable and error.current_attempt_id is not None:
        found.add(Action.REVERT)
    if state is not State.NEW:
        muted = is_muted(error.muted_until, error.muted_until_count, error.count, time.time())
        found.add(Action.UNMUTE if muted else Action.MUTE)
    return frozenset(found)


def _named(error: ErrorRow) -> str:
    return error_name(error.service, error.error_type, error.message)


def _word(error: ErrorRow) -> str:
    """The error's state as the table shows it."""
    return STATE_LABELS[error.state]
