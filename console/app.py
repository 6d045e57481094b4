"""``autofix``: the operator console, a full-screen Textual app on top of the engine.

The app owns three things only: turning engine events into repaints (coalesced on a short
timer so a flood never blocks a key), turning the screens' requests
(:mod:`console.screens.requests`) into engine commands (run as workers so input stays live
while git and the network work), and the dialogs in between (confirm a push, type a retry
instruction). Every decision is the engine's; a worker that fails becomes a notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
import webbrowser
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.text import Text
from textual import events, on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from console.collector import CollectionPacing
from console.config import ConsoleConfig
from console.engine import Engine
from console.events import CommandResult, EngineEvent, Notice
from console.fix.claude_state import ClaudeState, discover
from console.fix.github import compare_page
from console.fix.publish import PublishPlan, plan_publish
from console.fix.worktree import remote_url
from console.models import (
    STATE_LABELS,
    Action,
    AttemptRow,
    ErrorRow,
    State,
    attempt_name,
    error_name,
)
from console.mute import MuteFor
from console.pending import Drained, PendingUpdates
from console.regression import AfterMerge, after_merge
from console.screens import requests
from console.screens.background import run_guarded
from console.screens.confirm import ConfirmScreen
from console.screens.detail import DetailScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from console.screens.main import MainScreen
from console.screens.mute import MuteScreen
from console.screens.retry import RetryScreen
from console.screens.review import ReviewScreen
from console.viewdata import EngineData
from console.widgets.diff_view import diff_files, file_label, summary_text
from console.widgets.labels import clock_duration
from console.widgets.queue import QueueTable, elapsed

# A decision made at the keyboard is recorded as ``keyboard:<user>@<host>`` (the console's
# OS user and host, see Store.runner), so a team sharing a store can tell who decided.
ACTOR = "keyboard"
FLUSH_SECONDS = 0.1
# Frames painted after a key's binding ran before its answer is surely on screen.
ANSWER_FRAMES = 2
_SEVERITY: dict[str, Literal["information", "warning", "error"]] = {
    "info": "information",
    "warning": "warning",
    "error": "error",
}


def styles_path() -> Path:
    """styles.tcss sits at the repository root in a checkout and inside the package when
    installed from the wheel; use whichever exists."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "styles.tcss", here.parent / "styles.tcss"):
        if candidate.is_file():
            return candidate
    return here.parent / "styles.tcss"


class AutofixApp(App[None]):
    """The console. ``clock`` and ``open_url`` are injectable so views can be frozen in time
    for snapshots and a test can see which URL would have been opened."""

    TITLE = "LevAutoFix"
    CSS_PATH = str(styles_path())
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (120, "-wide"),
    ]
    BINDINGS = [
        Binding("t", "toggle_telegram", "Telegram"),
        Binding("R", "reload_config", "Reload config", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        open_url: Callable[[str], Any] = webbrowser.open,
        flush_seconds: float = FLUSH_SECONDS,
        claude: ClaudeState | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.actor = f"{ACTOR}:{engine.store.runner}"
        # What the header and the Claude panel say about Claude (None: nothing to say).
        self.claude_state = claude
        self.clock = clock
        self._open_url = open_url
        self._flush_seconds = flush_seconds
        self.pending = PendingUpdates()
        self.data = EngineData(engine, claude)
        self.main_screen = MainScreen(clock, self.data)
        # Subscribed at once so that events from engine.start() (recovery notices) wait here.
        self._unsubscribe: Callable[[], None] | None = engine.subscribe(self.pending.add)
        self._frozen = False  # gc.freeze() done at load (see _loaded)
        self.collection = CollectionPacing()  # full collections between key presses
        self._answering = 0  # a press whose binding ran, its answer not painted yet
        self._answer_frames = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(self.main_screen)
        self.set_interval(self._flush_seconds, self.flush)

    @on(requests.Loaded)
    def _loaded(self, message: requests.Loaded) -> None:
        """Keep the collector off what lives as long as the console (widgets, styles, the
        modules): a full collection walks every object, and with these ~100,000 it stalled
        the loop for a quarter of a second under a flood, keys and repaints waiting behind
        it. Frozen, only what was made since is walked. The young generations are collected
        first, not all three: a full collection here is that same stall (about 0.1 s on a
        store of 100,000 errors), met by the first key a person presses; the price is that
        cyclic garbage already in the oldest generation stays, a one-off of the start-up."""
        gc.collect(1)
        gc.freeze()
        self._frozen = True
        self.collection.start()

    async def on_event(self, event: events.Event) -> None:
        """A key press holds off the next full collection until its answer has been painted
        (:mod:`console.collector`). A key comes here twice: as it arrives, before it goes
        to the focused widget, and again after bubbling up unhandled, when the app runs
        the binding; the frames painted after that show the answer (see _display)."""
        if not (isinstance(event, events.Key) and self.collection.running):
            await super().on_event(event)
            return
        if not event.is_forwarded:
            self.collection.key_pressed()
        await super().on_event(event)
        if event.is_forwarded:
            self._answering, self._answer_frames = self.collection.latest_key, 0

    def _display(self, screen: Screen, renderable: RenderableType | None) -> None:
        """Textual's one step that writes a frame to the terminal. By the second frame
        after a key's binding has run its answer is on screen (the first may have been
        composed before the widgets marked what the binding changed, as a refresh callback
        may be under a flood): that is when a due full collection can run."""
        super()._display(screen, renderable)
        if self._answering and renderable is not None:
            self._answer_frames += 1
            if self._answer_frames >= ANSWER_FRAMES:
                key, self._answering, self._answer_frames = self._answering, 0, 0
                self.collection.key_answered(key)

    def on_unmount(self) -> None:
        self.collection.stop()
        if self._frozen:  # hand them back, so a process that runs consoles one after the
            gc.unfreeze()  # other (the tests) can collect the ones that are gone
            self._frozen = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def flush(self) -> None:
        """Paint everything the engine said since the last flush, once. Not while the app
        closes: its screens are being taken apart (widgets gone, screens still stacked)
        and this timer ticks until the very end."""
        if not self.is_running or not self.main_screen.ready:
            return
        self.collection.tick()
        drained = self.pending.drain()
        if drained is None:
            return
        self.main_screen.apply(drained)
        for screen in self.screen_stack:
            if isinstance(screen, ReviewScreen):
                screen.refresh_rows(
                    _find(drained.errors, screen.error.id),
                    _find(drained.attempts, screen.attempt.id),
                )
                for plan in drained.plans:
                    if plan.attempt_id == screen.attempt.id:
                        screen.show_plan(plan)
            elif isinstance(screen, DetailScreen):
                row = _find(drained.errors, screen.error.id)
                if row is not None:
                    screen.refresh_error(row)
        self._notify_all(drained)

    def _notify_all(self, drained: Drained) -> None:
        for notice in drained.notices:
            self.show_notice(notice)
        if drained.notices_dropped:
            self.notify(
                f"{drained.notices_dropped} more notices (see the log panel and the store)",
                severity="warning",
            )

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notices carry config and log text (service names, error messages, git's output),
        so they show exactly as written: a ``[telegram]`` in one must not be read as markup
        and vanish. Every notice in the console comes through here."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def show_notice(self, notice: Notice) -> None:
        severity = _SEVERITY.get(notice.level, "information")
        self.notify(notice.text, severity=severity, timeout=12 if severity == "error" else 6)

    # --- requests from the screens --------------------------------------------------------

    @on(requests.WorkFailed)
    def _work_failed(self, message: requests.WorkFailed) -> None:
        """The one handler for failed background work: a notice, and the console runs on."""
        self.notify(f"{message.what} failed: {message.error}", severity="error", timeout=12)

    def command(self, label: str, call: Callable[[], Awaitable[CommandResult]]) -> None:
        """Run an engine command as a worker and say how it went; input never waits on it."""

        async def work() -> None:
            result = await call()
            if not result.noticed:  # else its Notice is on screen already
                self.notify(result.message, severity="information" if result.ok else "warning")

        run_guarded(self, work, what=label, group="commands")

    @on(requests.Approve)
    def _approve(self, message: requests.Approve) -> None:
        error = message.error
        self.command("approve", lambda: self.engine.approve(error.id, self.actor))

    @on(requests.Publish)
    def _publish(self, message: requests.Publish) -> None:
        error, attempt = message.error, message.attempt

        async def confirm() -> None:
            await self._confirm_publish(error, attempt)

        run_guarded(self, confirm, what="publishing", group="dialogs")

    async def _confirm_publish(self, error: ErrorRow, shown: AttemptRow | None) -> None:
        """Show what would be pushed and publish only on an explicit yes."""
        attempt_id = shown.id if shown else error.current_attempt_id
        if attempt_id is None:
            return
        attempt = await self.data.attempt(attempt_id)
        refused = self.engine.publish_refusal(attempt, error) if attempt else None
        if refused is not None:
            self.notify(refused, severity="warning")
            return
        if attempt is None or Action.PUBLISH not in self.engine.actions(error, attempt):
            said = (
                f"{attempt_name(attempt, error)} is {STATE_LABELS[attempt.state]}"
                if attempt
                else f"{error_name(error.service, error.error_type, error.message)} has moved on"
            )
            self.notify(f"already decided: {said}", severity="warning")
            return
        service = self.engine.config.service(error.service)
        plan = await plan_publish(service, self.engine.config.github) if service else None
        body = self._publish_body(error, attempt, plan)
        title, yes = (
            ("Push and open the pull request?", "Push + PR")
            if plan is not None and plan.opens_pr
            else ("Push the branch?", "Push")
        )
        confirmed = await self.push_screen_wait(ConfirmScreen(title, body, yes=yes))
        if confirmed:
            self.command("publish", lambda: self.engine.publish(attempt_id, self.actor))

    def _publish_body(
        self, error: ErrorRow, attempt: AttemptRow, plan: PublishPlan | None
    ) -> Group:
        service = self.engine.config.service(error.service)
        sensitive = service.sensitive_paths if service else ()
        files = diff_files(attempt, sensitive)
        where = Text()
        where.append("branch ", style="dim")
        where.append(attempt.branch or "?", style="bold")
        if plan is not None:
            where.append(" → ", style="dim")
            where.append(plan.remote, style="bold")
            if plan.missing is None:
                where.append(f" + PR into {plan.base_branch} on {plan.repo_name}", style="dim")
            else:
                where.append(f" (push only: no PR, {plan.missing} is not configured)", style="dim")
        lines: list[Any] = [
            Text(f"{error.error_type}: {' '.join(error.message.split())}", style="bold"),
            where,
            summary_text(attempt, files),
            Text(""),
        ]
        lines += [file_label(f) for f in files]
        if attempt.claude_summary:
            lines += [Text(""), Text(attempt.claude_summary.strip()[:600], style="italic")]
        return Group(*lines)

    @on(requests.Skip)
    def _skip(self, message: requests.Skip) -> None:
        error = message.error
        self.command(
            "skip",
            lambda: self.engine.skip(error.id, self.actor, attempt_id=error.current_attempt_id),
        )

    @on(requests.Retry)
    def _retry(self, message: requests.Retry) -> None:
        error = message.error

        def retry(instruction: str | None) -> None:
            if instruction is None:
                return
            self.command(
                "retry",
                lambda: self.engine.retry(
                    error.id,
                    self.actor,
                    instruction=instruction or None,
                    attempt_id=error.current_attempt_id,
                ),
            )

        what = f"{error.error_type}: {' '.join(error.message.split())}"
        self.push_screen(RetryScreen(what[:200]), retry)

    @on(requests.Revert)
    def _revert(self, message: requests.Revert) -> None:
        error = message.error

        async def confirm() -> None:
            await self._confirm_revert(error)

        run_guarded(self, confirm, what="reverting", group="dialogs")

    async def _confirm_revert(self, error: ErrorRow) -> None:
        """Say which merge would be reverted and why, and open the revert PR only on an
        explicit yes; an error that allows no revert hears the engine's refusal."""
        refused = await self.engine.refusal(error.id, Action.REVERT)
        if refused is not None:
            self.notify(refused.message, severity="warning")
            return
        merged = await after_merge(self.engine.store, error)
        body = _revert_body(error, merged)
        title = "Revert the merged fix?"
        if await self.push_screen_wait(ConfirmScreen(title, body, yes="Open revert PR")):
            self.command("revert", lambda: self.engine.revert(error.id, self.actor))

    @on(requests.Mute)
    def _mute(self, message: requests.Mute) -> None:
        """``m`` mutes (asking how long), or unmutes an error whose mute holds."""
        error = message.error

        async def ask() -> None:
            allowed = self.engine.actions(error)
            if Action.UNMUTE in allowed:
                self.command("unmute", lambda: self.engine.unmute(error.id, self.actor))
                return
            refused = await self.engine.refusal(error.id, Action.MUTE)
            if refused is not None:
                self.notify(refused.message, severity="warning")
                return
            what = f"{error.error_type}: {' '.join(error.message.split())}"
            chosen: MuteFor | None = await self.push_screen_wait(MuteScreen(what[:200]))
            if chosen is not None:
                self.command(
                    "mute",
                    lambda: self.engine.mute(
                        error.id,
                        self.actor,
                        minutes=chosen.minutes,
                        occurrences=chosen.occurrences,
                    ),
                )

        run_guarded(self, ask, what="muting", group="dialogs")

    @on(requests.StopMerge)
    def _stop_merge(self, message: requests.StopMerge) -> None:
        error = message.error
        self.command(
            "stop auto-merge",
            lambda: self.engine.stop_merge(error.id, ACTOR, attempt_id=error.current_attempt_id),
        )

    @on(requests.ResumeMerge)
    def _resume_merge(self, message: requests.ResumeMerge) -> None:
        error = message.error
        self.command("resume auto-merge", lambda: self.engine.resume_merge(error.id, ACTOR))

    @on(requests.Reopen)
    def _reopen(self, message: requests.Reopen) -> None:
        error = message.error
        self.command("reopen", lambda: self.engine.reopen(error.id, self.actor))

    def _attempt_of(self, error: ErrorRow) -> AttemptRow | None:
        if error.current_attempt_id is None:
            return None
        return self.main_screen.query_one(QueueTable).attempt(error.current_attempt_id)

    @on(requests.OpenReview)
    def _open_review(self, message: requests.OpenReview) -> None:
        attempt = self._attempt_of(message.error)
        if attempt is None or not attempt.diff:
            self.notify("no diff for this error yet", severity="warning", timeout=3)
            return
        self.push_screen(ReviewScreen(message.error, attempt, self.data))

    @on(requests.OpenDetail)
    def _open_detail(self, message: requests.OpenDetail) -> None:
        self.push_screen(DetailScreen(message.error, self.data, self.clock))

    @on(requests.OpenHistory)
    def _open_history(self, message: requests.OpenHistory) -> None:
        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen(self.data, self.clock))

    @on(requests.OpenPR)
    def _open_pr(self, message: requests.OpenPR) -> None:
        error = message.error
        attempt = self._attempt_of(error)

        async def work() -> None:
            url = await self._page_of(error, attempt)
            if url is None:
                return
            self.notify(f"opening {url}")
            try:
                await asyncio.to_thread(self._open_url, url)
            except Exception as exc:
                self.notify(f"could not open a browser: {exc}; the page is {url}", severity="error")

        run_guarded(self, work, what="opening the browser", group="browser")

    async def _page_of(self, error: ErrorRow, attempt: AttemptRow | None) -> str | None:
        """The pull request's page, or for a branch pushed without one GitHub's page for
        opening it; None (having said why) when there is no page to open."""
        if attempt is not None and attempt.pr_url:
            return attempt.pr_url
        service = self.engine.config.service(error.service)
        if attempt is None or attempt.state is not State.PUSHED or not attempt.branch:
            self.notify("no pull request for this error yet", severity="warning", timeout=3)
            return None
        if service is None:
            self.notify(
                f"cannot open branch {attempt.branch}: service {error.service} is no longer "
                "in the config",
                severity="warning",
            )
            return None
        remote = await remote_url(service.repo, service.remote)
        page = compare_page(remote or "", service.base_branch, attempt.branch)
        if page is None:
            self.notify(
                f"no pull request was opened for branch {attempt.branch}, and its remote "
                f"{service.remote} ({remote or 'no URL'}) is not on github.com, so there is "
                "no page to open for it",
                severity="warning",
            )
        return page

    async def action_toggle_telegram(self) -> None:
        control = self.engine.telegram
        enable = control is None or control.state != "on"
        self.command("Telegram", lambda: self.engine.set_telegram(enable))

    async def action_reload_config(self) -> None:
        """Read the config file again: a raised daily budget lets waiting fixes start."""
        self.command("Reload config", self.engine.reload_config)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Quitting stops a running fix (it becomes interrupted), so ask first."""
        if not self.engine.busy:
            self.exit()
            return
        running = self.main_screen.query_one(QueueTable).running
        facts = ", ".join(
            f"{attempt_name(a)} {STATE_LABELS[a.state]} {clock_duration(elapsed(a, self.clock()))}"
            for a in running
        )
        body = Text(
            f"A fix is running ({facts or 'starting'}). Quitting stops it; it will show as "
            "interrupted and can be retried later."
        )

        def answer(quit_now: bool | None) -> None:
            if quit_now:
                self.exit()

        self.push_screen(ConfirmScreen("Quit while a fix is running?", body, yes="Quit"), answer)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every key's action is in the command palette too."""
        yield from super().get_system_commands(screen)
        main = self.main_screen
        yield SystemCommand("Approve", "Start a fix, or open the PR (a)", main.action_approve)
        yield SystemCommand("Skip", "Skip the selected error (s)", main.action_skip)
        yield SystemCommand("Retry", "Retry with an optional instruction (r)", main.action_retry)
        yield SystemCommand("Reopen", "Bring a skipped error back", main.action_reopen)
        yield SystemCommand(
            "Revert", "Open a PR reverting a regressed error's merged fix (u)", main.action_revert
        )
        yield SystemCommand(
            "Mute / unmute", "Quiet an error for a while or N occurrences (m)", main.action_mute
        )
        yield SystemCommand("Diff / review", "Review the fix's diff (d)", main.action_review)
        yield SystemCommand("Detail", "Error detail (enter)", main.action_detail)
        yield SystemCommand(
            "Open PR", "Open the pull request in a browser (o)", main.action_open_pr
        )
        yield SystemCommand("Filter", "Filter errors (/)", main.action_filter)
        yield SystemCommand(
            "History", "Attempts, outcomes, costs and regressions over time (h)",
            main.action_history,
        )  # fmt: skip
        yield SystemCommand("Telegram on/off", "Toggle Telegram (t)", self.action_toggle_telegram)
        yield SystemCommand("Help", "Show all keys (?)", self.action_help)


def _revert_body(error: ErrorRow, merged: AfterMerge | None) -> Group:
    """What the revert would undo: the merged PR and its merge commit, and why."""
    lines: list[Any] = [
        Text(f"{error.error_type}: {' '.join(error.message.split())}", style="bold")
    ]
    if merged is not None:
        pr, seen = merged.pr, merged.recurrence
        sha = f" (merge commit {pr.merge_sha[:12]})" if pr.merge_sha else ""
        lines.append(Text(f"reverts pull request #{pr.number}{sha}, merged {pr.merged_at}"))
        lines.append(
            Text(f"{seen.count} occurrence(s) since {merged.since}, on the merged code", "dim")
        )
        if merged.why:
            lines += [Text(""), Text(merged.why, style="italic")]
    lines += [
        Text(""),
        Text("A branch off the fresh base reverts the merge, is pushed, and a pull request "
             "is opened for it; nothing is merged by the console.", style="dim"),
    ]  # fmt: skip
    return Group(*lines)


def _find(rows: Iterable[Any], row_id: int) -> Any:
    for row in rows:
        if row.id == row_id:
            return row
    return None


def log_to_file(config: ConsoleConfig) -> Path:
    """While the screen is ours, log lines written to the terminal would tear it: send the
    log to a file in the state directory instead (notices still show in the app)."""
    path = config.state_dir / "console.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            root.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return path


async def run_console(
    config: ConsoleConfig, claude: ClaudeState | None = None, config_path: Path | None = None
) -> int:
    """Run the console (with Telegram when configured) until quit; stop everything cleanly.

    A closed terminal or SIGTERM quits like ``q`` does, so callers' cleanup always runs.
    ``claude`` is what to say about Claude; by default what this machine's CLI looks like.
    """
    from console.session import running

    log_to_file(config)
    engine = await Engine.open(config)
    engine.config_path = config_path
    state = claude or discover(config.claude.command, config.claude.extra_env)
    app = AutofixApp(engine, claude=state)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGHUP, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, app.exit)
    async with running(config, engine=engine):
        await app.run_async()
    return app.return_code or 0


def main(config: ConsoleConfig, config_path: Path | None = None) -> int:
    """Entry for ``autofix`` (the CLI loads the config from ``config_path`` and passes it
    here; ``R`` reads that file again)."""
    return asyncio.run(run_console(config, config_path=config_path))


__all__ = ["AutofixApp", "EngineEvent", "main", "run_console"]
