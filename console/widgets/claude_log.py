"""The Claude panel: one attempt's stream as readable lines, live and capped.

Each event of the CLI's stream becomes one line: the model's words, each tool call as what
it touches (Read file, Edit file +/-, Bash command and its exit code), and the closing result
with turns, duration and cost. Errors from the CLI are shown in its own words.

A tool call is shown once its outcome is known, so a call Claude Code refused is shown as
refused, with the rule or reason, and never as if it had happened; a command the sandbox
stopped part-way is shown with what the sandbox refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widgets import RichLog

from console.fix.claude import StreamEvent as ClaudeEvent
from console.fix.claude_state import ClaudeState
from console.fix.transcript import (
    AssistantText,
    Result,
    RoundStart,
    StreamParser,
    SystemInit,
    ToolResult,
    ToolUse,
    Unknown,
)
from console.models import AttemptRow, Denial, State
from console.widgets.fixed_scroll import InPlaceScroll
from console.widgets.labels import money

MAX_LINES = 1000
_EXIT = re.compile(r"Exit code (\d+)")
_TOOL_STYLE = {"Read": "cyan", "Edit": "yellow", "MultiEdit": "yellow", "Write": "yellow",
               "Bash": "magenta", "Glob": "blue", "Grep": "blue"}  # fmt: skip


class ClaudeFormatter:
    """Turns stream events into lines; holds each tool call until its result says how it went.

    ``denials`` are the attempt's stored refusals, for a transcript read back later; a live
    run reports each one as a :class:`Denial` event just before the result it explains.
    """

    def __init__(self, denials: Iterable[Denial] = ()) -> None:
        self._uses: dict[str, ToolUse] = {}
        self._denials = {d.tool_use_id: d for d in denials}

    def lines(self, event: ClaudeEvent) -> list[Text]:
        if isinstance(event, Denial):
            self._denials[event.tool_use_id] = event
            return []
        if isinstance(event, SystemInit):
            return [Text(f"▶ session {event.session_id[:8]} · {event.model}", style="dim")]
        if isinstance(event, AssistantText):
            if event.error:
                return [Text(f"✗ {event.error}: {event.text.strip()}", style="bold red")]
            return [Text(line) for line in event.text.strip().splitlines() if line.strip()]
        if isinstance(event, ToolUse):
            self._uses[event.id] = event
            return []
        if isinstance(event, ToolResult):
            return self._result_lines(event)
        if isinstance(event, Result):
            return [_final(event)]
        if isinstance(event, RoundStart):
            return [Text(event.text, style="bold yellow")]
        if isinstance(event, Unknown):
            return [Text(f"? {event.note or 'unrecognised line'}: {event.raw[:160]}", style="dim")]
        return []

    def _result_lines(self, event: ToolResult) -> list[Text]:
        use = self._uses.pop(event.tool_use_id, None)
        denial = self._denials.get(event.tool_use_id)
        if denial is not None and denial.kind != "sandbox":
            return [refused_line(denial, use)]
        lines = []
        if use is not None:
            line = Text("→ ", style="bold")
            line.append(use.summary, style=_TOOL_STYLE.get(use.name, ""))
            lines.append(line)
        first = next((ln for ln in event.content.splitlines() if ln.strip()), "")
        if use is not None and use.name == "Bash":
            match = _EXIT.search(event.content)
            code = int(match.group(1)) if match else (1 if event.is_error else 0)
            style = "green" if code == 0 else "bold red"
            lines.append(Text(f"  ⎿ exit {code}", style=style))
        elif event.is_error:
            lines.append(Text(f"  ⎿ ✗ {first[:200]}", style="red"))
        if denial is not None:
            lines.append(Text(f"  ⎿ ✗ blocked by the {denial.reason}", style="bold red"))
        return lines


def refused_line(denial: Denial, use: ToolUse | None = None) -> Text:
    """A refused call as one line: what was tried, on what, and which rule or reason."""
    line = Text("✗ refused ", style="bold red")
    line.append(use.summary if use is not None else f"{denial.tool} {denial.target}")
    line.append(f" — {denial.reason}", style="red")
    return line


def _final(result: Result) -> Text:
    seconds = (result.duration_ms or 0) / 1000
    facts = f"{result.num_turns or 0} turns · {seconds:.1f}s · {money(result.total_cost_usd)}"
    if result.ok:
        return Text(f"✓ done · {facts}", style="bold green")
    return Text(f"✗ {result.subtype}: {result.message} · {facts}", style="bold red")


def parse_transcript(lines: Iterable[str]) -> list[ClaudeEvent]:
    """Events of a stored transcript, for an attempt the panel did not watch live."""
    parser = StreamParser()
    events: list[ClaudeEvent] = []
    for line in lines:
        events.extend(parser.feed(line))
    return events


class ClaudeLog(InPlaceScroll, RichLog):
    """Shows one attempt at a time; lines of other attempts are ignored by the caller.

    Its size is the panel's (styles.tcss), so another attempt's history changes what it
    scrolls, not the screen's layout (:mod:`console.widgets.fixed_scroll`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=True, markup=False, **kwargs)
        self.attempt_id: int | None = None
        self._formatter = ClaudeFormatter()
        # Shown first whatever the attempt: why attempts cannot reach a model, if they can't.
        self.state: ClaudeState | None = None
        self._outcome_shown = False

    def show(
        self,
        attempt_id: int | None,
        events: Iterable[ClaudeEvent],
        note: str = "",
        denials: Iterable[Denial] = (),
    ) -> None:
        """Start over with an attempt's history (and its stored refusals)."""
        self.clear()
        self.attempt_id = attempt_id
        self._formatter = ClaudeFormatter(denials)
        self._outcome_shown = False
        lines: list[Text] = []
        if self.state is not None and not self.state.ready:
            style = "yellow" if self.state.kind == "scripted" else "bold red"
            lines.append(Text(self.state.text, style=style))
        if note:
            lines.append(Text(note, style="dim italic"))
        self._write_lines([*lines, *self._lines(events)])

    def add(self, events: Iterable[ClaudeEvent]) -> None:
        self._write_lines(self._lines(events))

    def _lines(self, events: Iterable[ClaudeEvent]) -> list[Text]:
        return [line for event in events for line in self._formatter.lines(event)]

    def _write_lines(self, lines: list[Text]) -> None:
        """All the lines in one write: each write resizes the log's scrollable area and
        scrolls to the end, so a history shown line by line cost one of each per line when
        the selection moved to another attempt."""
        if lines:
            self.write(lines[0] if len(lines) == 1 else Group(*lines))

    def outcome(self, attempt: AttemptRow) -> None:
        """Say once, below its stream, why the shown attempt failed."""
        if attempt.id != self.attempt_id or self._outcome_shown:
            return
        if attempt.state is State.FAILED:
            self._outcome_shown = True
            self.write(Text(f"✗ attempt failed: {attempt.reason or 'no reason given'}",
                            style="bold red"))  # fmt: skip

    def note(self, text: str, style: str = "dim") -> None:
        self.write(Text(text, style=style))
