"""The error detail screen: everything known about one error, for deciding what to do.

Full stack with the application's own frames highlighted (library and runtime frames dimmed),
route, first and last seen, per-host counts, the latest raw samples as relayed (already
redacted by the agent), the fix attempts and who decided what.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.fix.frames import FramePosition
from console.models import AttemptRow, DecisionRow, ErrorRow, attempt_name
from console.screens.background import run_guarded
from console.screens.data import ScreenData
from console.widgets.labels import age, money, severity_text, state_text

SAMPLES = 3


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


class DetailScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.pop_screen", "Back")]

    def __init__(self, error: ErrorRow, data: ScreenData, clock: Callable[[], float]) -> None:
        super().__init__()
        self.error = error
        self._data = data
        self._clock = clock
        self._sources: list[FramePosition] = []

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
        if attempts or decisions:
            parts += [heading("Fix attempts and decisions"), history_table(attempts, decisions)]
        parts.append(heading(f"Latest samples ({len(samples)})"))
        parts += [sample_text(raw) for raw in samples] or [Text("—", style="dim")]
        return Group(*parts)
