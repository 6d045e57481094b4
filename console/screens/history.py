"""The History screen: what the product did over a period, for one service or all.

Headline figures (attempts, fixes, success rate, median time from first sight to PR and to
merge, cost per fix and per day, regressions), two charts (attempts per slice by outcome,
cost per slice), the success rate by service and by severity, and the errors that recur
most. A service and a period filter it. It reads through :class:`ScreenData` like every
screen, and re-reads every ``REFRESH_SECONDS`` while it is open.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Select, Static

from console.history import DEFAULT_PERIOD, PERIODS, History, HistoryQuery
from console.screens.background import run_guarded
from console.screens.data import ScreenData
from console.widgets.history_charts import CostChart, OutcomesChart
from console.widgets.history_tables import figures_table, rates_table, recurring_table

REFRESH_SECONDS = 30.0
ALL_SERVICES = ""  # the service filter's value for every service


class HistoryScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back"),
        Binding("p", "next_period", "Period"),
    ]

    def __init__(
        self, data: ScreenData, clock: Callable[[], float], period: str = DEFAULT_PERIOD
    ) -> None:
        super().__init__()
        self._data = data
        self._clock = clock
        self.query_shown = HistoryQuery(period)
        self.history: History | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="history-filters"):
            yield Static("History", id="history-title")
            yield Select(
                [("All services", ALL_SERVICES)],
                value=ALL_SERVICES,
                allow_blank=False,
                id="history-service",
            )
            yield Select(
                [(f"last {name}", name) for name in PERIODS],
                value=self.query_shown.period,
                allow_blank=False,
                id="history-period",
            )
        with VerticalScroll(id="history-body"):
            with Horizontal(id="history-top"):
                yield Static(id="history-figures")
                yield OutcomesChart(id="history-outcomes")
            with Horizontal(id="history-bottom"):
                with Vertical(id="history-rates"):
                    yield Static(id="history-by-service")
                    yield Static(id="history-by-severity")
                yield CostChart(id="history-cost")
                yield Static(id="history-recurring")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(REFRESH_SECONDS, self.reload)

    def reload(self) -> None:
        run_guarded(self, self._load, what="reading the history", group="history",
                    exclusive=True)  # fmt: skip

    async def _load(self) -> None:
        query = self.query_shown
        history = await self._data.history(query, self._clock())
        if query != self.query_shown:
            return  # the filter changed while reading; its own read is under way
        self.show(history)

    def show(self, history: History) -> None:
        self.history = history
        services = self.query_one("#history-service", Select)
        options = [("All services", ALL_SERVICES)] + [(s, s) for s in history.services]
        if history.query.service and history.query.service not in history.services:
            options.append((history.query.service, history.query.service))
        with self.prevent(Select.Changed):
            services.set_options(options)
            services.value = history.query.service or ALL_SERVICES
        self.query_one("#history-figures", Static).update(figures_table(history))
        self.query_one(OutcomesChart).show(history)
        self.query_one(CostChart).show(history)
        self.query_one("#history-by-service", Static).update(
            rates_table("By service", "service", history.by_service)
        )
        self.query_one("#history-by-severity", Static).update(
            rates_table("By severity", "severity", history.by_severity)
        )
        self.query_one("#history-recurring", Static).update(recurring_table(history))

    # --- filters ---------------------------------------------------------------------------

    @on(Select.Changed, "#history-service")
    def _service_changed(self, event: Select.Changed) -> None:
        service = str(event.value) if event.value != ALL_SERVICES else None
        self._filter(HistoryQuery(self.query_shown.period, service))

    @on(Select.Changed, "#history-period")
    def _period_changed(self, event: Select.Changed) -> None:
        self._filter(HistoryQuery(str(event.value), self.query_shown.service))

    def action_next_period(self) -> None:
        names = list(PERIODS)
        following = names[(names.index(self.query_shown.period) + 1) % len(names)]
        self.query_one("#history-period", Select).value = following

    def _filter(self, query: HistoryQuery) -> None:
        if query != self.query_shown:
            self.query_shown = query
            self.reload()
