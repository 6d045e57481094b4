"""The History screen's charts, drawn in the terminal with plotext (textual-plotext).

Each chart is handed a :class:`~console.history.History` and redraws from it alone, so a new
filter or a fresh read is one ``show`` call. The plot's colours follow the app's theme.
"""

from __future__ import annotations

from typing import Any

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from console.history import History, Outcome

# Outcome colours, stacked bottom to top in this order (plotext's named colours).
OUTCOME_COLORS: dict[Outcome, str] = {
    Outcome.FIXED: "green",
    Outcome.FAILED: "red",
    Outcome.SKIPPED: "gray",
    Outcome.INTERRUPTED: "orange",
    Outcome.OPEN: "cyan",
}


def axis_labels(labels: list[str], width: int) -> tuple[list[float], list[str]]:
    """Every n-th slice's label, so that the labels never run into each other on a chart
    ``width`` cells wide (plotext would write them over one another)."""
    if not labels:
        return [], []
    room = max(1, width // (max(len(label) for label in labels) + 2))
    step = max(1, -(-len(labels) // room))
    picked = list(range(0, len(labels), step))
    return [float(i + 1) for i in picked], [labels[i] for i in picked]


class HistoryChart(PlotextPlot):
    """A chart of one History; subclasses say what to draw of it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._history: History | None = None

    def show(self, history: History) -> None:
        self._history = history
        self.refresh()

    def render(self) -> RenderResult:
        self.plt.clear_figure()
        if self._history is not None:
            self.draw(self._history)
            labels = [b.label for b in self._history.buckets]
            self.plt.xticks(*axis_labels(labels, self.size.width))
        return super().render()

    def draw(self, history: History) -> None:
        raise NotImplementedError


class OutcomesChart(HistoryChart):
    """Attempts per slice of the period, stacked by outcome."""

    def draw(self, history: History) -> None:
        positions = list(range(1, len(history.buckets) + 1))
        present = [o for o in OUTCOME_COLORS if history.outcomes.get(o)]
        if present:
            # textual-plotext's stub names plotext's ``labels`` keyword ``label`` and takes
            # one colour only; plotext itself takes a label and a colour per series.
            stacked_bar: Any = self.plt.stacked_bar
            stacked_bar(
                positions,
                [[b.outcomes.get(o, 0) for b in history.buckets] for o in present],
                labels=[o.value for o in present],
                color=[OUTCOME_COLORS[o] for o in present],
                width=0.8,
            )
        self.plt.title(f"Attempts per {'hour' if history.query.days == 1 else 'day'}")


class CostChart(HistoryChart):
    """What Claude cost per slice of the period, in US dollars."""

    def draw(self, history: History) -> None:
        positions = list(range(1, len(history.buckets) + 1))
        costs = [round(b.cost_usd, 4) for b in history.buckets]
        self.plt.bar(positions, costs, color="blue", width=0.8)
        self.plt.title("Claude cost per day (USD)" if history.query.days > 1 else
                       "Claude cost per hour (USD)")  # fmt: skip
