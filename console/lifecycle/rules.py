"""The lifecycle's decisions as pure functions of times and counts, so they can be tested
on any input (tests/test_lifecycle_rules.py) and read in one place.

Times are ISO 8601 stamps as the wire and the store write them; one that cannot be read
(a foreign agent's) never decides anything. A host's own clock stamps both its
occurrences and its starts, so a regression compares those with each other; the quiet
time is counted on this machine's clock, from when the console received the start and
the error's last occurrence, so a host whose clock is off never holds a fix unresolved.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.models import epoch

# A skipped error is escalating when its last ESCALATE_WINDOW_MINUTES bring several times
# its rate of the ESCALATE_BASELINE_MINUTES before.
ESCALATE_WINDOW_MINUTES = 10
ESCALATE_BASELINE_MINUTES = 60


def is_regression(occurred_at: str | None, started_at: str | None) -> bool:
    """Whether an occurrence happened on the merged code: on a host that had started again
    after the merge (``started_at``, that host's first start since), at or after that start.

    Occurrences between the merge and the start come from the old code still running, so
    they are not a regression; with no start seen yet, nothing is.
    """
    occurred, started = epoch(occurred_at), epoch(started_at)
    return occurred is not None and started is not None and occurred >= started


@dataclass(frozen=True)
class Quiet:
    """Whether a merged fix counts as resolved now, and if not, from when it will."""

    resolved: bool
    # Epoch seconds when it resolves if nothing occurs meanwhile (None: no start seen yet).
    due_at: float | None


def resolution(
    started_at: str | None, last_seen: str | None, now: float, resolve_after_s: float
) -> Quiet:
    """A merged fix is resolved once the service was seen starting after the merge
    (``started_at``, when the console received that start) and the error then stayed away
    for ``resolve_after_s``: the quiet time runs from the later of that start and the
    error's last occurrence (``last_seen``, when the console received it)."""
    started = epoch(started_at)
    if started is None:
        return Quiet(False, None)
    seen = epoch(last_seen)
    since = started if seen is None else max(started, seen)
    due = since + resolve_after_s
    return Quiet(now >= due, due)


def escalates(recent: int, baseline: int, factor: float) -> bool:
    """Whether a skipped error came back at ``factor`` times its own recent rate.

    ``recent`` is its occurrences in the last ESCALATE_WINDOW_MINUTES, ``baseline`` in the
    ESCALATE_BASELINE_MINUTES before. It takes at least ``factor`` occurrences (rounded
    up), so a single stray one of a long-quiet error never escalates it.
    """
    if recent <= 0 or recent < factor:
        return False
    recent_rate = recent / ESCALATE_WINDOW_MINUTES
    baseline_rate = max(0, baseline) / ESCALATE_BASELINE_MINUTES
    return recent_rate >= factor * baseline_rate


def split_window(per_minute: list[int]) -> tuple[int, int]:
    """(recent, baseline) occurrence counts from a per-minute series, oldest minute first,
    as :meth:`console.store.Store.occurrences_per_minute` gives it."""
    recent = sum(per_minute[-ESCALATE_WINDOW_MINUTES:])
    baseline = sum(per_minute[:-ESCALATE_WINDOW_MINUTES][-ESCALATE_BASELINE_MINUTES:])
    return recent, baseline


def is_muted(until: str | None, until_count: int | None, count: int, now: float) -> bool:
    """Whether a per-error mute still holds: before ``until`` (a stamp), and/or while the
    error's count is below ``until_count``; a mute with both ends holds until either."""
    if until is None and until_count is None:
        return False
    holds_time = until is not None and (epoch(until) or 0.0) > now
    holds_count = until_count is not None and count < until_count
    if until is not None and until_count is not None:
        return holds_time and holds_count
    return holds_time or holds_count
