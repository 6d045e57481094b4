"""The History screen's figures and tables, as Rich renderables of a :class:`History`.

The words for each figure (a rate, a median, a cost) come from :mod:`console.history_text`,
which the Telegram summary uses too.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from console.history import History, Rate
from console.history_text import figures, percent


def figures_table(history: History) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", justify="right")
    table.add_column()
    for name, value in figures(history):
        table.add_row(name, Text(value, style="bold red" if name == "regressions" and
                                 history.regressions else "bold"))  # fmt: skip
    return table


def rates_table(title: str, column: str, rates: list[Rate]) -> Table:
    """Success rate per group (``column`` names what a group is): attempts, fixes, rate."""
    table = Table(title=title, title_justify="left", expand=True, box=None, padding=(0, 1))
    table.add_column(column, ratio=2, no_wrap=True, overflow="ellipsis")
    table.add_column("tries", justify="right")
    table.add_column("fixed", justify="right")
    table.add_column("rate", justify="right")
    for rate in rates:
        table.add_row(rate.name, f"{rate.attempts:,}", f"{rate.fixed:,}", percent(rate.rate))
    if not rates:
        table.add_row(Text("no attempts", style="dim"), "", "", "")
    return table


def recurring_table(history: History) -> Table:
    """The errors that occurred most in the period."""
    table = Table(title="Most recurring", title_justify="left", expand=True, box=None,
                  padding=(0, 1))  # fmt: skip
    table.add_column("error", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("seen", justify="right")
    table.add_column("tries", justify="right")
    table.add_column("back", justify="right")
    for row in history.recurring:
        name = Text(f"[{row.service}] ", style="bold")
        name.append(f"{row.error_type}: {' '.join(row.message.split())}")
        back = Text(str(row.regressions), style="bold red") if row.regressions else Text("0")
        table.add_row(name, f"{row.occurrences:,}", str(row.attempts), back)
    if not history.recurring:
        table.add_row(Text("no occurrences", style="dim"), "", "", "")
    return table
