"""The lifecycle's decisions (console/lifecycle/rules.py) on any times and counts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.wire import iso
from console.lifecycle.rules import (
    ESCALATE_BASELINE_MINUTES,
    ESCALATE_WINDOW_MINUTES,
    escalates,
    is_muted,
    is_regression,
    resolution,
    split_window,
)
from console.models import epoch

T0 = 1_800_000_000.0


def at(stamp: str) -> float:
    """A stamp's moment as the rules read it (stamps keep milliseconds)."""
    moment = epoch(stamp)
    assert moment is not None
    return moment


moments = st.floats(min_value=0, max_value=10 * 86400, allow_nan=False)
# What a foreign or broken agent may put where a stamp belongs.
junk = st.one_of(st.none(), st.text(max_size=30))


@given(occurred=moments, started=moments)
def test_an_occurrence_is_a_regression_exactly_when_it_is_not_before_the_start(
    occurred: float, started: float
) -> None:
    a, b = iso(T0 + occurred), iso(T0 + started)
    assert is_regression(a, b) is (at(a) >= at(b))


@given(stamp=junk, other=moments)
def test_an_unreadable_stamp_never_decides_a_regression(stamp: str | None, other: float) -> None:
    if epoch(stamp) is None:
        assert not is_regression(stamp, iso(T0 + other))
        assert not is_regression(iso(T0 + other), stamp)


def test_occurrences_before_the_restart_come_from_the_old_code() -> None:
    assert not is_regression(iso(T0 - 1), iso(T0))
    assert is_regression(iso(T0), iso(T0))
    assert not is_regression(iso(T0), None), "no start seen: the merged code may not run yet"


@given(
    started=moments,
    seen=st.one_of(st.none(), moments),
    elapsed=moments,
    after=st.floats(min_value=1, max_value=7200),
)
def test_resolution_counts_the_quiet_time_from_the_later_of_start_and_last_occurrence(
    started: float, seen: float | None, elapsed: float, after: float
) -> None:
    start_at, seen_at = iso(T0 + started), None if seen is None else iso(T0 + seen)
    since = max(at(start_at), at(seen_at)) if seen_at is not None else at(start_at)
    now = since + elapsed
    quiet = resolution(start_at, seen_at, now, after)
    assert quiet.due_at == since + after
    assert quiet.resolved is (now >= since + after)


@given(seen=st.one_of(st.none(), moments), now=moments)
def test_nothing_resolves_before_the_service_was_seen_starting(
    seen: float | None, now: float
) -> None:
    quiet = resolution(None, None if seen is None else iso(T0 + seen), T0 + now, 1)
    assert quiet == resolution(None, None, 0, 1) and not quiet.resolved and quiet.due_at is None


@given(
    recent=st.integers(min_value=0, max_value=10_000),
    baseline=st.integers(min_value=0, max_value=10_000),
    factor=st.floats(min_value=1, max_value=50),
)
def test_escalation_needs_factor_times_the_rate_and_at_least_factor_occurrences(
    recent: int, baseline: int, factor: float
) -> None:
    rate_recent = recent / ESCALATE_WINDOW_MINUTES
    rate_before = baseline / ESCALATE_BASELINE_MINUTES
    expected = recent >= factor and recent > 0 and rate_recent >= factor * rate_before
    assert escalates(recent, baseline, factor) is expected


def test_a_steady_error_never_escalates_and_a_burst_does() -> None:
    steady = [3] * (ESCALATE_WINDOW_MINUTES + ESCALATE_BASELINE_MINUTES)
    assert not escalates(*split_window(steady), factor=5)
    burst = [1] * ESCALATE_BASELINE_MINUTES + [20] * ESCALATE_WINDOW_MINUTES
    assert escalates(*split_window(burst), factor=5)
    assert not escalates(1, 0, 5), "one stray occurrence of a quiet error is not escalating"


@given(series=st.lists(st.integers(min_value=0, max_value=100), max_size=200))
def test_split_window_adds_up_the_two_windows(series: list[int]) -> None:
    recent, baseline = split_window(series)
    assert recent == sum(series[-ESCALATE_WINDOW_MINUTES:])
    assert recent + baseline <= sum(series)


@given(
    until=st.one_of(st.none(), moments),
    until_count=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
    count=st.integers(min_value=0, max_value=1000),
    now=moments,
)
def test_a_mute_holds_until_the_first_of_its_ends(
    until: float | None, until_count: int | None, count: int, now: float
) -> None:
    stamp = None if until is None else iso(T0 + until)
    by_time = None if stamp is None else at(stamp) > T0 + now
    by_count = None if until_count is None else count < until_count
    ends = [e for e in (by_time, by_count) if e is not None]
    expected = bool(ends) and all(ends)
    assert is_muted(stamp, until_count, count, T0 + now) is expected
