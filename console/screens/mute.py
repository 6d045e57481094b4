"""Ask how long to mute one error: a duration, a number of further occurrences, or both."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from console.mute import DurationError, MuteFor, parse_mute


class MuteScreen(ModalScreen[MuteFor | None]):
    """Dismisses with the mute asked for, or None when cancelled; text it cannot read
    keeps the dialog open and says how to write it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str) -> None:
        super().__init__(classes="dialog-screen")
        self._what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog mute") as box:
            box.border_title = "Mute the error"
            yield Static(Text(self._what, style="bold"))
            yield Static(
                Text("For how long, or how many more occurrences (whichever ends first)? "
                     "Enter mutes, escape cancels.", style="dim")
            )  # fmt: skip
            yield Input(placeholder="e.g. 30m, 2h, 50x or 2h or 50x", max_length=80, id="mute-for")
            yield Static("", id="mute-problem", classes="problem")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            chosen = parse_mute(event.value)
        except DurationError as exc:
            self.query_one("#mute-problem", Static).update(Text(str(exc), style="bold red"))
            return
        self.dismiss(chosen)

    def action_cancel(self) -> None:
        self.dismiss(None)
