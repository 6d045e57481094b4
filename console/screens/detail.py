"""The error detail screen: everything known about one error, for deciding what to do.

Full stack with the application's own frames highlighted (library and runtime frames dimmed),
route, first and last seen, per-host counts, the latest raw samples as relayed (already
redacted by the agent), the fix attempts and who decided what. For an error whose fix was
merged, the merged diff beside the occurrences since the merged code ran, with the keys
that answer a regression (revert, retry, mute).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.fix.frames import FramePosition
from console.lifecycle.rules import is_muted
from console.models import AttemptRow, DecisionRow, ErrorRow, State, attempt_name
from console.regression import AfterMerge, sample_of
from console.screens import requests
from console.screens.background import run_guarded
from console.screens.data import ScreenData
from console.widgets.labels import age, money, severity_text, state_text

SAMPLES = 3
MERGED_DIFF_LINES = 80
SAMPLE_STACK_LINES = 4


def stack_text(stack: list[str], in_app: list[bool | None]) -> Text:
    """In-app frames bold, library and runtime frames dim, anything else as it was.

    Which line is which frame is what the agent's parser saw (``in_app``, one flag per
    line); a stack from an agent that did not say is shown as it was.
    """
    flags = in_app if len(in_app) == len(stack) else [None] * len(stack)
    text = Text()
    for line, flag in zip(stack, flags, strict=True):
        if flag is None:
            text.append(line + "\n")
        elif flag:
            text.append("▶ ", style="bold cyan")
            text.append(line.strip() + "\n", style="bold")
        else:
            text.append("  " + line.strip() + "\n", style="dim")
    return text


def sources_text(frames: list[FramePosition]) -> Text:
    """Each in-app frame as a repository position; a frame in built JavaScript shows the
    original source line its map names, and the built position it came from."""
    text = Text()
    for frame in frames:
        text.append("▶ ", style="bold cyan")
        where = f"{frame.path}:{frame.line}" + (f":{frame.column}" if frame.column else "")
        text.append(where, style="bold")
        if frame.generated:
            text.append(f"  (mapped from {frame.generated})", style="dim")
        text.append("\n")
    return text


def facts_table(error: ErrorRow, now: float) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", justify="right")
    table.add_column()
    severity = severity_text(error.severity)
    severity.append(f" {error.severity}")
    table.add_row("service", error.service)
    table.add_row("severity", severity)
    table.add_row("status", state_text(error.state))
    table.add_row("route", error.route or "—")
    table.add_row("count", f"{error.count:,}")
    table.add_row("first seen", f"{error.first_seen}  ({age(error.first_seen, now)} ago)")
    table.add_row("last seen", f"{error.last_seen}  ({age(error.last_seen, now)} ago)")
    table.add_row("fingerprint", error.fingerprint)
    hosts = Text()
    for host, count in sorted(error.hosts.items(), key=lambda item: (-item[1], item[0])):
        hosts.append(f"{host} ", style="bold")
        hosts.append(f"{count:,}   ")
    table.add_row("hosts", hosts if error.hosts else Text("—"))
    if is_muted(error.muted_until, error.muted_until_count, error.count, now):
        ends = [f"until {error.muted_until}"] if error.muted_until else []
        if error.muted_until_count is not None:
            ends.append(f"for {error.muted_until_count - error.count:,} more occurrence(s)")
        table.add_row("muted", Text(" or ".join(ends) + "  (m unmutes)", style="yellow"))
    return table


def sample_text(raw: str) -> Text:
    """A stored wire line, indented for reading; a line that is not JSON is shown as is."""
    try:
        return Text(json.dumps(json.loads(raw), indent=2, ensure_ascii=False), style="dim")
    except ValueError:
        return Text(raw, style="dim")


def history_table(attempts: list[AttemptRow], decisions: list[DecisionRow]) -> Table:
    table = Table.grid(padding=(0, 2))
    for _ in range(4):
        table.add_column()
    for a in attempts:
        table.add_row(
            Text(attempt_name(a), style="bold"),
            state_text(a.state),
            f"{a.claude_turns or 0} turns {money(a.claude_cost_usd)}",
            Text(a.pr_url or a.reason or a.extra_instruction or "", style="dim"),
        )
    for d in decisions:
        table.add_row(Text(d.at, style="dim"), d.action, d.actor, f"{d.from_state} → {d.to_state}")
    return table


def heading(text: str) -> Text:
    return Text(f"\n{text}", style="bold underline")


def merged_fix_text(merged: AfterMerge, dark: bool = True) -> Group:
    """The merged pull request and its diff (as stored for the attempt)."""
    pr = merged.pr
    head = Text(f"PR #{pr.number}", style="bold")
    head.append(f" merged {pr.merged_at}" + (f" by {pr.merged_by}" if pr.merged_by else ""))
    if pr.merge_sha:
        head.append(f"  merge commit {pr.merge_sha[:12]}", style="dim")
    if merged.revert is not None:
        head.append(f"\nrevert PR #{merged.revert.number} {merged.revert.state}", style="bold")
    lines = (merged.attempt.diff or "").splitlines()
    if not lines:
        return Group(head, Text("(no diff stored for the attempt)", style="dim"))
    shown = "\n".join(lines[:MERGED_DIFF_LINES])
    if len(lines) > MERGED_DIFF_LINES:
        shown += f"\n… {len(lines) - MERGED_DIFF_LINES} more lines (d shows the whole diff)"
    theme = "ansi_dark" if dark else "ansi_light"
    return Group(head, Syntax(shown, "diff", theme=theme, background_color="default"))


def recurrence_text(merged: AfterMerge) -> Text:
    """The occurrences since the merged code ran: how many, when, where, what they said."""
    seen = merged.recurrence
    text = Text()
    text.append(f"{seen.count:,} occurrence(s)", style="bold red" if seen.count else "bold")
    text.append(f" since {merged.since}\n")
    if seen.first_seen:
        text.append(f"first {seen.first_seen}\nlast  {seen.last_seen}\n", style="dim")
    for host, count in sorted(seen.hosts.items(), key=lambda item: (-item[1], item[0])):
        text.append(f"{host} ", style="bold")
        text.append(f"{count:,}   ")
    if seen.hosts:
        text.append("\n")
    if merged.why:
        text.append(f"\n{merged.why}\n", style="italic")
    for raw in seen.samples:
        sample = sample_of(raw)
        if sample is None:
            continue
        text.append(f"\n{sample.at or ''} {sample.host or ''}\n", style="dim")
        text.append(" ".join(sample.message.split())[:300] + "\n")
        for line in sample.stack[1 : 1 + SAMPLE_STACK_LINES]:
            text.append(f"  {line.strip()[:200]}\n", style="dim")
    return text


def after_merge_table(merged: AfterMerge, dark: bool = True) -> Table:
    """The merged diff beside what happened since: a person reads why the fix did not hold
    without leaving the screen."""
    table = Table(expand=True, box=None, padding=(0, 1), show_edge=False)
    table.add_column("Merged fix", ratio=3, style="", header_style="bold")
    table.add_column("Since the merged code ran", ratio=2, header_style="bold")
    table.add_row(merged_fix_text(merged, dark), recurrence_text(merged))
    return table


class DetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back"),
        Binding("u", "revert", "Revert"),
        Binding("r", "retry", "Retry"),
        Binding("m", "mute", "Mute"),
    ]

    def __init__(self, error: ErrorRow, data: ScreenData, clock: Callable[[], float]) -> None:
        super().__init__()
        self.error = error
        self._data = data
        self._clock = clock
        self._sources: list[FramePosition] = []
        self._after_merge: AfterMerge | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail") as box:
            # A Text, not a str: a border title string is read as markup, and the error's
            # type and message come from the log.
            box.border_title = Text(f"{self.error.error_type}: {self.error.message}"[:120])
            yield Static(self._render_body([], [], []), id="detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self._reload()

    def _reload(self) -> None:
        what = f"loading the detail of error {self.error.id}"
        run_guarded(self, self._load, what=what, group="detail", exclusive=True)

    async def _load(self) -> None:
        detail = await self._data.detail(self.error.id, SAMPLES)
        self.error = detail.error or self.error
        self._sources = detail.sources
        self._after_merge = detail.after_merge
        self.query_one("#detail-body", Static).update(
            self._render_body(detail.samples, detail.attempts, detail.decisions)
        )

    def refresh_error(self, error: ErrorRow) -> None:
        """A live update of the error shown (count, state): re-read its history too."""
        if error.id == self.error.id:
            self.error = error
            self._reload()

    def _render_body(
        self, samples: list[str], attempts: list[AttemptRow], decisions: list[DecisionRow]
    ) -> RenderableType:
        error = self.error
        title = Text(f"{error.error_type}: ", style="bold red")
        title.append(error.message, style="bold")
        parts: list[RenderableType] = [title, Text(""), facts_table(error, self._clock())]
        parts += [
            heading("Stack"),
            stack_text(error.stack, error.in_app) if error.stack else Text("—"),
        ]
        if self._sources:
            parts += [heading("In the code"), sources_text(self._sources)]
        if self._after_merge is not None:
            regressed = error.state is State.REGRESSED
            said = "REGRESSED: the merged fix did not hold" if regressed else "After the merge"
            keys = "  (u revert · r retry · m mute)" if regressed else ""
            parts += [
                Text(f"\n{said}", style="bold red underline" if regressed else "bold underline")
                + Text(keys, style="dim"),
                after_merge_table(self._after_merge, self.app.current_theme.dark),
            ]
        if attempts or decisions:
            parts += [heading("Fix attempts and decisions"), history_table(attempts, decisions)]
        parts.append(heading(f"Latest samples ({len(samples)})"))
        parts += [sample_text(raw) for raw in samples] or [Text("—", style="dim")]
        return Group(*parts)

    # --- the answers to a regression: the same requests as the main screen's keys ---------

    def action_revert(self) -> None:
        self.post_message(requests.Revert(self.error))

    def action_retry(self) -> None:
        self.post_message(requests.Retry(self.error))

    def action_mute(self) -> None:
        self.post_message(requests.Mute(self.error))
