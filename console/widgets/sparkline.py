"""Occurrences of the selected error over the last hour, one bar a minute."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

LABEL_MIN_WIDTH = 16  # the label's min-width in styles.tcss


class ErrorSparkline(Horizontal):
    """A label with the hour's total beside a one-line sparkline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buckets: list[int] = []
        self._label_width = 0

    def compose(self) -> ComposeResult:
        yield Static("", classes="spark-label")
        yield Sparkline([], summary_function=max, classes="spark-bars")

    def show(self, buckets: list[int] | None) -> None:
        self.buckets = list(buckets or [])
        bars = self.query_one(".spark-bars", Sparkline)
        if buckets is None:
            self._label(Text("last hour: —", style="dim"))
            bars.data = []
            return
        total = sum(self.buckets)
        self._label(Text.assemble(("last hour ", "dim"), (f"{total:,}", "bold"), (" ", "")))
        bars.data = [float(b) for b in self.buckets] if total else []

    def _label(self, text: Text) -> None:
        """Each key press shows another error's hour: lay the screen out again (every
        scrollbar redrawn, tens of milliseconds) only when the label's width changes."""
        label = self.query_one(".spark-label", Static)
        width = max(LABEL_MIN_WIDTH, text.cell_len)
        label.update(text, layout=width != self._label_width)
        self._label_width = width
