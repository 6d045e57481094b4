"""Occurrences of the selected error over the last hour, one bar a minute."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static


class ErrorSparkline(Horizontal):
    """A label with the hour's total beside a one-line sparkline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buckets: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static("", classes="spark-label")
        yield Sparkline([], summary_function=max, classes="spark-bars")

    def show(self, buckets: list[int] | None) -> None:
        self.buckets = list(buckets or [])
        label = self.query_one(".spark-label", Static)
        bars = self.query_one(".spark-bars", Sparkline)
        if buckets is None:
            label.update(Text("last hour: —", style="dim"))
            bars.data = []
            return
        total = sum(self.buckets)
        label.update(Text.assemble(("last hour ", "dim"), (f"{total:,}", "bold"), (" ", "")))
        bars.data = [float(b) for b in self.buckets] if total else []
