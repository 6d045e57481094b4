"""History queries: what the product did over a period, as :class:`console.history.History`.

Every figure comes from rows the flow already writes, so the history needs no table of its
own: attempts (state, start, cost), the decision log (when an error was pushed, got its PR,
was merged -- on GitHub or by auto-merge -- or regressed), the PRs (revert PRs too), and
the occurrences' running totals.
Each query is one grouped pass over its table and the work in Python is over the grouped
rows only: a month of 30,000 attempts and decisions and 60,000 occurrences reads in about
a second for any period on a machine loaded five times over its cores.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.wire import SEVERITIES, iso
from console.automerge.plan import MERGED_ACTION
from console.history import Bucket, History, HistoryQuery, Outcome, Rate, Recurring, outcome_of
from console.models import epoch
from console.store.backend import Tx

RECURRING_LIMIT = 10
# Decision states that mark an error's way to a fix, as the decision log spells them.
PUBLISHED_STATES = ("pushed", "pr_opened")
MERGED_STATE = "merged"
REGRESSED_STATE = "regressed"


def slots(query: HistoryQuery, now: float) -> list[datetime]:
    """The starts of the period's slices, oldest first: the last 24 hours by the hour, or
    the last ``days`` UTC days (today included). The period starts at the first."""
    moment = datetime.fromtimestamp(now, UTC)
    if query.days == 1:
        top = moment.replace(minute=0, second=0, microsecond=0)
        return [top - timedelta(hours=23 - i) for i in range(24)]
    today = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=query.days - 1 - i) for i in range(query.days)]


def _slot_key(hourly: bool, moment: datetime) -> str:
    """How a slice's start reads as a prefix of the store's ISO stamps."""
    return moment.strftime("%Y-%m-%dT%H" if hourly else "%Y-%m-%d")


def _service_clause(query: HistoryQuery, alias: str = "e") -> tuple[str, list[Any]]:
    if query.service is None:
        return "", []
    return f" AND {alias}.service = ?", [query.service]


async def read_history(tx: Tx, query: HistoryQuery, now: float) -> History:
    """The figures for ``query`` as of ``now`` (epoch seconds), read through ``tx``."""
    starts = slots(query, now)
    hourly = query.days == 1
    start = iso(starts[0].timestamp())
    services = [r[0] for r in await tx.fetch("SELECT DISTINCT service FROM errors ORDER BY 1", ())]
    outcomes, by_slot, by_service, by_severity = await _attempts(tx, query, start, hourly)
    buckets = [
        Bucket(
            start=iso(moment.timestamp()),
            label=moment.strftime("%H:00" if hourly else "%m-%d"),
            outcomes=dict(by_slot[_slot_key(hourly, moment)][0]),
            cost_usd=by_slot[_slot_key(hourly, moment)][1],
        )
        for moment in starts
    ]
    to_pr = await _times_to(tx, query, start, PUBLISHED_STATES)
    to_merge = await _times_to(tx, query, start, (MERGED_STATE,), (MERGED_ACTION,))
    regressions = await _regressions(tx, query, start)
    return History(
        query=query,
        start=start,
        end=iso(now),
        services=services,
        buckets=buckets,
        outcomes=dict(outcomes),
        by_service=_rates(by_service, sorted(by_service)),
        by_severity=_rates(by_severity, [s for s in reversed(SEVERITIES) if s in by_severity]),
        median_to_pr_seconds=statistics.median(to_pr) if to_pr else None,
        prs=len(to_pr),
        median_to_merge_seconds=statistics.median(to_merge) if to_merge else None,
        merges=len(to_merge),
        cost_usd=sum(cost for _, cost in by_slot.values()),
        regressions=sum(regressions.values()),
        recurring=await _recurring(tx, query, start, regressions),
        auto_merges=await _auto_merges(tx, query, start),
        reverts=await _reverts(tx, query, start),
    )


Tally = Counter[Outcome]


async def _attempts(
    tx: Tx, query: HistoryQuery, start: str, hourly: bool
) -> tuple[Tally, dict[str, tuple[Tally, float]], dict[str, Tally], dict[str, Tally]]:
    """One grouped pass over the period's attempts: outcomes overall, per slice (with the
    slice's cost), per service and per severity."""
    where, params = _service_clause(query)
    rows = await tx.fetch(
        f"SELECT substr(a.started_at, 1, {13 if hourly else 10}) AS slot, a.state, "
        "e.service, e.severity, COUNT(*), COALESCE(SUM(a.claude_cost_usd), 0) "
        "FROM attempts a JOIN errors e ON e.id = a.error_id "
        f"WHERE a.started_at >= ?{where} GROUP BY slot, a.state, e.service, e.severity",
        [start, *params],
    )
    total: Tally = Counter()
    slot_counts: dict[str, Tally] = defaultdict(Counter)
    slot_costs: dict[str, float] = defaultdict(float)
    services: dict[str, Tally] = defaultdict(Counter)
    severities: dict[str, Tally] = defaultdict(Counter)
    for slot, state, service, severity, count, cost in rows:
        outcome = outcome_of(state)
        total[outcome] += count
        slot_counts[slot][outcome] += count
        slot_costs[slot] += float(cost)
        services[service][outcome] += count
        severities[severity][outcome] += count
    by_slot = defaultdict(
        lambda: (Counter(), 0.0),
        {slot: (slot_counts[slot], slot_costs[slot]) for slot in slot_counts},
    )
    return total, by_slot, services, severities


def _rates(tallies: dict[str, Tally], order: list[str]) -> list[Rate]:
    return [
        Rate(
            name=name,
            attempts=sum(tallies[name].values()),
            decided=sum(n for o, n in tallies[name].items() if o is not Outcome.OPEN),
            fixed=tallies[name][Outcome.FIXED],
        )
        for name in order
    ]


async def _times_to(
    tx: Tx,
    query: HistoryQuery,
    start: str,
    states: tuple[str, ...],
    actions: tuple[str, ...] = (),
) -> list[float]:
    """Seconds from each error's first sight to the first time it reached one of ``states``
    (or a decision named one of ``actions``: an auto-merge leaves the state as it was), for
    the errors that first reached it within the period. A PR recorded without a decision
    (an older console) counts by the PR's own time."""
    where, params = _service_clause(query)
    marks = ", ".join("?" * len(states))
    named = f" OR action IN ({', '.join('?' * len(actions))})" if actions else ""
    prs = (
        " UNION ALL SELECT a.error_id, p.created_at FROM prs p "
        "JOIN attempts a ON a.id = p.attempt_id"
        if "pr_opened" in states
        else ""
    )
    rows = await tx.fetch(
        "SELECT e.first_seen, MIN(r.at) AS reached FROM ("
        f"SELECT error_id, at FROM decisions WHERE to_state IN ({marks}){named}{prs}"
        f") r JOIN errors e ON e.id = r.error_id WHERE 1 = 1{where} "
        "GROUP BY e.id HAVING MIN(r.at) >= ?",
        [*states, *actions, *params, start],
    )
    seconds = []
    for first_seen, reached in rows:
        begin, end = epoch(first_seen), epoch(reached)
        if begin is not None and end is not None:
            seconds.append(max(0.0, end - begin))
    return seconds


async def _regressions(tx: Tx, query: HistoryQuery, start: str) -> dict[int, int]:
    """Per error, how often it regressed in the period: the moves into regressed, not the
    decisions taken while it was (a pause, a revert PR), which record it as both ends."""
    where, params = _service_clause(query)
    rows = await tx.fetch(
        "SELECT d.error_id, COUNT(*) FROM decisions d JOIN errors e ON e.id = d.error_id "
        f"WHERE d.to_state = ? AND d.from_state <> d.to_state AND d.at >= ?{where} "
        "GROUP BY d.error_id",
        [REGRESSED_STATE, start, *params],
    )
    return {int(error_id): int(count) for error_id, count in rows}


async def _auto_merges(tx: Tx, query: HistoryQuery, start: str) -> int:
    """The squash merges auto-merge made in the period (its decision, one per PR)."""
    where, params = _service_clause(query)
    rows = await tx.fetch(
        "SELECT COUNT(*) FROM decisions d JOIN errors e ON e.id = d.error_id "
        f"WHERE d.action = ? AND d.at >= ?{where}",
        [MERGED_ACTION, start, *params],
    )
    return int(rows[0][0])


async def _reverts(tx: Tx, query: HistoryQuery, start: str) -> int:
    """The revert PRs opened in the period (asking again finds the open one: no new row)."""
    where, params = _service_clause(query)
    rows = await tx.fetch(
        "SELECT COUNT(*) FROM prs p JOIN attempts a ON a.id = p.attempt_id "
        f"JOIN errors e ON e.id = a.error_id WHERE p.kind = 'revert' AND p.created_at >= ?{where}",
        [start, *params],
    )
    return int(rows[0][0])


async def _recurring(
    tx: Tx, query: HistoryQuery, start: str, regressions: dict[int, int]
) -> list[Recurring]:
    """The errors that occurred most in the period.

    Hosts send running totals, so an error's occurrences in the period are, per host (and
    agent instance), its highest total received in the period less its highest before.
    Only errors seen in the period are read, through the index on ``last_seen``.
    """
    where, params = _service_clause(query, "x")
    rows = await tx.fetch(
        "SELECT error_id, SUM(top - COALESCE(base, 0)) AS n FROM ("
        "SELECT o.error_id, "
        "MAX(CASE WHEN o.received_at >= ? THEN o.count END) AS top, "
        "MAX(CASE WHEN o.received_at < ? THEN o.count END) AS base "
        "FROM occurrences o WHERE o.error_id IN "
        f"(SELECT x.id FROM errors x WHERE x.last_seen >= ?{where}) "
        "GROUP BY o.error_id, o.host, o.instance"
        ") t WHERE top IS NOT NULL GROUP BY error_id HAVING SUM(top - COALESCE(base, 0)) > 0 "
        "ORDER BY n DESC, error_id LIMIT ?",
        [start, start, start, *params, RECURRING_LIMIT],
    )
    counts = {int(error_id): int(n) for error_id, n in rows}
    if not counts:
        return []
    ids = list(counts)
    marks = ", ".join("?" * len(ids))
    details = await tx.fetch(
        "SELECT e.id, e.service, e.fingerprint, e.error_type, e.message, e.state, "
        "(SELECT COUNT(*) FROM attempts a WHERE a.error_id = e.id AND a.started_at >= ?) "
        f"FROM errors e WHERE e.id IN ({marks})",
        [start, *ids],
    )
    found = {int(r[0]): r for r in details}
    return [
        Recurring(
            error_id=error_id,
            service=found[error_id][1],
            fingerprint=found[error_id][2],
            error_type=found[error_id][3],
            message=found[error_id][4],
            state=found[error_id][5],
            occurrences=counts[error_id],
            attempts=int(found[error_id][6]),
            regressions=regressions.get(error_id, 0),
        )
        for error_id in ids
        if error_id in found
    ]
