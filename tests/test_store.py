"""The console store against real SQLite files and a real PostgreSQL server: ingest,
compare-and-set, migrations, crashes.

Tests taking the ``store`` fixture run once per backend (tests/conftest.py); the ones about
SQLite files as such (WAL, a killed writer, upgrading an old file) build their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import eventually
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire import ErrorEvent, WireError, decode, encode
from console.fix.diffstat import FileStat
from console.models import TRANSITIONS, Denial, State, can_transition
from console.storable import Received, unstorable
from console.store import MIGRATIONS, RECOVER_REASON, NotFound, Store, StoreError
from console.store import sqlite as sqlite_backend

ROOT = Path(__file__).resolve().parent.parent
FP_A = "a1" * 8
FP_B = "b2" * 8
STAT = FileStat("lib/users.js", 3, 1)


def event(
    seq: int,
    count: int,
    *,
    fingerprint: str = FP_A,
    host: str = "web-1",
    service: str = "shop-api",
    severity: str = "medium",
    kind: str = "update",
    message: str = "Cannot read properties of undefined (reading 'id')",
    stack: list[str] | None = None,
    route: str | None = "/api/users/:id",
    first_seen: str = "2026-01-01T00:00:00.000Z",
    last_seen: str | None = None,
) -> ErrorEvent:
    return ErrorEvent(
        type=kind,  # type: ignore[arg-type]
        seq=seq,
        host=host,
        service=service,
        fingerprint=fingerprint,
        count=count,
        severity=severity,  # type: ignore[arg-type]
        message=message,
        error_type="TypeError",
        stack=stack if stack is not None else ["    at getUser (/srv/app/lib/users.js:12:7)"],
        route=route,
        first_seen=first_seen,
        last_seen=last_seen or f"2026-01-01T00:00:{seq % 60:02d}.000Z",
    )


async def awaiting(store: Store, fingerprint: str = FP_A) -> int:
    """An error waiting for a person, as the engine leaves it after ingest."""
    seq = await store.last_seq("web-1") + 1
    (result,) = await store.ingest("web-1", [event(seq, 1, fingerprint=fingerprint, kind="error")])
    assert await store.transition(result.error_id, State.NEW, State.AWAITING_APPROVAL)
    return result.error_id


def raw_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


async def raw(store: Store, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of a statement run on the store's own database, past the Store API (either
    backend; ``?`` placeholders)."""

    async def body(tx):
        return [tuple(r) for r in await tx.fetch(sql, params)]

    return await store.backend.write(body)


# --- ingest -------------------------------------------------------------------------------


async def test_open_creates_directories_and_a_wal_database(tmp_path):
    path = tmp_path / "deep" / "er" / "console.db"
    async with await Store.open(path) as s:
        assert await s.schema_version() == len(MIGRATIONS)
    assert raw_db(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_ingest_leaves_checkpoints_to_their_own_thread_and_the_file_keeps_up(
    tmp_path, monkeypatch
):
    # A small threshold so a few batches pass it; the bytes are counted from the lines.
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_BYTES", 64 * 1024)
    path = tmp_path / "console.db"
    async with await Store.open(path) as s:
        backend = s.backend
        assert isinstance(backend, sqlite_backend.SqliteBackend)
        empty_size = path.stat().st_size
        for start in range(1, 2001, 200):
            await s.ingest("web-1", [event(seq, seq) for seq in range(start, start + 200)])
        await backend.checkpointed()
        # The occurrences reached the database file itself while the store is open, far
        # below the WAL length at which the ingest connection would have checkpointed.
        assert path.stat().st_size > empty_size + 200 * 1024
        assert await s.last_seq("web-1") == 2000
    (count,) = raw_db(path).execute("SELECT COUNT(*) FROM occurrences").fetchone()
    assert count == 2000


async def test_ingest_counted_returns_the_errors_counted_again_as_a_read_after_it_sees_them(
    store,
):
    await store.ingest("web-1", [event(1, 1, fingerprint=FP_A, kind="error")])
    await store.ingest("web-2", [event(1, 4, fingerprint=FP_A, kind="error")])
    outcome = await store.ingest_counted(
        "web-1",
        [
            event(1, 1, fingerprint=FP_A, kind="error"),  # a resend: not counted again
            event(2, 2, fingerprint=FP_A),
            event(3, 1, fingerprint=FP_B, kind="error"),  # created: the engine queues it
            event(4, 3, fingerprint=FP_A),
        ],
    )
    assert [(r.seq, r.created, r.duplicate) for r in outcome.results] == [
        (1, False, True),
        (2, False, False),
        (3, True, False),
        (4, False, False),
    ]
    (error_a,) = outcome.counted
    assert error_a.fingerprint == FP_A
    assert error_a.count == 7
    assert error_a.hosts == {"web-1": 3, "web-2": 4}
    assert [error_a] == await store.errors_by_id([error_a.id])
    # A batch that only repeats what is stored counts nothing again.
    again = await store.ingest_counted("web-1", [event(4, 3, fingerprint=FP_A)])
    assert again.counted == []
    assert again.results[0].duplicate


async def test_resent_events_are_ignored_not_double_counted(store):
    first = await store.ingest("web-1", [event(1, 1, kind="error"), event(2, 2), event(3, 3)])
    assert [r.duplicate for r in first] == [False, False, False]
    again = await store.ingest("web-1", [event(2, 2), event(3, 3), event(4, 4)])
    assert [(r.seq, r.duplicate) for r in again] == [(2, True), (3, True), (4, False)]
    assert {r.error_id for r in first + again} == {first[0].error_id}
    (row,) = await store.errors()
    assert row.count == 4 and row.hosts == {"web-1": 4}
    assert await store.last_seq("web-1") == 4
    assert await raw(store, "SELECT COUNT(*) FROM occurrences") == [(4,)]


async def test_duplicate_seq_inside_one_batch_is_stored_once(store):
    results = await store.ingest("web-1", [event(1, 1, kind="error"), event(1, 1, kind="error")])
    assert [(r.created, r.duplicate) for r in results] == [(True, False), (False, True)]
    assert results[0].error_id == results[1].error_id
    assert await raw(store, "SELECT COUNT(*) FROM occurrences") == [(1,)]


async def test_only_the_first_event_of_a_new_error_says_created(store):
    results = await store.ingest(
        "web-1",
        [
            event(1, 1, kind="error"),
            event(2, 1, fingerprint=FP_B, kind="error"),
            event(3, 2),
        ],
    )
    assert [r.created for r in results] == [True, True, False]
    assert results[0].error_id != results[1].error_id
    later = await store.ingest("web-1", [event(4, 3)])
    assert not later[0].created and later[0].error_id == results[0].error_id


async def test_same_fingerprint_from_two_hosts_is_one_error_with_summed_counts(store):
    a = await store.ingest("web-1", [event(1, 1, kind="error"), event(2, 3)])
    b = await store.ingest("web-2", [event(1, 5, host="web-2", kind="error", severity="high")])
    assert a[0].created and not b[0].created
    assert a[0].error_id == b[0].error_id
    row = await store.error(a[0].error_id)
    assert row is not None
    assert row.hosts == {"web-1": 3, "web-2": 5}
    assert row.count == 8
    assert row.severity == "high"  # the worst any host reported
    assert await store.last_seq("web-1") == 2 and await store.last_seq("web-2") == 1


async def test_running_totals_arriving_out_of_order_keep_the_latest(store):
    await store.ingest("web-1", [event(5, 9, kind="error")])
    await store.ingest("web-1", [event(3, 4)])  # an older total, replayed late
    row = (await store.errors())[0]
    assert row.count == 9 and row.hosts == {"web-1": 9}


async def test_error_keeps_earliest_first_seen_and_latest_last_seen(store):
    await store.ingest(
        "web-1",
        [
            event(
                1,
                1,
                kind="error",
                first_seen="2026-01-02T00:00:00.000Z",
                last_seen="2026-01-02T00:00:05.000Z",
            )
        ],
    )
    await store.ingest(
        "web-2",
        [
            event(
                1,
                1,
                host="web-2",
                kind="error",
                first_seen="2026-01-01T00:00:00.000Z",
                last_seen="2026-01-01T09:00:00.000Z",
            )
        ],
    )
    row = (await store.errors())[0]
    assert row.first_seen == "2026-01-01T00:00:00.000Z"
    assert row.last_seen == "2026-01-02T00:00:05.000Z"


async def test_raw_line_is_stored_exactly_as_the_wire_encodes_it(store):
    events = [
        event(1, 1, kind="error", message='quote " back\\slash\ttab\nnewline \x01 é 日本 \u2028'),
        event(2, 2, route=None),
        event(3, 3, stack=["    at other (/srv/app/x.js:1:1)", "  ünïcode"]),
        event(4, 4, fingerprint=FP_B, severity="critical", kind="error"),
    ]
    await store.ingest("web-1", events)
    stored = [r[0] for r in await raw(store, "SELECT raw FROM occurrences ORDER BY seq")]
    assert stored == [encode(e) for e in events]
    assert [decode(line) for line in stored] == events


async def test_ingest_refuses_events_that_are_not_error_lines(store):
    (zero,) = await store.ingest("web-1", [event(0, 1)])
    (boolean,) = await store.ingest("web-1", [event(True, 1)])  # type: ignore[arg-type]
    (other,) = await store.ingest("web-1", [event(1, 1, kind="heartbeat")])
    assert "seq must be a positive integer" in (zero.refused or "")
    assert "seq must be a positive integer" in (boolean.refused or "")
    assert "type 'heartbeat' is not storable" in (other.refused or "")
    # Nothing of the refused events was kept, and the store still works.
    assert await store.errors() == []
    assert (await store.ingest("web-1", [event(1, 1, kind="error")]))[0].created


async def test_a_bad_event_is_refused_alone_and_the_rest_of_its_batch_is_stored(store):
    batch = [
        event(1, 1, kind="error"),
        event(2, 2, message="lone \ud800 surrogate"),
        event(3, 10**30),
        event(4, 3, fingerprint=FP_B, kind="error", stack=["ok", "bad \udfff"]),
        event(5, 4),
        event(6, 5, route="/api/\ud83d"),
    ]
    results = await store.ingest("web-1", batch)
    assert [r.seq for r in results] == [1, 2, 3, 4, 5, 6]
    refused = {r.seq: r.refused for r in results if r.refused}
    assert sorted(refused) == [2, 3, 4, 6]
    assert refused[2] == (
        "web-1: event seq 2 not stored: "
        "message is not text the store can hold (a lone surrogate or a NUL?)"
    )
    assert "count must be a positive integer up to 9223372036854775807, got a 100-bit number" in (
        refused[3] or ""
    )
    assert all("\n" not in m and "web-1: event seq" in m for m in refused.values() if m)
    assert [r.created for r in results if not r.refused] == [True, False]
    assert await store.last_seq("web-1") == 5
    (row,) = await store.errors()
    assert row.count == 4, "the latest stored running total"
    # A replay after a reconnect: stored ones are duplicates, bad ones refused again.
    again = await store.ingest("web-1", batch)
    assert [r.duplicate for r in again if not r.refused] == [True, True]
    assert sorted(r.seq for r in again if r.refused) == [2, 3, 4, 6]


_WILD_INT = st.one_of(
    st.integers(min_value=-3, max_value=40),
    st.sampled_from([2**63 - 1, 2**63, 10**30, -(2**63)]),
)
_WILD_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["\ud800", "a\udfffb", "\x00"]))
_FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_WILD_EVENT = st.builds(
    event,
    seq=_WILD_INT,
    count=_WILD_INT,
    fingerprint=st.sampled_from([FP_A, FP_B]),
    kind=st.sampled_from(["error", "update", "hello"]),
    message=_WILD_TEXT,
    stack=st.lists(_WILD_TEXT, max_size=3),
    route=st.one_of(st.none(), _WILD_TEXT),
    severity=st.sampled_from(["low", "high", "weird"]),
)


@_FUZZ
@given(st.lists(_WILD_EVENT, min_size=1, max_size=8))
def test_ingest_of_any_batch_stores_every_storable_event_and_reports_the_rest(
    tmp_path: Path, batch: list[ErrorEvent]
) -> None:
    async def run() -> None:
        path = tmp_path / f"fuzz-{os.urandom(6).hex()}.db"
        async with await Store.open(path) as store:
            results = await store.ingest("web-1", batch)
            assert len(results) == len(batch)
            for e, result in zip(batch, results, strict=True):
                if unstorable(e) is None:
                    assert result.refused is None, result.refused
                else:
                    assert result.refused and "\n" not in result.refused
                    assert result.refused.startswith("web-1: event seq ")
            good = [e.seq for e in batch if unstorable(e) is None]
            assert await store.last_seq("web-1") == max(good, default=0)

    asyncio.run(run())


def _wire_line(e: ErrorEvent) -> str:
    """The event as a hostile agent may write it: every non-ASCII character escaped, so a
    lone surrogate travels as ``\\ud800`` and the line itself is plain ASCII."""
    fields = {"type": e.type, **{k: v for k, v in e.__dict__.items() if k != "type"}}
    return json.dumps(fields, ensure_ascii=True)


@_FUZZ
@given(st.lists(_WILD_EVENT, min_size=1, max_size=8))
def test_wire_lines_are_stored_as_received_and_unstorable_ones_are_reported(
    tmp_path: Path, batch: list[ErrorEvent]
) -> None:
    received = []
    for e in batch:
        line = _wire_line(e)
        try:
            received.append(Received(decode(line), line))
        except WireError:
            continue  # a link reports it and never hands it on
    if not received:
        return

    async def run() -> None:
        path = tmp_path / f"wire-{os.urandom(6).hex()}.db"
        async with await Store.open(path) as store:
            results = await store.ingest("web-1", received)
            assert len(results) == len(received)
            stored: dict[int, str] = {}
            for item, result in zip(received, results, strict=True):
                if unstorable(item.event) is None:
                    assert result.refused is None, result.refused
                    if not result.duplicate:
                        stored[item.event.seq] = item.line
                else:
                    assert result.refused and result.refused.startswith("web-1: event seq ")
            db = sqlite3.connect(path)
            rows = dict(db.execute("SELECT seq, raw FROM occurrences").fetchall())
            db.close()
            assert rows == stored

    asyncio.run(run())


async def test_the_line_a_link_received_is_the_line_stored_unknown_fields_included(store):
    e = event(1, 1, kind="error")
    line = encode(e)[:-1] + ',"from_a_newer_agent":{"x":[1,2]}}'
    await store.ingest("web-1", [Received(decode(line), line)])
    [row] = await store.errors()
    assert await store.samples(row.id) == [line]
    # An event built in this process is stored as its wire encoding.
    await store.ingest("web-1", [event(2, 2)])
    assert (await store.samples(row.id))[0] == encode(event(2, 2))


async def test_an_error_keeps_the_frames_the_agent_marked_and_an_old_agents_has_none(store):
    stack = ["TypeError: x", "    at f (/srv/app/a.js:1:1)", "    at node:internal/x:1:1"]
    marked = replace(event(1, 1, kind="error", stack=stack), in_app=[None, True, False])
    await store.ingest("web-1", [marked])
    unmarked = event(2, 1, kind="error", fingerprint=FP_B, stack=stack)
    await store.ingest("web-1", [Received(unmarked, encode(unmarked).replace(',"in_app":[]', ""))])
    rows = {r.fingerprint: r for r in await store.errors()}
    assert rows[FP_A].in_app == [None, True, False] and rows[FP_A].stack == stack
    assert rows[FP_B].in_app == []


async def test_empty_batch_changes_nothing(store):
    assert await store.ingest("web-1", []) == []
    assert await store.hosts() == []


async def test_new_agent_instance_restarts_the_position(store):
    assert await store.set_host_instance("web-1", "inst-a") == 0
    await store.ingest("web-1", [event(1, 1, kind="error"), event(2, 2)])
    assert await store.set_host_instance("web-1", "inst-a") == 2
    assert await store.set_host_instance("web-1", "") == 2  # an agent too old to say
    # The agent's state was wiped: seqs restart at 1 and must not be taken for duplicates.
    assert await store.set_host_instance("web-1", "inst-b") == 0
    results = await store.ingest("web-1", [event(1, 1), event(2, 2)])
    assert not any(r.duplicate for r in results)
    row = (await store.errors())[0]
    assert row.count == 4 and row.hosts == {"web-1": 4}
    assert await store.last_seq("web-1") == 2


async def test_host_status_and_heartbeat_are_recorded(store):
    await store.set_host_status("web-1", "connected")
    await store.touch_host("web-1")
    await store.set_host_status("web-1", "disconnected", "connection reset by peer")
    (host,) = await store.hosts()
    assert host.name == "web-1" and host.status == "disconnected"
    assert host.detail == "connection reset by peer" and host.last_seen_at is not None
    assert host.last_seq == 0


# --- states and attempts ------------------------------------------------------------------


def test_transition_table_matches_the_flow():
    assert can_transition(State.REVIEW, State.FIXING)
    assert can_transition(State.SKIPPED, State.AWAITING_APPROVAL)
    assert not can_transition(State.NEW, State.FIXING)
    assert TRANSITIONS[State.PUSHED] == frozenset()
    # After the PR, only GitHub (merged, closed) and the lifecycle's rules move the error.
    assert TRANSITIONS[State.PR_OPENED] == {State.MERGED, State.CLOSED}
    assert TRANSITIONS[State.RESOLVED] == {State.REGRESSED}
    assert set(TRANSITIONS) == set(State)


async def test_transition_outside_the_table_raises(store):
    error_id = await awaiting(store)
    with pytest.raises(ValueError, match="new -> review is not allowed"):
        await store.transition(error_id, State.NEW, State.REVIEW)
    with pytest.raises(ValueError, match="create_attempt"):
        await store.transition(error_id, State.AWAITING_APPROVAL, State.FIXING)
    with pytest.raises(ValueError, match="unknown attempt field"):
        await store.update_attempt(1, state="review")
    with pytest.raises(NotFound):
        await store.transition(999, State.NEW, State.AWAITING_APPROVAL)
    assert (await store.error(error_id)).state is State.AWAITING_APPROVAL


async def test_transition_with_wrong_expected_state_returns_false(store):
    error_id = await awaiting(store)
    assert not await store.transition(error_id, State.NEW, State.AWAITING_APPROVAL)
    assert await store.decisions(error_id) == []


async def test_keyboard_and_telegram_at_once_produce_one_action(store):
    error_id = await awaiting(store)
    approve = store.create_attempt(error_id, actor="keyboard")
    skip = store.transition(
        error_id, State.AWAITING_APPROVAL, State.SKIPPED, actor="telegram:12345"
    )
    attempt, skipped = await asyncio.gather(approve, skip)
    assert (attempt is not None) != skipped
    decisions = await store.decisions(error_id)
    assert len(decisions) == 1
    assert (await store.error(error_id)).state is decisions[0].to_state


async def test_two_connections_racing_the_same_approval_apply_it_once(store_address):
    path = store_address
    first, second = await Store.open(path), await Store.open(path)
    try:
        ids = [await awaiting(first, fingerprint=f"{i:016x}") for i in range(20)]
        for error_id in ids:
            results = await asyncio.gather(
                first.create_attempt(error_id, actor="keyboard"),
                second.create_attempt(error_id, actor="telegram:1"),
            )
            assert sum(r is not None for r in results) == 1
        assert len(await first.attempts()) == 20
        assert len(await second.decisions(limit=1000)) == 20
    finally:
        await first.close()
        await second.close()


RACER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from console.models import State
    from console.store import Store

    async def main(path, mode, go, ids):
        store = await Store.open(path)
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.001)
        won = []
        for error_id in ids:
            if mode == "approve":
                ok = await store.create_attempt(error_id, actor="keyboard") is not None
            else:
                ok = await store.transition(
                    error_id, State.AWAITING_APPROVAL, State.SKIPPED, actor="telegram:7"
                )
            if ok:
                won.append(error_id)
        await store.close()
        print(json.dumps(won), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
    """
)


async def test_two_processes_racing_the_same_transition_exactly_one_wins(store_address, tmp_path):
    path = store_address
    async with await Store.open(path) as s:
        ids = [await awaiting(s, fingerprint=f"{i:016x}") for i in range(40)]
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), mode, str(go), json.dumps(ids)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for mode in ("approve", "skip")
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        won = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    approved, skipped = set(won[0]), set(won[1])
    assert approved.isdisjoint(skipped)
    assert approved | skipped == set(ids)
    async with await Store.open(path) as s:
        for error_id in ids:
            row = await s.error(error_id)
            assert row.state is (State.FIXING if error_id in approved else State.SKIPPED)
            assert len(await s.decisions(error_id)) == 1


async def test_attempt_walks_the_flow_and_the_error_mirrors_it(store):
    error_id = await awaiting(store)
    attempt = await store.create_attempt(error_id, actor="keyboard")
    assert attempt is not None and attempt.state is State.FIXING
    assert (await store.error(error_id)).current_attempt_id == attempt.id
    updated = await store.update_attempt(attempt.id, branch="autofix/1", worktree="/wt/1")
    assert (updated.branch, updated.worktree, updated.state) == ("autofix/1", "/wt/1", State.FIXING)
    with pytest.raises(NotFound):
        await store.update_attempt(999, reason="x")
    assert await store.append_transcript(attempt.id, ['{"type":"system"}', '{"type":"a"}']) == 2
    assert await store.append_transcript(attempt.id, ['{"type":"result"}']) == 3
    assert await store.transcript(attempt.id, after_seq=1) == ['{"type":"a"}', '{"type":"result"}']
    assert await store.transition_attempt(
        attempt.id, State.FIXING, State.TESTING, claude_cost_usd=0.42, claude_turns=7
    )
    assert [a.id for a in await store.running_attempts()] == [attempt.id]
    result = await store.record_test_result(
        attempt.id, command="npm test", exit_code=0, output_tail="5 passing", duration_ms=1200
    )
    assert result.exit_code == 0 and not result.timed_out
    assert await store.transition_attempt(
        attempt.id, State.TESTING, State.REVIEW, diff="--- a\n+++ b\n", diff_stat=[STAT]
    )
    pr = await store.record_pr(attempt.id, "autofix/1", "https://github.test/acme/pr/9", 9)
    assert await store.pr_for_branch("autofix/1") == pr
    assert await store.pr_for_branch("autofix/other") is None
    assert await store.transition(
        error_id, State.REVIEW, State.PR_OPENED, actor="telegram:12345", reason="looks right"
    )
    final = await store.attempt(attempt.id)
    assert final.state is State.PR_OPENED and final.finished_at is not None
    assert (final.branch, final.claude_cost_usd, final.claude_turns) == ("autofix/1", 0.42, 7)
    assert (final.test_exit_code, final.test_output_tail) == (0, "5 passing")
    assert (final.pr_url, final.pr_number, final.diff_stat) == (pr.url, 9, (STAT,))
    assert final.reason == "looks right"
    assert (await store.error(error_id)).state is State.PR_OPENED
    assert await store.running_attempts() == []
    actions = [(d.action, d.actor) for d in await store.decisions(error_id)]
    assert actions == [("approve", "keyboard"), ("open_pr", "telegram:12345")]


async def test_retry_from_review_closes_the_reviewed_attempt(store):
    error_id = await awaiting(store)
    first = await store.create_attempt(error_id)
    assert await store.transition_attempt(first.id, State.FIXING, State.TESTING)
    assert await store.transition_attempt(first.id, State.TESTING, State.REVIEW)
    second = await store.create_attempt(error_id, "use the cache", actor="keyboard")
    assert second is not None and second.extra_instruction == "use the cache"
    old = await store.attempt(first.id)
    assert old.state is State.SKIPPED and old.finished_at is not None
    assert (await store.error(error_id)).current_attempt_id == second.id
    assert [d.action for d in await store.decisions(error_id)] == ["retry"]
    # The worker of the old attempt can no longer move the error.
    assert not await store.transition_attempt(first.id, State.FIXING, State.TESTING)
    assert [a.id for a in await store.attempts(error_id=error_id)] == [first.id, second.id]


async def test_create_attempt_refuses_states_that_cannot_start_one(store):
    (result,) = await store.ingest("web-1", [event(1, 1, kind="error")])
    assert await store.create_attempt(result.error_id) is None  # still new
    assert await store.create_attempt(result.error_id, expected=State.FAILED) is None
    with pytest.raises(ValueError):
        await store.create_attempt(result.error_id, expected=State.NEW)
    with pytest.raises(NotFound):
        await store.create_attempt(12345)


async def test_skipped_error_can_be_reopened_for_approval(store):
    error_id = await awaiting(store)
    attempt = await store.create_attempt(error_id)
    assert await store.transition_attempt(attempt.id, State.FIXING, State.FAILED, reason="boom")
    assert await store.transition(error_id, State.FAILED, State.SKIPPED, actor="keyboard")
    assert (await store.attempt(attempt.id)).state is State.FAILED  # its own outcome stands
    assert await store.transition(error_id, State.SKIPPED, State.AWAITING_APPROVAL, actor="k")
    reopened = await store.error(error_id)
    assert reopened.state is State.AWAITING_APPROVAL and reopened.current_attempt_id is None
    assert [e.id for e in await store.errors(state=State.AWAITING_APPROVAL)] == [error_id]


async def test_fields_without_a_current_attempt_roll_the_transition_back(store):
    error_id = await awaiting(store)
    with pytest.raises(ValueError, match="need a current attempt"):
        await store.transition(error_id, State.AWAITING_APPROVAL, State.SKIPPED, diff="x")
    assert (await store.error(error_id)).state is State.AWAITING_APPROVAL


async def test_recover_interrupts_attempts_cut_off_by_a_stop(store_address):
    path = store_address
    async with await Store.open(path) as s:
        fixing_error = await awaiting(s, FP_A)
        testing_error = await awaiting(s, FP_B)
        review_error = await awaiting(s, "c3" * 8)
        fixing = await s.create_attempt(fixing_error)
        testing = await s.create_attempt(testing_error)
        review = await s.create_attempt(review_error)
        await s.transition_attempt(testing.id, State.FIXING, State.TESTING)
        await s.transition_attempt(review.id, State.FIXING, State.TESTING)
        await s.transition_attempt(review.id, State.TESTING, State.REVIEW)
    async with await Store.open(path) as s:
        recovered = await s.recover()
        assert [a.id for a in recovered] == [fixing.id, testing.id]
        assert all(a.state is State.INTERRUPTED for a in recovered)
        assert all(a.reason == RECOVER_REASON and a.finished_at for a in recovered)
        assert (await s.error(fixing_error)).state is State.INTERRUPTED
        assert (await s.error(testing_error)).state is State.INTERRUPTED
        assert (await s.error(review_error)).state is State.REVIEW
        assert await s.running_attempts() == []
        assert await s.recover() == []
        retry = await s.create_attempt(testing_error, expected=State.INTERRUPTED)
        assert retry is not None


async def test_errors_query_filters_and_orders(store):
    await store.ingest(
        "web-1",
        [
            event(1, 1, kind="error", last_seen="2026-01-01T00:00:01.000Z"),
            event(
                2,
                1,
                fingerprint=FP_B,
                service="billing",
                kind="error",
                last_seen="2026-01-01T00:00:09.000Z",
            ),
        ],
    )
    rows = await store.errors()
    assert [r.fingerprint for r in rows] == [FP_B, FP_A]
    assert [r.fingerprint for r in await store.errors(service="shop-api")] == [FP_A]
    assert len(await store.errors(limit=1)) == 1
    await store.transition(rows[0].id, State.NEW, State.AWAITING_APPROVAL)
    assert [r.id for r in await store.errors(state=[State.AWAITING_APPROVAL])] == [rows[0].id]
    assert await store.error(999) is None and await store.attempt(999) is None


async def test_cancelled_caller_leaves_the_store_usable(store):
    events = [event(i, i, kind="error" if i == 1 else "update") for i in range(1, 3001)]
    task = asyncio.ensure_future(store.ingest("web-1", events))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The transaction runs to its end on its own (a PostgreSQL store may still be committing
    # it on its own connection); no connection is left inside it.
    async def position() -> bool:
        return await store.last_seq("web-1") == 3000

    await eventually(position, 30, "the cancelled batch to commit")
    error_id = await awaiting(store, FP_B)
    assert error_id is not None
    assert await store.last_seq("web-1") == 3001


# --- migrations and foreign files ---------------------------------------------------------

EXTRA = "ALTER TABLE errors ADD COLUMN note TEXT; UPDATE errors SET note = 'migrated';"


async def test_a_diff_stat_stored_as_text_by_an_older_console_reads_back_as_file_stats(store):
    attempt = await store.create_attempt(await awaiting(store), actor="keyboard")
    assert attempt is not None
    written = await store.update_attempt(
        attempt.id, diff_stat=[STAT, FileStat("assets/logo.png", 0, 0, binary=True)]
    )
    assert written.diff_stat == (STAT, FileStat("assets/logo.png", 0, 0, binary=True))
    ((stored,),) = await raw(store, "SELECT diff_stat FROM attempts")
    assert json.loads(stored)[0] == {
        "path": "lib/users.js", "added": 3, "removed": 1, "binary": False, "old_path": None
    }  # fmt: skip
    old_row = "lib/my file.js +3 -1\nassets/logo.png +0 -0 (binary)"
    await raw(store, "UPDATE attempts SET diff_stat = ?", (old_row,))
    assert (await store.attempt(attempt.id)).diff_stat == (
        FileStat("lib/my file.js", 3, 1),
        FileStat("assets/logo.png", 0, 0, binary=True),
    )


async def test_migration_from_an_older_version_keeps_the_data(tmp_path):
    path = tmp_path / "console.db"
    async with await Store.open(path) as old:
        error_id = await awaiting(old)
    async with await Store.open(path, migrations=(*MIGRATIONS, EXTRA)) as new:
        assert await new.schema_version() == len(MIGRATIONS) + 1
        row = await new.error(error_id)
        assert row.state is State.AWAITING_APPROVAL and row.count == 1
    db = raw_db(path)
    assert db.execute("SELECT note FROM errors").fetchall() == [("migrated",)]
    versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == list(range(1, len(MIGRATIONS) + 2))


async def published_in_v4(store: Store, fingerprint: str, pr_url: str | None) -> int:
    """An error whose attempt a version-4 console recorded as ``pr_opened``, written as that
    version's rows (today's store methods write columns it did not have)."""
    error_id = await awaiting(store, fingerprint)
    db = raw_db(store.path)
    attempt_id = db.execute(
        "INSERT INTO attempts (error_id, state, started_at, pr_url, pr_number) "
        "VALUES (?, 'pr_opened', 'then', ?, ?) RETURNING id",
        (error_id, pr_url, 7 if pr_url else None),
    ).fetchone()[0]
    db.execute(
        "UPDATE errors SET state = 'pr_opened', current_attempt_id = ? WHERE id = ?",
        (attempt_id, error_id),
    )
    db.execute(
        "INSERT INTO decisions (error_id, attempt_id, action, actor, from_state, to_state, at) "
        "VALUES (?, ?, 'open_pr', 'keyboard', 'review', 'pr_opened', 'then')",
        (error_id, attempt_id),
    )
    db.close()
    return error_id


async def test_migration_5_turns_a_pr_opened_row_without_a_pr_into_pushed(tmp_path):
    path = tmp_path / "console.db"
    async with await Store.open(path, migrations=MIGRATIONS[:4]) as old:
        pushed = await published_in_v4(old, FP_A, None)
        with_pr = await published_in_v4(old, FP_B, "https://github.test/acme/pa/pull/7")
        # Version 4 refuses the new state: the rebuilt CHECK is what lets it in.
        with pytest.raises(sqlite3.IntegrityError):
            raw_db(path).execute("UPDATE errors SET state = 'pushed'")
    async with await Store.open(path) as new:
        assert await new.schema_version() == len(MIGRATIONS)
        error = await new.error(pushed)
        assert error is not None and error.state is State.PUSHED
        attempt = await new.attempt(error.current_attempt_id or 0)
        assert attempt is not None and attempt.state is State.PUSHED
        assert [(d.action, d.to_state) for d in await new.decisions(pushed)][-1] == (
            "push",
            "pushed",
        )
        kept = await new.error(with_pr)
        assert kept is not None and kept.state is State.PR_OPENED
        assert [(d.action, d.to_state) for d in await new.decisions(with_pr)][-1] == (
            "open_pr",
            "pr_opened",
        )
        # Everything else survived the rebuild, and the foreign keys hold again.
        assert kept.count == 1 and len(await new.errors()) == 2
        assert raw_db(path).execute("PRAGMA foreign_key_check").fetchall() == []
        with pytest.raises(sqlite3.IntegrityError):
            raw_db(path).execute("UPDATE errors SET state = 'exploded'")


async def test_migration_6_lets_the_lifecycle_states_in_and_keeps_every_row(tmp_path):
    path = tmp_path / "console.db"
    async with await Store.open(path, migrations=MIGRATIONS[:5]) as old:
        with_pr = await published_in_v4(old, FP_B, "https://github.test/acme/pa/pull/7")
        [(attempt_id,)] = raw_db(path).execute(
            "SELECT current_attempt_id FROM errors WHERE id = ?", (with_pr,)
        )
        # A version-5 prs row (record_pr of that version wrote these columns only).
        raw_db(path).execute(
            "INSERT INTO prs (attempt_id, branch, url, number, created_at) VALUES (?, ?, ?, ?, ?)",
            (attempt_id, "hotfix/x", "https://github.test/acme/pa/pull/7", 7, "2026-01-01"),
        )
        with pytest.raises(sqlite3.IntegrityError):
            raw_db(path).execute("UPDATE errors SET state = 'merged'")
    async with await Store.open(path) as new:
        assert await new.schema_version() == len(MIGRATIONS)
        kept = await new.error(with_pr)
        assert kept is not None and kept.state is State.PR_OPENED and kept.count == 1
        assert kept.resolved_at is None and kept.muted_until is None
        [pr] = await new.prs(kept.current_attempt_id or 0)
        assert (pr.state, pr.kind, pr.etag, pr.merged_at) == ("open", "fix", None, None)
        assert await new.transition(
            with_pr, State.PR_OPENED, State.MERGED, actor="github:octocat", reason="merged"
        )
        assert (await new.error(with_pr)).state is State.MERGED  # type: ignore[union-attr]
        assert raw_db(path).execute("PRAGMA foreign_key_check").fetchall() == []


async def test_failed_migration_is_rolled_back_whole(tmp_path):
    path = tmp_path / "console.db"
    async with await Store.open(path) as s:
        await awaiting(s)
    broken = "ALTER TABLE errors ADD COLUMN note TEXT; SELECT no_such_function();"
    with pytest.raises(StoreError, match=f"migration {len(MIGRATIONS) + 1} failed"):
        await Store.open(path, migrations=(*MIGRATIONS, broken))
    columns = [r[1] for r in raw_db(path).execute("PRAGMA table_info(errors)")]
    assert "note" not in columns
    async with await Store.open(path) as s:
        assert await s.schema_version() == len(MIGRATIONS)
        assert len(await s.errors()) == 1


async def test_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "console.db"
    async with await Store.open(path, migrations=(*MIGRATIONS, EXTRA)):
        pass
    with pytest.raises(StoreError, match="newer version") as info:
        await Store.open(path)
    assert f"schema version {len(MIGRATIONS) + 1}" in str(info.value)


async def test_files_that_are_not_a_console_database_are_refused(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        await Store.open(garbage)
    other = tmp_path / "other.db"
    raw_db(other).execute("CREATE TABLE stuff (x)")
    with pytest.raises(StoreError, match="not a LevAutoFix console database"):
        await Store.open(other)
    assert [r[0] for r in raw_db(other).execute("SELECT name FROM sqlite_master")] == ["stuff"]
    with pytest.raises(StoreError, match="is a directory"):
        await Store.open(tmp_path)


# --- crash safety -------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from agent.wire import ErrorEvent
    from console.store import Store

    BATCH = 50
    FPS = [f"{i:016x}" for i in range(7)]

    async def main(path):
        store = await Store.open(path)
        totals = {}
        seqs = {"web-1": 0, "web-2": 0}
        n = 0
        while True:
            host = "web-1" if n % 2 == 0 else "web-2"
            batch = []
            for _ in range(BATCH):
                seqs[host] += 1
                fp = FPS[(seqs[host] * 3) % len(FPS)]
                totals[host, fp] = totals.get((host, fp), 0) + 1
                batch.append(ErrorEvent(
                    type="update", seq=seqs[host], host=host, service="shop-api",
                    fingerprint=fp, count=totals[host, fp], severity="high",
                    message="x" * 200, error_type="Error", stack=["  at a (/a.js:1:1)"] * 5,
                    route=None, first_seen="2026-01-01T00:00:00.000Z",
                    last_seen="2026-01-01T00:00:01.000Z"))
            await store.ingest(host, batch)
            n += 1
            print(n, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


def kill_writer_after(path: Path, batches: int) -> None:
    """Run a process that ingests batches in a loop and SIGKILL it while it writes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        done = 0
        while done < batches and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            done = int(line)
        assert done >= batches, "the writer did not get going"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_killed_writer_leaves_a_consistent_database(tmp_path):
    path = tmp_path / "console.db"
    kill_writer_after(path, 30)
    db = raw_db(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    for host, last_seq in db.execute("SELECT name, last_seq FROM hosts"):
        count, top = db.execute(
            "SELECT COUNT(*), MAX(seq) FROM occurrences WHERE host = ?", (host,)
        ).fetchone()
        # Whole batches or nothing: seqs are contiguous and the position matches them.
        assert count == top == last_seq and count % 50 == 0
    # Each host's stored total is the count carried by its highest-seq event...
    mismatched = db.execute(
        """
        SELECT hc.error_id, hc.host FROM host_counts hc
        JOIN occurrences o ON o.host = hc.host AND o.seq = hc.last_seq
        WHERE o.count != hc.count OR o.error_id != hc.error_id
        """
    ).fetchall()
    assert mismatched == []
    # ...and since every event added one, an error's count is its number of occurrences.
    for error_id, count in db.execute("SELECT id, count FROM errors"):
        occurrences = db.execute(
            "SELECT COUNT(*) FROM occurrences WHERE error_id = ?", (error_id,)
        ).fetchone()[0]
        assert count == occurrences
    assert (
        db.execute("SELECT SUM(count) FROM errors").fetchone()[0]
        == db.execute("SELECT COUNT(*) FROM occurrences").fetchone()[0]
    )
    db.close()


async def test_store_reopens_and_resumes_after_a_kill(tmp_path):
    path = tmp_path / "console.db"
    kill_writer_after(path, 10)
    async with await Store.open(path) as s:
        assert await s.integrity_check() == ["ok"]
        last = await s.last_seq("web-1")
        before = sum(e.count for e in await s.errors())
        replay = await s.ingest("web-1", [event(last, 1, host="web-1")])
        assert replay[0].duplicate
        fresh = await s.ingest("web-1", [event(last + 1, 10_000, fingerprint=FP_B, kind="error")])
        assert fresh[0].created
        assert sum(e.count for e in await s.errors()) == before + 10_000


# --- Claude Code denials ------------------------------------------------------------------


async def test_denials_are_kept_with_their_attempt_and_survive_a_reopen(tmp_path):
    path = tmp_path / "console.db"
    denials = [
        Denial("Read", "/home/dev/.ssh/id_rsa", "rule", "deny rule Read(~/.ssh/**)", "toolu_01"),
        Denial("Bash", "curl http://x", "mode", "no allow rule for this command", "toolu_11"),
    ]
    async with await Store.open(path) as s:
        error_id = await awaiting(s)
        attempt = await s.create_attempt(error_id, actor="t")
        assert attempt is not None and attempt.denials == []
        await s.update_attempt(attempt.id, claude_denials=Denial.encode_all(denials))
    async with await Store.open(path) as s:
        stored = await s.attempt(attempt.id)
    assert stored is not None and stored.denials == denials


async def test_a_database_from_before_denials_gains_the_column_and_keeps_attempts(tmp_path):
    path = tmp_path / "console.db"
    async with await Store.open(path, migrations=MIGRATIONS[:1]):
        pass
    # Rows as that version wrote them (today's ingest writes columns it did not have).
    db = raw_db(path)
    error_id = db.execute(
        "INSERT INTO errors (service, fingerprint, error_type, message, stack, severity, "
        "first_seen, last_seen, state, created_at, updated_at) VALUES ('shop-api', ?, "
        "'TypeError', 'boom', '[]', 'medium', 'then', 'then', 'review', 'then', 'then') "
        "RETURNING id",
        (FP_A,),
    ).fetchone()[0]
    db.execute(
        "INSERT INTO attempts (error_id, state, started_at) VALUES (?, 'review', 'then')",
        (error_id,),
    )
    db.close()
    async with await Store.open(path) as new:
        assert await new.schema_version() == len(MIGRATIONS)
        (again,) = await new.attempts(error_id)
    assert again.state is State.REVIEW and again.started_at == "then" and again.denials == []


async def test_attempts_are_numbered_per_error_and_a_migrated_file_gets_numbers_in_order(
    tmp_path,
):
    path = tmp_path / "console.db"
    async with await Store.open(path, migrations=MIGRATIONS[:5]):
        pass
    db = raw_db(path)
    ids = [
        db.execute(
            "INSERT INTO errors (service, fingerprint, error_type, message, stack, severity, "
            "first_seen, last_seen, state, created_at, updated_at) VALUES ('shop-api', ?, "
            "'TypeError', 'boom', '[]', 'medium', 'then', 'then', 'failed', 'then', 'then') "
            "RETURNING id",
            (fingerprint,),
        ).fetchone()[0]
        for fingerprint in (FP_A, FP_B)
    ]
    # Global ids interleave across errors: a, b, a.
    for error_id in (ids[0], ids[1], ids[0]):
        db.execute(
            "INSERT INTO attempts (error_id, state, started_at) VALUES (?, 'failed', 'then')",
            (error_id,),
        )
    db.close()
    async with await Store.open(path) as store:
        first = [a.number for a in await store.attempts(error_id=ids[0])]
        second = [a.number for a in await store.attempts(error_id=ids[1])]
        assert (first, second) == ([1, 2], [1])
        # A new attempt continues its own error's count, not the global id.
        retried = await store.create_attempt(ids[1], actor="t")
        assert retried is not None and (retried.id, retried.number) == (4, 2)
        fresh = await store.create_attempt(await awaiting(store, "c3" * 8), actor="t")
        assert fresh is not None and (fresh.id, fresh.number) == (5, 1)
