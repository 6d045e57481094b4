"""The history figures against a plain model of what they mean, on stores of random rows.

Rows go straight into a real console database file (its own schema, through SQL), so the
cases cover what the flow rarely produces in order: attempts on the period's first instant,
decisions before first sight, hosts whose totals started before the period, states the
History screen files under "open". Each figure is then recomputed in Python from the same
rows and must agree.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire import iso
from console.automerge.plan import MERGED_ACTION
from console.history import PERIODS, HistoryQuery, Outcome
from console.store import Store
from console.store.history import RECURRING_LIMIT, slots

NOW = 1_800_003_600.0  # 2027-01-15T09:00:00Z
SERVICES = ("PA", "billing", "worker")
SEVERITY = ("critical", "high", "medium", "low")
HOSTS = ("prod-1", "prod-2")
ATTEMPT_STATES = {
    "pushed": Outcome.FIXED,
    "pr_opened": Outcome.FIXED,
    "failed": Outcome.FAILED,
    "skipped": Outcome.SKIPPED,
    "interrupted": Outcome.INTERRUPTED,
    "fixing": Outcome.OPEN,
    "testing": Outcome.OPEN,
    "review": Outcome.OPEN,
}
DAY = 86400
# Offsets back from NOW, in whole seconds: up to 100 days, so every period has rows
# outside it as well as inside.
ago = st.integers(min_value=0, max_value=100 * DAY)


@dataclass(frozen=True)
class Err:
    service: str
    severity: str
    first_ago: int


@dataclass(frozen=True)
class Att:
    error: int
    state: str
    started_ago: int
    cost: float | None
    pr_ago: int | None


@dataclass(frozen=True)
class Dec:
    error: int
    to_state: str
    at_ago: int
    action: str = "x"
    # A decision taken while the error stayed where it was (a pause, a revert PR) records
    # its state at both ends; any other moved it from pr_opened.
    stayed: bool = False

    @property
    def from_state(self) -> str:
        return self.to_state if self.stayed else "pr_opened"


@dataclass(frozen=True)
class Occ:
    error: int
    host: str
    rises: tuple[int, ...]  # the running total's rises, oldest first
    received_agos: tuple[int, ...]  # when each was received, oldest first


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Err], list[Att], list[Dec], list[Occ]]:
    errors = draw(
        st.lists(
            st.builds(Err, st.sampled_from(SERVICES), st.sampled_from(SEVERITY), ago),
            min_size=1,
            max_size=8,
        )
    )
    index = st.integers(min_value=0, max_value=len(errors) - 1)
    attempts = draw(
        st.lists(
            st.builds(
                Att,
                index,
                st.sampled_from(sorted(ATTEMPT_STATES)),
                ago,
                st.none()
                | st.floats(min_value=0, max_value=5, allow_nan=False).map(lambda c: round(c, 4)),
                st.none() | ago,
            ),
            max_size=25,
        )
    )
    decisions = draw(
        st.lists(
            st.builds(
                Dec,
                index,
                st.sampled_from(["pushed", "pr_opened", "merged", "regressed"]),
                ago,
                st.sampled_from(["x", MERGED_ACTION]),
                st.booleans(),
            ),
            max_size=15,
        )
    )
    occurrences = []
    for error in range(len(errors)):
        for host in HOSTS:
            n = draw(st.integers(min_value=0, max_value=4))
            rises = tuple(draw(st.lists(st.integers(1, 50), min_size=n, max_size=n)))
            agos = sorted(draw(st.lists(ago, min_size=n, max_size=n)), reverse=True)
            if n:
                occurrences.append(Occ(error, host, rises, tuple(agos)))
    return errors, attempts, decisions, occurrences


def at(seconds_ago: int) -> str:
    return iso(NOW - seconds_ago)


async def _create(path: Path) -> None:
    async with await Store.open(path):
        pass


def write(path: Path, errors: list[Err], attempts: list[Att], decisions: list[Dec],
          occurrences: list[Occ]) -> None:  # fmt: skip
    asyncio.run(_create(path))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for i, e in enumerate(errors, 1):
        latest = min([e.first_ago, *(a for o in occurrences if o.error == i - 1
                                     for a in o.received_agos)])  # fmt: skip
        db.execute(
            "INSERT INTO errors (id, service, fingerprint, error_type, message, stack, severity, "
            "count, first_seen, last_seen, state, created_at, updated_at) "
            "VALUES (?, ?, ?, 'TypeError', ?, '[]', ?, 1, ?, ?, 'awaiting_approval', ?, ?)",
            (i, e.service, f"fp-{i}", f"boom {i}", e.severity, at(e.first_ago), at(latest),
             at(e.first_ago), at(e.first_ago)),
        )  # fmt: skip
    for i, a in enumerate(attempts, 1):
        db.execute(
            "INSERT INTO attempts (id, error_id, state, started_at, claude_cost_usd) "
            "VALUES (?, ?, ?, ?, ?)",
            (i, a.error + 1, a.state, at(a.started_ago), a.cost),
        )
        if a.pr_ago is not None:
            db.execute(
                "INSERT INTO prs (attempt_id, branch, url, number, created_at) "
                "VALUES (?, ?, 'https://github.com/acme/pa/pull/1', ?, ?)",
                (i, f"hotfix/{i}", i, at(a.pr_ago)),
            )
    for d in decisions:
        db.execute(
            "INSERT INTO decisions (error_id, action, actor, from_state, to_state, at) "
            "VALUES (?, ?, 'keyboard', ?, ?, ?)",
            (d.error + 1, d.action, d.from_state, d.to_state, at(d.at_ago)),
        )
    seq = 0
    for o in occurrences:
        total = 0
        for rise, received in zip(o.rises, o.received_agos, strict=True):
            total += rise
            seq += 1
            db.execute(
                "INSERT INTO occurrences (host, seq, error_id, type, count, received_at, raw) "
                "VALUES (?, ?, ?, 'update', ?, ?, '{}')",
                (o.host, seq, o.error + 1, total, at(received)),
            )
    db.execute("COMMIT")
    db.close()


async def _read(path: Path, query: HistoryQuery):
    async with await Store.open(path) as store:
        return await store.history(query, NOW)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world=worlds(),
    period=st.sampled_from(list(PERIODS)),
    service=st.none() | st.sampled_from(SERVICES),
)
def test_history_figures_agree_with_a_plain_model_of_the_rows(world, period, service) -> None:
    errors, attempts, decisions, occurrences = world
    query = HistoryQuery(period, service)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "console.db"
        write(path, errors, attempts, decisions, occurrences)
        history = asyncio.run(_read(path, query))

    starts = [s.timestamp() for s in slots(query, NOW)]
    start = starts[0]
    width = 3600 if query.days == 1 else DAY

    def wanted(error: int) -> bool:
        return service is None or errors[error].service == service

    def inside(seconds_ago: int) -> bool:
        return NOW - seconds_ago >= start

    mine = [a for a in attempts if wanted(a.error) and inside(a.started_ago)]
    assert history.outcomes == dict(Counter(ATTEMPT_STATES[a.state] for a in mine))
    assert history.attempts == len(mine)
    assert abs(history.cost_usd - sum(a.cost or 0 for a in mine)) < 1e-6
    per_slot = Counter(int((NOW - a.started_ago - start) // width) for a in mine)
    assert [b.attempts for b in history.buckets] == [per_slot[i] for i in range(len(starts))]
    assert [b.start for b in history.buckets] == [iso(s) for s in starts]

    for rates, key in ((history.by_service, "service"), (history.by_severity, "severity")):
        groups = Counter(getattr(errors[a.error], key) for a in mine)
        assert {r.name: r.attempts for r in rates} == dict(groups)
        for rate in rates:
            group = [a for a in mine if getattr(errors[a.error], key) == rate.name]
            fixed = sum(ATTEMPT_STATES[a.state] is Outcome.FIXED for a in group)
            decided = sum(ATTEMPT_STATES[a.state] is not Outcome.OPEN for a in group)
            assert (rate.fixed, rate.decided) == (fixed, decided)

    def times_to(states: set[str], with_prs: bool, actions: set[str] = frozenset()) -> list[float]:
        reached: dict[int, int] = {}
        marks = [(d.error, d.at_ago) for d in decisions
                 if d.to_state in states or d.action in actions]  # fmt: skip
        if with_prs:
            marks += [(a.error, a.pr_ago) for a in attempts if a.pr_ago is not None]
        for error, seconds_ago in marks:
            if wanted(error):
                # The first time is the one longest ago.
                reached[error] = max(reached.get(error, seconds_ago), seconds_ago)
        return [
            max(0.0, float(errors[e].first_ago - seconds_ago))
            for e, seconds_ago in reached.items()
            if inside(seconds_ago)
        ]

    to_pr = times_to({"pushed", "pr_opened"}, True)
    to_merge = times_to({"merged"}, False, {MERGED_ACTION})
    assert (history.prs, history.median_to_pr_seconds) == (len(to_pr), _median(to_pr))
    assert (history.merges, history.median_to_merge_seconds) == (len(to_merge), _median(to_merge))
    regressed = [d for d in decisions if d.to_state == "regressed" and not d.stayed
                 and wanted(d.error) and inside(d.at_ago)]  # fmt: skip
    assert history.regressions == len(regressed)
    auto = [d for d in decisions if d.action == MERGED_ACTION and wanted(d.error)
            and inside(d.at_ago)]  # fmt: skip
    assert history.auto_merges == len(auto)

    counts: Counter[int] = Counter()
    for o in occurrences:
        if not wanted(o.error):
            continue
        totals = [sum(o.rises[: i + 1]) for i in range(len(o.rises))]
        top = [t for t, a in zip(totals, o.received_agos, strict=True) if inside(a)]
        base = [t for t, a in zip(totals, o.received_agos, strict=True) if not inside(a)]
        if top:
            counts[o.error + 1] += max(top) - max(base, default=0)
    expected = sorted(((n, e) for e, n in counts.items() if n > 0), key=lambda p: (-p[0], p[1]))
    got = [(r.occurrences, r.error_id) for r in history.recurring]
    assert got == expected[:RECURRING_LIMIT]
    for row in history.recurring:
        assert row.regressions == sum(d.error + 1 == row.error_id for d in regressed)


@given(period=st.sampled_from(list(PERIODS)), now=st.floats(0, 4_000_000_000))
def test_period_slices_are_contiguous_and_end_with_the_one_holding_now(period, now) -> None:
    query = HistoryQuery(period)
    starts = [s.timestamp() for s in slots(query, now)]
    width = 3600 if query.days == 1 else DAY
    assert len(starts) == (24 if query.days == 1 else query.days)
    assert all(b - a == width for a, b in itertools.pairwise(starts))
    assert starts[-1] <= now < starts[-1] + width


def test_an_unknown_period_is_refused_naming_the_choices() -> None:
    try:
        HistoryQuery("fortnight")
    except ValueError as exc:
        assert "fortnight" in str(exc) and "30d" in str(exc)
    else:
        raise AssertionError("an unknown period was accepted")


def _month_of_rows(path: Path, errors: int, attempts: int, occurrences: int) -> None:
    """A month of busy history in the store's own schema, spread evenly over 30 days."""
    asyncio.run(_create(path))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    month = 30 * DAY
    db.executemany(
        "INSERT INTO errors (id, service, fingerprint, error_type, message, stack, severity, "
        "count, first_seen, last_seen, state, created_at, updated_at) VALUES "
        "(?, ?, ?, 'TypeError', 'boom', '[]', ?, 1, ?, ?, 'awaiting_approval', ?, ?)",
        ((i, SERVICES[i % 3], f"fp-{i}", SEVERITY[i % 4], at(month - i * month // errors),
          at((i * 7919) % DAY), at(0), at(0)) for i in range(1, errors + 1)),
    )  # fmt: skip
    states = sorted(ATTEMPT_STATES)
    db.executemany(
        "INSERT INTO attempts (id, error_id, state, started_at, claude_cost_usd) "
        "VALUES (?, ?, ?, ?, 0.05)",
        ((i, 1 + i % errors, states[i % len(states)], at(i * month // attempts))
         for i in range(1, attempts + 1)),
    )  # fmt: skip
    db.executemany(
        "INSERT INTO decisions (error_id, attempt_id, action, actor, from_state, to_state, at) "
        "VALUES (?, ?, 'x', 'keyboard', 'review', ?, ?)",
        ((1 + i % errors, i, ("pr_opened", "merged", "regressed")[i % 3],
          at(i * month // attempts)) for i in range(1, attempts + 1)),
    )  # fmt: skip
    db.executemany(
        "INSERT INTO prs (attempt_id, branch, url, number, created_at) VALUES (?, ?, 'u', ?, ?)",
        ((i, f"b{i}", i, at(i * month // attempts)) for i in range(1, attempts + 1, 10)),
    )
    db.executemany(
        "INSERT INTO occurrences (host, seq, error_id, type, count, received_at, raw) "
        "VALUES (?, ?, ?, 'update', ?, ?, '{}')",
        ((HOSTS[i % 2], i, 1 + i % errors, i, at(month - i * month // occurrences))
         for i in range(1, occurrences + 1)),
    )  # fmt: skip
    db.execute("COMMIT")
    db.close()


def test_history_of_a_busy_month_reads_in_well_under_a_second_per_period(tmp_path) -> None:
    """30,000 attempts and decisions and 60,000 occurrences: each period's figures come from
    grouped passes, so even the 90-day read stays far below what a person notices (the
    bound allows for a loaded machine)."""
    path = tmp_path / "console.db"
    _month_of_rows(path, errors=3000, attempts=30_000, occurrences=60_000)

    async def read_all() -> dict[str, tuple[float, object]]:
        async with await Store.open(path) as store:
            timed = {}
            for period in PERIODS:
                began = time.perf_counter()
                history = await store.history(HistoryQuery(period), NOW)
                timed[period] = (time.perf_counter() - began, history)
            return timed

    timed = asyncio.run(read_all())
    slowest = max(seconds for seconds, _ in timed.values())
    assert slowest < 3.0, {p: round(s, 3) for p, (s, _) in timed.items()}
    whole = timed["90d"][1]
    assert whole.attempts == 30_000
    assert whole.regressions == 10_000
    assert len(whole.recurring) == RECURRING_LIMIT


def test_a_month_of_history_reads_the_same_on_sqlite_and_postgresql(pg_database, tmp_path) -> None:
    """The same month filled through the store's API on each backend gives the same
    figures for every period and service: the history's SQL means the same on both."""
    from tests.history_store import fill_month

    where: list[str | Path] = [tmp_path / "console.db", pg_database()]

    async def read(address: str | Path) -> list:
        await fill_month(address)
        async with await Store.open(address) as store:
            return [
                await store.history(HistoryQuery(period, service), NOW)
                for period in PERIODS
                for service in (None, *SERVICES)
            ]

    on_sqlite, on_postgres = (asyncio.run(read(address)) for address in where)
    for lite, pg in zip(on_sqlite, on_postgres, strict=True):
        assert abs(lite.cost_usd - pg.cost_usd) < 1e-6
        assert [round(b.cost_usd, 6) for b in lite.buckets] == [
            round(b.cost_usd, 6) for b in pg.buckets
        ]
        assert dataclasses.replace(lite, cost_usd=0, buckets=[]) == dataclasses.replace(
            pg, cost_usd=0, buckets=[]
        )
        assert [(b.start, b.outcomes) for b in lite.buckets] == [
            (b.start, b.outcomes) for b in pg.buckets
        ]
    assert any(h.attempts for h in on_sqlite)
