"""The review screen: one attempt's diff full screen, file by file, with the decision keys.

Above the diff, every call Claude Code was refused during the attempt is listed with the
rule or reason and the path or command it aimed at: what the fixer tried and could not do
is part of what a reviewer weighs. When the service auto-merges, every gate of its policy is
listed too, with its result and reason, and ``x`` stops the merge during the soak.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.automerge.plan import MergePlan, MergeStep
from console.models import Action, AttemptRow, Denial, ErrorRow, attempt_name
from console.screens import requests
from console.screens.data import ScreenData
from console.widgets.diff_view import DiffView
from console.widgets.labels import money, state_text


class ReviewScreen(Screen[None]):
    BINDINGS = [
        Binding("n", "next_file", "Next file"),
        Binding("p", "previous_file", "Prev file"),
        Binding("a", "approve", "Approve (open PR)"),
        Binding("s", "skip", "Skip"),
        Binding("r", "retry", "Retry"),
        Binding("x", "auto_merge", "Stop merge"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    # The keys that stand for a decision about the attempt shown.
    DECISION_KEYS: dict[str, frozenset[Action]] = {
        "approve": frozenset({Action.PUBLISH}),
        "skip": frozenset({Action.SKIP}),
        "retry": frozenset({Action.RETRY}),
        "auto_merge": frozenset({Action.STOP_MERGE, Action.RESUME_MERGE}),
    }

    def __init__(self, error: ErrorRow, attempt: AttemptRow, data: ScreenData) -> None:
        super().__init__()
        self.error = error
        self.attempt = attempt
        self._data = data
        self._sensitive = data.sensitive_paths(error.service)

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="review-title")
        yield Static(denial_text(self.attempt.denials), id="review-denials")
        yield Static(id="review-merge")
        yield DiffView(id="review-diff")
        yield Footer()

    def _title(self) -> Text:
        text = Text(f" {attempt_name(self.attempt)} ", style="bold reverse")
        text.append(" ")
        text.append_text(state_text(self.attempt.state))
        turns = self.attempt.claude_turns or 0
        text.append(f"  {turns} turns {money(self.attempt.claude_cost_usd)}", style="dim")
        text.append(f"  {self.error.service}  ", style="dim")
        text.append(f"{self.error.error_type}: ", style="bold")
        text.append(" ".join(self.error.message.split()))
        if self.attempt.extra_instruction:
            text.append(f"\n instruction: {self.attempt.extra_instruction}", style="italic")
        return text

    def on_mount(self) -> None:
        self.query_one("#review-title", Static).update(self._title())
        self._show_denials()
        self.show_plan(self._data.merge_plan(self.attempt.id))
        view = self.query_one(DiffView)
        view.show(self.attempt, self._sensitive)
        view.query_one(".diff-body").focus()

    def refresh_rows(self, error: ErrorRow | None, attempt: AttemptRow | None) -> None:
        """Live updates: a decision taken elsewhere (Telegram) shows here at once. One
        that arrives between the push of the screen and its mount is kept for on_mount."""
        if error is not None and error.id == self.error.id:
            self.error = error
        if attempt is not None and attempt.id == self.attempt.id:
            self.attempt = attempt
        if not self.is_mounted:
            return
        if attempt is not None and attempt.id == self.attempt.id:
            self.query_one(DiffView).show(attempt, self._sensitive)
            self._show_denials()
        self.query_one("#review-title", Static).update(self._title())
        self.refresh_bindings()

    def show_plan(self, plan: MergePlan | None) -> None:
        """The attempt's automatic merge, gate by gate (hidden when it has none)."""
        panel = self.query_one("#review-merge", Static)
        if plan is not None and plan.attempt_id == self.attempt.id:
            panel.update(gate_text(plan))
        panel.display = plan is not None and plan.attempt_id == self.attempt.id
        self.refresh_bindings()

    def _show_denials(self) -> None:
        denials = self.attempt.denials
        panel = self.query_one("#review-denials", Static)
        panel.update(denial_text(denials))
        panel.display = bool(denials)

    def action_next_file(self) -> None:
        self.query_one(DiffView).next_file()

    def action_previous_file(self) -> None:
        self.query_one(DiffView).previous_file()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A decision key is greyed out (None) once the engine allows it no more for the
        attempt shown (it was decided here, on Telegram, or a newer attempt started)."""
        wanted = self.DECISION_KEYS.get(action)
        if wanted is None:
            return True
        return True if wanted & self._data.actions(self.error, self.attempt) else None

    def action_approve(self) -> None:
        self.post_message(requests.Publish(self.error, self.attempt))

    def action_auto_merge(self) -> None:
        if Action.STOP_MERGE in self._data.actions(self.error, self.attempt):
            self.post_message(requests.StopMerge(self.error))
        else:
            self.post_message(requests.ResumeMerge(self.error))

    def action_skip(self) -> None:
        self.post_message(requests.Skip(self.error))

    def action_retry(self) -> None:
        self.post_message(requests.Retry(self.error))


_GATE_MARKS = {True: ("✓", "green"), False: ("✗", "red")}


def gate_text(plan: MergePlan) -> Text:
    """The plan's line, then one line a gate: passed, pending or failed, and why."""
    style = {MergeStep.MERGED: "bold green", MergeStep.REFUSED: "bold red"}.get(
        plan.step, "bold yellow"
    )
    text = Text(f" {plan.line()}", style=style)
    for gate in plan.gates.results:
        mark, colour = ("…", "yellow") if gate.pending else _GATE_MARKS[gate.passed]
        text.append(f"\n   {mark} ", style=colour)
        text.append(f"{gate.name:<7}", style="bold")
        text.append(gate.reason)
    if plan.stoppable:
        text.append("\n   x stops it; the PR stays open", style="dim")
    return text


def denial_text(denials: list[Denial]) -> Text:
    """The refused calls, one a line: tool, path or command, and the rule or reason."""
    text = Text(f" ✗ Claude Code was refused {len(denials)} call(s):", style="bold red")
    for denial in denials:
        text.append(f"\n   {denial.tool} ", style="bold")
        text.append(denial.target[:200])
        text.append(f"  {denial.reason}", style="red")
    return text
