"""Ask for an optional extra instruction before retrying a fix (it is added to the prompt)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

MAX_INSTRUCTION_CHARS = 2000


class RetryScreen(ModalScreen[str | None]):
    """Dismisses with the instruction ("" for none), or None when the retry is cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str) -> None:
        super().__init__(classes="dialog-screen")
        self._what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog retry") as box:
            box.border_title = "Retry the fix"
            yield Static(Text(self._what, style="bold"))
            yield Static(
                Text("Extra instruction for Claude (optional), enter to retry, escape to cancel:",
                     style="dim")
            )  # fmt: skip
            yield Input(
                placeholder="e.g. keep the public API unchanged",
                max_length=MAX_INSTRUCTION_CHARS,
                id="instruction",
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
