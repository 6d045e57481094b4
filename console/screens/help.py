"""The `?` screen: every key, grouped the way people look for them."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Errors", (
        ("a", "approve: start a fix, or open the PR of a reviewed diff (asks first)"),
        ("s", "skip the error (discards its fix)"),
        ("r", "retry the fix, with an optional extra instruction"),
        ("d", "review the diff full screen"),
        ("v", "Claude or Diff panel, on a terminal too narrow for both"),
        ("enter", "error detail: stack, hosts, samples, history"),
        ("o", "open the pull request in the browser"),
        ("x", "stop an auto-merge during its soak, or resume a paused service's"),
        ("u", "revert a regressed error's merged fix: opens a revert PR (asks first)"),
        ("m", "mute an error for a while or N more occurrences; again to unmute"),
        ("h", "history: attempts, outcomes, costs, regressions over time (p: period)"),
        ("/", "filter errors (escape clears)"),
        ("S", "cycle the sort column (or click a header)"),
    )),
    ("Review", (
        ("n / p", "next / previous file"),
        ("a  s  r", "approve (push and open the PR), skip, retry"),
        ("x", "stop the auto-merge (every gate is listed above the diff)"),
        ("escape", "back"),
    )),
    ("Everywhere", (
        ("tab", "next panel"),
        ("t", "Telegram on / off"),
        ("R", "reload the config (a raised daily budget lets waiting fixes start)"),
        ("ctrl+p", "command palette (themes too)"),
        ("?", "this help"),
        ("q", "quit (asks while a fix is running)"),
    )),
)  # fmt: skip


def keys_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", justify="right")
    table.add_column()
    for group, rows in KEYS:
        table.add_row(Text(group, style="bold underline"), "")
        for key, what in rows:
            table.add_row(key, what)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close"),
        Binding("q", "dismiss", "Close"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help") as box:
            box.border_title = "Keys"
            box.border_subtitle = "↑↓ scroll · escape, ? or q closes"
            with VerticalScroll(classes="dialog-body"):
                yield Static(keys_table())
