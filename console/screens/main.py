"""The main screen: header, errors, queue, Claude's live stream and the diff preview.

It renders what the app hands it (drained engine events) and turns keys into requests
(:mod:`console.screens.requests`) that the app carries out through the engine. Which keys
are live comes from the engine's flow rule, through :class:`ScreenData`; the screen never
decides anything itself.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Input

from console.fix.claude import StreamEvent as ClaudeEvent
from console.models import Action, AttemptRow, ErrorRow, State, attempt_name
from console.pending import Drained
from console.screens import requests
from console.screens.background import run_guarded
from console.screens.data import ScreenData
from console.widgets.claude_log import MAX_LINES, ClaudeLog, parse_transcript
from console.widgets.diff_view import DiffView
from console.widgets.errors_table import MAX_ROWS, ErrorsTable
from console.widgets.footer import DecisionFooter
from console.widgets.header import StatusHeader
from console.widgets.queue import MAX_ATTEMPTS, QueueTable
from console.widgets.sparkline import ErrorSparkline

KEPT_HISTORIES = 20
SPARKLINE_REFRESH_SECONDS = 15.0
SELECTION_SETTLE_SECONDS = 0.06  # shorter than a person's pause, longer than key repeat


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("a", "approve", "Approve"),
        Binding("s", "skip", "Skip"),
        Binding("r", "retry", "Retry"),
        Binding("d", "review", "Diff"),
        # Narrow terminals show the Claude panel or the Diff panel, this key swaps them.
        Binding("v", "swap_panel", "Panel"),
        Binding("enter", "detail", "Detail", show=False),
        Binding("o", "open_pr", "Open PR"),
        Binding("x", "auto_merge", "Stop merge"),
        Binding("u", "revert", "Revert"),
        Binding("m", "mute", "Mute"),
        Binding("h", "history", "History", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    # The keys that stand for a decision, and the decisions each can carry out.
    DECISION_KEYS: dict[str, frozenset[Action]] = {
        "approve": frozenset({Action.APPROVE, Action.PUBLISH}),
        "skip": frozenset({Action.SKIP}),
        "retry": frozenset({Action.RETRY}),
        "auto_merge": frozenset({Action.STOP_MERGE, Action.RESUME_MERGE}),
    }
    # Revert (u) and mute (m) are never greyed: they are needed once a fix came back, and
    # pressed on an error that does not allow them they say why (the engine's refusal).

    def __init__(self, clock: Callable[[], float], data: ScreenData) -> None:
        super().__init__()
        self._clock = clock
        self._data = data
        self._decision_keys_shown: tuple[bool | None, ...] = ()
        self.ready = False
        self.current: ErrorRow | None = None
        self.attempt_id: int | None = None
        self._histories: OrderedDict[int, deque[ClaudeEvent]] = OrderedDict()
        # What the panes beside the table have yet to show of the selection.
        self._spark_due = False
        self._attempt_due = False
        # How long the selection rests before the panes load (see _follow_selection).
        self.settle_seconds = SELECTION_SETTLE_SECONDS
        # The regressed errors the header's alarm counts (None: not read yet).
        self._alarmed: set[int] | None = None

    def compose(self) -> ComposeResult:
        yield StatusHeader(self._clock, id="status")
        with Horizontal(id="body"):
            with Vertical(id="errors-panel") as errors:
                errors.border_title = "Errors"
                yield Input(placeholder="filter: words in service, error, host or status",
                            id="filter", classes="hidden")  # fmt: skip
                yield ErrorsTable(self._clock, id="errors")
                yield ErrorSparkline(id="spark")
            with Vertical(id="side"):
                queue = QueueTable(self._clock, own_runner=self._data.runner, id="queue")
                queue.border_title = "Queue"
                yield queue
                claude = ClaudeLog(id="claude")
                claude.border_title = "Claude"
                yield claude
                diff = DiffView(id="diff")
                diff.border_title = "Diff"
                yield diff
        yield DecisionFooter()

    def on_resize(self) -> None:
        narrow = self.has_class("-narrow")
        self.query_one(DecisionFooter).fit(narrow)
        self.refresh_bindings()  # `v` is only live where the panels share the space

    # --- loading and live updates ------------------------------------------------------------

    def on_mount(self) -> None:
        self.query_one(ErrorsTable).focus()
        run_guarded(self, self._load, what="loading the console", group="load")
        self.set_interval(1.0, self._tick)
        self.set_interval(5.0, self._age_tick)
        self.set_interval(SPARKLINE_REFRESH_SECONDS, self._refresh_sparkline)

    async def _load(self) -> None:
        overview = await self._data.overview(MAX_ROWS, MAX_ATTEMPTS)
        header = self.query_one(StatusHeader)
        header.hosts = list(overview.hosts)
        header.seqs = dict(overview.seqs)
        header.links.update(overview.links)
        header.telegram = overview.telegram
        header.claude = overview.claude
        header.hold = overview.hold
        self.query_one(ClaudeLog).state = overview.claude
        queue = self.query_one(QueueTable)
        for error in [*overview.errors, *overview.attempt_errors]:
            queue.label_error(error.id, _short(error))
        queue.apply(overview.attempts)
        self.query_one(ErrorsTable).load(overview.errors)
        header.running = queue.running
        header.latest = queue.latest
        header.redraw()
        if self.attempt_id is None and overview.claude is not None:
            self.query_one(ClaudeLog).show(None, [])
        self.ready = True
        self.post_message(requests.Loaded())
        self.refresh_bindings()
        self._reread_alarm()

    def apply(self, drained: Drained) -> None:
        """Paint one batch of coalesced engine events."""
        try:
            table = self.query_one(ErrorsTable)
            queue = self.query_one(QueueTable)
            header = self.query_one(StatusHeader)
        except NoMatches:  # the console is quitting and its widgets are already gone
            return
        for error in drained.errors:
            queue.label_error(error.id, _short(error))
        if drained.errors:
            table.apply(drained.errors)
        if drained.attempts:
            queue.apply(drained.attempts)
            header.running = queue.running
            header.latest = queue.latest
            shown = next((a for a in drained.attempts if a.id == self.attempt_id), None)
            if shown is not None:
                self._show_diff(shown)
                self.query_one(ClaudeLog).outcome(shown)
        claude = self.query_one(ClaudeLog)
        live: list[ClaudeEvent] = []
        for attempt_id, event in drained.claude:
            self._history(attempt_id).append(event)
            if attempt_id == claude.attempt_id:
                live.append(event)
        if drained.claude_dropped and claude.attempt_id is not None:
            claude.note(f"… {drained.claude_dropped} stream events skipped (too fast to show)")
        claude.add(live)
        if drained.links:
            header.set_links(drained.links)
        if drained.telegram is not None:
            header.telegram = (drained.telegram.state, drained.telegram.detail)
        if drained.hold is not None:
            header.hold = drained.hold
        header.redraw()
        if drained.errors or drained.attempts or drained.plans:
            self._refresh_decision_keys()  # a decision taken elsewhere may grey a key
        alarmed = self._alarmed or set()
        if any(e.state is State.REGRESSED or e.id in alarmed for e in drained.errors):
            self._reread_alarm()

    def _reread_alarm(self) -> None:
        """Count the regressed errors nobody answered yet again (a regression, a revert,
        a mute, a retry or a skip changes it); one read at a time, the newest wins."""
        run_guarded(self, self._read_alarm, what="reading regressions", group="alarm",
                    exclusive=True)  # fmt: skip

    async def _read_alarm(self) -> None:
        waiting = {e.id for e in await self._data.unanswered_regressions()}
        before, self._alarmed = self._alarmed, waiting
        if before is not None and waiting - before:
            self.app.bell()  # a new regression: loud, beside the engine's notice
        header = self.query_one(StatusHeader)
        header.regressed = len(waiting)
        header.redraw()

    def _history(self, attempt_id: int) -> deque[ClaudeEvent]:
        history = self._histories.get(attempt_id)
        if history is None:
            history = self._histories[attempt_id] = deque(maxlen=MAX_LINES)
            while len(self._histories) > KEPT_HISTORIES:
                self._histories.popitem(last=False)
        else:
            self._histories.move_to_end(attempt_id)
        return history

    def _tick(self) -> None:
        self.query_one(QueueTable).tick()
        self.query_one(StatusHeader).redraw()

    def _age_tick(self) -> None:
        self.query_one(ErrorsTable).refresh_ages()

    # --- selection ---------------------------------------------------------------------------

    def on_errors_table_selected(self, message: ErrorsTable.Selected) -> None:
        previous = self.current
        self.current = message.error
        self._refresh_decision_keys()
        if message.error is None or previous is None or previous.id != message.error.id:
            self._spark_due = True
        self._select_attempt(message.error.current_attempt_id if message.error else None)

    def on_queue_table_selected(self, message: QueueTable.Selected) -> None:
        self._select_attempt(message.attempt.id)

    def on_errors_table_detail_requested(self, message: ErrorsTable.DetailRequested) -> None:
        self.post_message(requests.OpenDetail(message.error))

    def _select_attempt(self, attempt_id: int | None) -> None:
        if attempt_id != self.attempt_id:
            self.attempt_id = attempt_id
            self._attempt_due = True
        self._follow_selection()

    def _follow_selection(self) -> None:
        """The panes beside the table follow the selection in one repaint: the sparkline,
        the attempt's stream and its diff are read together and shown at once, so a key
        press costs one layout of the screen, not one per pane. A newer selection cancels
        the read of an older one, and the read starts once the selection has rested for
        ``settle_seconds``: a held arrow key moves the highlight at every repeat and
        loads the panes once, where it stops (each load costs tens of milliseconds of CPU
        that the next repeat would wait behind)."""
        if self._spark_due or self._attempt_due:
            run_guarded(
                self, self._load_selection, what="loading the selection", group="selection",
                exclusive=True,
            )  # fmt: skip

    async def _load_selection(self) -> None:
        await asyncio.sleep(self.settle_seconds)  # a newer selection cancels this wait
        error, attempt_id = self.current, self.attempt_id
        spark_due, attempt_due = self._spark_due, self._attempt_due
        buckets = None
        if spark_due and error is not None:
            buckets = await self._data.occurrences_per_minute(error.id, self._clock())
        attempt: AttemptRow | None = None
        events: list[ClaudeEvent] = []
        if attempt_due and attempt_id is not None:
            attempt = self.query_one(QueueTable).attempt(attempt_id)
            if attempt is None:
                attempt = await self._data.attempt(attempt_id)
            if attempt_id in self._histories:
                events = list(self._history(attempt_id))
            else:
                events = parse_transcript(await self._data.transcript(attempt_id))[-MAX_LINES:]
        if _id(self.current) != _id(error) or self.attempt_id != attempt_id:
            return  # the selection moved on while reading; its own read shows it
        with self.app.batch_update():
            if spark_due:
                self._spark_due = False
                self.query_one(ErrorSparkline).show(buckets)
            if attempt_due:
                self._attempt_due = False
                self._show_attempt(attempt_id, attempt, events)

    def _show_attempt(
        self, attempt_id: int | None, attempt: AttemptRow | None, events: list[ClaudeEvent]
    ) -> None:
        claude = self.query_one(ClaudeLog)
        if attempt_id is None:
            claude.show(None, [], "no fix attempt for this error yet: a approves one")
            self.query_one(DiffView).show(None)
            return
        claude.border_title = f"Claude · {attempt_name(attempt)}" if attempt else "Claude"
        claude.show(attempt_id, events, denials=attempt.denials if attempt else ())
        if attempt is not None:
            claude.outcome(attempt)
            self._show_diff(attempt)

    def _show_diff(self, attempt: AttemptRow) -> None:
        error = self.query_one(ErrorsTable).error(attempt.error_id)
        sensitive = self._data.sensitive_paths(error.service) if error else ()
        self.query_one(DiffView).show(attempt, sensitive)

    def _refresh_sparkline(self) -> None:
        if self.current is not None:
            self._spark_due = True
            self._follow_selection()

    # --- keys --------------------------------------------------------------------------------

    def _selected(self) -> ErrorRow | None:
        error = self.query_one(ErrorsTable).selected_error
        if error is None:
            self.notify("no error selected", severity="warning", timeout=3)
        return error

    def selected_attempt(self) -> AttemptRow | None:
        error = self.query_one(ErrorsTable).selected_error
        if error is None or error.current_attempt_id is None:
            return None
        return self.query_one(QueueTable).attempt(error.current_attempt_id)

    def _refresh_decision_keys(self) -> None:
        """Refresh the bindings only when a decision key's state really changed: each
        refresh restyles the footer's keys, and a flood of count updates would otherwise
        do that at every repaint."""
        shown = tuple(self.check_action(action, ()) for action in self.DECISION_KEYS)
        if shown != self._decision_keys_shown:
            self._decision_keys_shown = shown
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A decision key is greyed out (None) when the engine says the selected error
        allows none of what it stands for; with nothing selected it says so when pressed.
        The panel swap exists only where the panels share the space (a narrow terminal)."""
        if action == "swap_panel":
            return self.has_class("-narrow")
        wanted = self.DECISION_KEYS.get(action)
        if wanted is None:
            return True
        try:
            error = self.query_one(ErrorsTable).selected_error
        except NoMatches:  # not composed yet, or already torn down
            return True
        if error is None:
            return True
        return True if wanted & self._data.actions(error) else None

    def action_approve(self) -> None:
        if (error := self._selected()) is not None:
            if Action.PUBLISH in self._data.actions(error):
                self.post_message(requests.Publish(error))
            else:
                self.post_message(requests.Approve(error))

    def action_auto_merge(self) -> None:
        if (error := self._selected()) is not None:
            if Action.STOP_MERGE in self._data.actions(error):
                self.post_message(requests.StopMerge(error))
            else:
                self.post_message(requests.ResumeMerge(error))

    def action_revert(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.Revert(error))

    def action_mute(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.Mute(error))

    def action_skip(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.Skip(error))

    def action_retry(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.Retry(error))

    def action_reopen(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.Reopen(error))

    def action_review(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.OpenReview(error))

    def action_detail(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.OpenDetail(error))

    def action_open_pr(self) -> None:
        if (error := self._selected()) is not None:
            self.post_message(requests.OpenPR(error))

    def action_swap_panel(self) -> None:
        """Claude's stream or the diff preview in the side column of a narrow terminal."""
        self.toggle_class("-show-diff")
        shown = self.query_one(DiffView if self.has_class("-show-diff") else ClaudeLog)
        if self.focused is not None and self.focused.id in ("claude", "diff"):
            shown.focus()

    def action_history(self) -> None:
        self.post_message(requests.OpenHistory())

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.add_class("hidden")
        self.query_one(ErrorsTable).set_filter("")
        self.query_one(ErrorsTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.query_one(ErrorsTable).set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value.strip():
                event.input.add_class("hidden")
            self.query_one(ErrorsTable).focus()

    def on_key(self, event: object) -> None:  # escape inside the filter box clears it
        key = getattr(event, "key", None)
        if key == "escape" and self.query_one("#filter", Input).has_focus:
            self.action_clear_filter()


def _id(error: ErrorRow | None) -> int | None:
    return error.id if error is not None else None


def _short(error: ErrorRow) -> str:
    return f"{error.error_type}: {' '.join(error.message.split())}"
