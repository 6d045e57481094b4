"""The diff of a fix attempt: file list with +/- counts, highlighted diff, tests beside it.

Paths matching the service's sensitive globs are flagged in the file list and the summary,
so a change to a lockfile or a secrets file is never approved by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import RenderableType
from rich.measure import measure_renderables
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.fix.diffstat import FileStat
from console.fix.paths import touched_sensitive
from console.models import AttemptRow
from console.widgets.fixed_scroll import InPlaceScroll

MAX_DIFF_LINES = 5000


@dataclass(frozen=True)
class DiffFile:
    path: str
    added: int
    removed: int
    binary: bool
    line: int  # where its section starts in the diff text
    sensitive: bool


def diff_files(attempt: AttemptRow, sensitive_paths: tuple[str, ...]) -> list[DiffFile]:
    """The attempt's files in diff order, each with where it starts and whether it is sensitive."""
    text = attempt.diff or ""
    starts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines()):
        if line.startswith("diff --git "):
            path = line.rsplit(" b/", 1)[-1]
            starts.setdefault(path, number)
    stats = list(attempt.diff_stat) or [FileStat(path, 0, 0) for path in starts]
    flagged = set(touched_sensitive(stats, sensitive_paths))
    return [
        DiffFile(s.path, s.added, s.removed, s.binary, starts.get(s.path, 0), s.path in flagged)
        for s in stats
    ]


def summary_text(attempt: AttemptRow, files: list[DiffFile]) -> Text:
    """Tests, size and warnings in two lines: what a reviewer checks before reading code."""
    text = Text()
    if attempt.test_exit_code is None:
        text.append("tests: not run", style="dim")
    elif attempt.test_exit_code == 0:
        text.append("✓ tests passed", style="bold green")
    else:
        text.append(f"✗ tests failed (exit {attempt.test_exit_code})", style="bold red")
    added = sum(f.added for f in files)
    removed = sum(f.removed for f in files)
    text.append(f"  ·  {len(files)} file(s) ")
    text.append(f"+{added}", style="green")
    text.append(" ")
    text.append(f"-{removed}", style="red")
    if attempt.branch:
        text.append(f"  ·  {attempt.branch}", style="dim")
    sensitive = [f.path for f in files if f.sensitive]
    if sensitive:
        text.append(f"\n⚠ touches sensitive paths: {', '.join(sensitive)}", style="bold red")
    if attempt.reason:
        text.append(f"\n{attempt.reason}", style="italic")
    return text


def file_label(file: DiffFile) -> Text:
    label = Text()
    if file.sensitive:
        label.append("⚠ ", style="bold red")
    label.append(file.path, style="bold red" if file.sensitive else "")
    if file.binary:
        label.append(" binary", style="dim")
    else:
        label.append(f" +{file.added}", style="green")
        label.append(f" -{file.removed}", style="red")
    return label


class DiffText(InPlaceScroll, ScrollView):
    """The diff itself, rendered once into lines and scrolled as lines (the line API).

    It was a Static as wide as its text in a scrolling container: each diff shown sized the
    Static again, which laid the screen out, and the container's scrollbars following it
    laid it out once more; a key press that moved to another attempt paid for both. Here
    its size is the pane's, and another diff changes what it scrolls
    (:mod:`console.widgets.fixed_scroll`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lines: list[Strip] = []

    def show(self, content: RenderableType) -> None:
        """Render ``content`` at its own width (wider than the pane scrolls sideways)."""
        console = self.app.console
        width = max(1, measure_renderables(console, console.options, [content]).maximum)
        lines = console.render_lines(content, console.options.update_width(width), pad=False)
        self._lines = [Strip(line).adjust_cell_length(width) for line in lines]
        self.virtual_size = Size(width, len(self._lines))
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    @property
    def text(self) -> str:
        """What the pane shows, as plain text."""
        return "\n".join(strip.text.rstrip() for strip in self._lines)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        style = self.rich_style
        index = scroll_y + y
        if not 0 <= index < len(self._lines):
            return Strip.blank(width, style)
        return self._lines[index].crop_extend(scroll_x, scroll_x + width, style).apply_style(style)


class DiffView(Widget):
    """Summary on top, then the file list beside the highlighted diff."""

    class FileChosen(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attempt: AttemptRow | None = None
        self.files: list[DiffFile] = []
        self.file_index = 0
        self._sensitive: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(Text("no fix attempt selected", style="dim"), classes="diff-summary")
        with Horizontal(classes="diff-split"):
            yield OptionList(classes="diff-files")
            yield DiffText(classes="diff-body")

    def show(self, attempt: AttemptRow | None, sensitive_paths: tuple[str, ...] = ()) -> None:
        """Render an attempt; unchanged input is a no-op so live refreshes do not scroll."""
        if attempt == self.attempt and sensitive_paths == self._sensitive:
            return
        same_diff = (
            self.attempt is not None
            and attempt is not None
            and self.attempt.id == attempt.id
            and self.attempt.diff == attempt.diff
        )
        self.attempt = attempt
        self._sensitive = sensitive_paths
        summary = self.query_one(".diff-summary", Static)
        files_list = self.query_one(".diff-files", OptionList)
        body = self.query_one(DiffText)
        if attempt is None:
            self.files = []
            summary.update(Text("no fix attempt for this error yet", style="dim"))
            files_list.clear_options()
            body.show("")
            return
        self.files = diff_files(attempt, sensitive_paths)
        summary.update(summary_text(attempt, self.files))
        if same_diff:
            return
        files_list.clear_options()
        files_list.add_options([Option(file_label(f)) for f in self.files])
        self.file_index = 0
        if not attempt.diff:
            body.show(Text("(no diff yet)", style="dim"))
            return
        lines = attempt.diff.splitlines()
        shown = "\n".join(lines[:MAX_DIFF_LINES])
        if len(lines) > MAX_DIFF_LINES:
            shown += f"\n… {len(lines) - MAX_DIFF_LINES} more lines (open the worktree to read)"
        theme = "ansi_dark" if self.app.current_theme.dark else "ansi_light"
        body.show(Syntax(shown, "diff", theme=theme, background_color="default"))

    def go_to_file(self, index: int) -> None:
        """Scroll the diff to a file's section (n/p in review, or a click in the list)."""
        if not self.files:
            return
        self.file_index = index % len(self.files)
        self.query_one(".diff-files", OptionList).highlighted = self.file_index
        target = self.files[self.file_index].line
        self.query_one(DiffText).scroll_to(y=target, animate=False)

    def next_file(self) -> None:
        self.go_to_file(self.file_index + 1)

    def previous_file(self) -> None:
        self.go_to_file(self.file_index - 1)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.go_to_file(event.option_index)
