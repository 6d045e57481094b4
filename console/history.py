"""What the product did over a period: the figures the History screen and Telegram show.

The store computes them (:mod:`console.store.history`); these dataclasses are what crosses
into the views, which never see a database row. Outcomes are named here once, from the
states an attempt or an error ends in, so a state added later (a merge, a regression)
falls into the outcome it means without the views changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """What became of one fix attempt."""

    FIXED = "fixed"  # its branch was pushed or its PR opened (and later merged)
    FAILED = "failed"  # Claude, the verdict or the caged tests said no
    SKIPPED = "skipped"  # a person discarded the diff, or a retry replaced it
    INTERRUPTED = "interrupted"  # the console stopped during it
    OPEN = "open"  # still running or waiting in review


# Attempt (and error) states by outcome. The states after the PR are spelled as text, not
# as console.models.State members: the store may hold them before this version knows them.
OUTCOME_STATES: dict[Outcome, frozenset[str]] = {
    Outcome.FIXED: frozenset({"pushed", "pr_opened", "merged", "resolved", "regressed"}),
    Outcome.FAILED: frozenset({"failed"}),
    Outcome.SKIPPED: frozenset({"skipped"}),
    Outcome.INTERRUPTED: frozenset({"interrupted"}),
    Outcome.OPEN: frozenset({"fixing", "testing", "review"}),
}
_OUTCOME_OF = {state: outcome for outcome, states in OUTCOME_STATES.items() for state in states}
# Outcomes a success rate is taken over: every attempt that is over.
DECIDED = (Outcome.FIXED, Outcome.FAILED, Outcome.SKIPPED, Outcome.INTERRUPTED)

# The periods a person can pick, by name, in days; the default is the first month.
PERIODS: dict[str, int] = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
DEFAULT_PERIOD = "30d"


def outcome_of(state: str) -> Outcome:
    """The outcome an attempt in ``state`` stands for; a state this version does not know
    counts as open rather than as a success or a failure it may not be."""
    return _OUTCOME_OF.get(state, Outcome.OPEN)


@dataclass(frozen=True)
class HistoryQuery:
    """Which part of the history to read: a period ending now, optionally one service."""

    period: str = DEFAULT_PERIOD
    service: str | None = None

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"unknown period {self.period!r}; one of {', '.join(PERIODS)}")

    @property
    def days(self) -> int:
        return PERIODS[self.period]


@dataclass(frozen=True)
class Bucket:
    """Attempts started in one slice of the period (an hour for 24h, else a UTC day)."""

    start: str  # ISO 8601 UTC, the slice's first instant
    label: str  # what a chart's axis says: "14:00" or "01-15"
    outcomes: dict[Outcome, int]
    cost_usd: float

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class Rate:
    """How often attempts for one group (a service, a severity) ended in a fix."""

    name: str
    attempts: int  # every attempt started in the period, open ones included
    decided: int  # those that are over
    fixed: int

    @property
    def rate(self) -> float | None:
        """Fixed over decided; None before any attempt is over."""
        return self.fixed / self.decided if self.decided else None


@dataclass(frozen=True)
class Recurring:
    """An error by how often it occurred in the period."""

    error_id: int
    service: str
    fingerprint: str
    error_type: str
    message: str
    state: str
    occurrences: int  # occurrences in the period, summed over hosts
    attempts: int  # fix attempts started for it in the period
    regressions: int  # times it came back after it was resolved, in the period


@dataclass(frozen=True)
class History:
    """The figures of one :class:`HistoryQuery`, as of ``now``."""

    query: HistoryQuery
    start: str  # ISO 8601 UTC: the period's first instant
    end: str
    services: list[str]  # every service the store knows, for the filter
    buckets: list[Bucket]
    outcomes: dict[Outcome, int]
    by_service: list[Rate]
    by_severity: list[Rate]
    # Medians over the errors that reached the step in the period, from their first sight.
    median_to_pr_seconds: float | None
    prs: int
    median_to_merge_seconds: float | None
    merges: int
    cost_usd: float
    regressions: int
    recurring: list[Recurring] = field(default_factory=list)
    auto_merges: int = 0  # PRs auto-merge squash-merged in the period
    reverts: int = 0  # revert PRs opened in the period (by a person or by auto-merge)

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())

    @property
    def fixed(self) -> int:
        return self.outcomes.get(Outcome.FIXED, 0)

    @property
    def decided(self) -> int:
        return sum(self.outcomes.get(o, 0) for o in DECIDED)

    @property
    def rate(self) -> float | None:
        """Fixed over decided; None before any attempt is over."""
        return self.fixed / self.decided if self.decided else None

    @property
    def cost_per_fix(self) -> float | None:
        return self.cost_usd / self.fixed if self.fixed else None

    @property
    def cost_per_day(self) -> float:
        return self.cost_usd / self.query.days
