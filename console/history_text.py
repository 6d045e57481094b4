"""The words for a period's figures, shared by the History screen and Telegram's summary,
so both say the same thing about the same period."""

from __future__ import annotations

from console.history import History, Rate
from console.widgets.labels import duration, money


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


def figures(history: History) -> list[tuple[str, str]]:
    """The headline figures of a period, as (name, value) pairs in reading order."""
    return [
        ("attempts", f"{history.attempts:,}"),
        ("fixed", f"{history.fixed:,} of {history.decided:,} decided ({percent(history.rate)})"),
        ("first seen → PR",
         f"{duration(history.median_to_pr_seconds)} median, {history.prs:,} PRs"),
        ("first seen → merge",
         f"{duration(history.median_to_merge_seconds)} median, {history.merges:,} merged"
         + (f" ({history.auto_merges:,} by auto-merge)" if history.auto_merges else "")),
        ("cost", f"{money(history.cost_usd)} ({money(history.cost_per_day)}/day)"),
        ("cost per fix", money(history.cost_per_fix)),
        ("regressions",
         f"{history.regressions:,}"
         + (f", {history.reverts:,} reverted" if history.reverts else "")),
    ]  # fmt: skip


def rate_words(rate: Rate) -> str:
    """One group's success in a line: ``PA 16/28 fixed (62%)``."""
    return f"{rate.name} {rate.fixed}/{rate.attempts} fixed ({percent(rate.rate)})"
