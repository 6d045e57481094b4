"""What only the PostgreSQL store has: its schema kept in step with SQLite's, databases it
refuses, the password from outside the config, and several consoles on one database.

The store's behaviour itself is pinned down for both backends by tests/test_store.py.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import replace

import pytest
from conftest import IN_CI, eventually
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire import ErrorEvent
from console.config import parse_config
from console.models import State
from console.secret import SecretError, store_password
from console.store import MIGRATIONS, HoldLost, Store, StoreError
from console.store.pg_schema import PG_MIGRATIONS
from tests.postgres_server import lock_holder, terminate

# The team extra's driver: without it these tests skip locally and fail under CI=true.
psycopg = __import__("psycopg") if IN_CI else pytest.importorskip("psycopg")


def _event(seq: int, count: int, host: str, fingerprint: str = "c0" * 8) -> ErrorEvent:
    return ErrorEvent(
        type="error" if seq == 1 else "update",
        seq=seq,
        host=host,
        service="shop-api",
        fingerprint=fingerprint,
        count=count,
        severity="high",
        message="boom",
        error_type="TypeError",
        stack=["    at f (/srv/app/x.js:1:1)"],
        route=None,
        first_seen="2026-01-01T00:00:00.000Z",
        last_seen=f"2026-01-01T00:00:{seq % 60:02d}.000Z",
    )


def _sqlite_columns(path) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: sorted(r[1] for r in db.execute(f"PRAGMA table_info({t})")) for t in tables}


def _pg_columns(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ).fetchall()
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return {t: sorted(c) for t, c in columns.items()}


async def test_both_backends_have_the_same_migrations_tables_and_columns(tmp_path, pg_database):
    assert len(PG_MIGRATIONS) == len(MIGRATIONS)
    path = tmp_path / "console.db"
    dsn = pg_database(empty=True)
    async with await Store.open(path) as lite, await Store.open(dsn) as pg:
        assert await lite.schema_version() == await pg.schema_version() == len(MIGRATIONS)
    assert _pg_columns(dsn) == _sqlite_columns(path)


async def test_opening_a_migrated_database_again_applies_nothing(pg_database):
    dsn = pg_database()
    async with await Store.open(dsn) as s:
        await s.ingest("web-1", [_event(1, 1, "web-1")])
    async with await Store.open(dsn) as s:
        assert await s.schema_version() == len(PG_MIGRATIONS)
        assert [e.count for e in await s.errors()] == [1]
        assert await s.integrity_check() == ["ok"]


async def test_consoles_opening_a_new_database_at_once_migrate_it_once(pg_database):
    dsn = pg_database(empty=True)
    stores = await asyncio.gather(*(Store.open(dsn) for _ in range(4)))
    try:
        assert {await s.schema_version() for s in stores} == {len(PG_MIGRATIONS)}
    finally:
        for s in stores:
            await s.close()
    with psycopg.connect(dsn) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in versions] == list(range(1, len(PG_MIGRATIONS) + 1))


async def test_a_database_with_other_tables_is_refused_untouched(pg_database):
    dsn = pg_database(empty=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(StoreError, match="not a LevAutoFix console database"):
        await Store.open(dsn)
    assert _pg_columns(dsn) == {"invoices": ["id"]}


async def test_a_database_from_a_newer_console_is_refused(pg_database):
    dsn = pg_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'later')")
    with pytest.raises(StoreError, match="schema version 999"):
        await Store.open(dsn)


async def test_a_failed_migration_is_rolled_back_and_named(pg_database):
    dsn = pg_database()
    broken = (*PG_MIGRATIONS, "ALTER TABLE errors ADD COLUMN note TEXT; SELECT no_such();")
    with pytest.raises(StoreError, match=f"schema migration {len(broken)} failed"):
        await Store.open(dsn, migrations=broken)
    assert "note" not in _pg_columns(dsn)["errors"]


async def test_a_dsn_holding_a_password_is_refused_before_connecting():
    with pytest.raises(StoreError, match="holds a password"):
        await Store.open("postgresql://autofix:secret@127.0.0.1:1/autofix")


async def test_the_password_comes_from_the_named_file_or_variable(
    postgres, pg_database, tmp_path, monkeypatch
):
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS teammate")
        conn.execute("CREATE ROLE teammate LOGIN SUPERUSER PASSWORD 'correct horse'")
    database = psycopg.conninfo.conninfo_to_dict(pg_database())["dbname"]
    dsn = postgres.dsn(database, user="teammate")
    secret = tmp_path / "store-password"
    secret.write_text("correct horse\n")
    by_file = parse_config({"store": dsn, "store_password_file": str(secret)})
    monkeypatch.setenv("TEAM_DB_PASSWORD", "correct horse")
    by_env = parse_config({"store": dsn, "store_password_env": "TEAM_DB_PASSWORD"})
    for config in (by_file, by_env):
        async with await Store.open(dsn, password=store_password(config)) as s:
            assert await s.schema_version() == len(PG_MIGRATIONS)
    with pytest.raises(StoreError, match="cannot connect"):
        await Store.open(dsn, password="wrong")
    monkeypatch.delenv("TEAM_DB_PASSWORD")
    with pytest.raises(SecretError, match=r"TEAM_DB_PASSWORD \(store_password_env\) is not set"):
        store_password(by_env)
    secret.write_text("  \n")
    with pytest.raises(SecretError, match=r"store_password_file .* is empty"):
        store_password(by_file)


async def test_two_hosts_creating_one_error_at_once_on_two_consoles_count_once_each(
    pg_database,
):
    dsn = pg_database()
    first, second = await Store.open(dsn), await Store.open(dsn)
    try:
        for round_ in range(10):
            fingerprint = f"{round_:016x}"
            a, b = await asyncio.gather(
                first.ingest("web-1", [_event(round_ + 1, 5, "web-1", fingerprint)]),
                second.ingest("web-2", [_event(round_ + 1, 7, "web-2", fingerprint)]),
            )
            assert a[0].error_id == b[0].error_id
        errors = await first.errors()
        assert len(errors) == 10
        assert {(e.count, tuple(sorted(e.hosts.items()))) for e in errors} == {
            (12, (("web-1", 5), ("web-2", 7)))
        }
    finally:
        await first.close()
        await second.close()


async def test_a_claim_on_a_row_held_by_ingest_waits_and_still_succeeds(pg_database):
    dsn = pg_database()
    async with await Store.open(dsn) as s:
        (result,) = await s.ingest("web-1", [_event(1, 1, "web-1")])
        assert await s.transition(result.error_id, State.NEW, State.AWAITING_APPROVAL)
        with psycopg.connect(dsn) as holder:
            holder.execute("SELECT 1 FROM errors WHERE id = %s FOR UPDATE", (result.error_id,))
            claim = asyncio.ensure_future(s.create_attempt(result.error_id, actor="keyboard"))
            await asyncio.sleep(0.5)
            assert not claim.done()
            holder.rollback()
        attempt = await asyncio.wait_for(claim, 30)
        assert attempt is not None and attempt.state is State.FIXING


async def test_a_host_whose_lock_connection_ends_is_lost_and_its_ingest_refused_at_once(
    pg_database,
):
    dsn = pg_database()
    reader, other = await Store.open(dsn), await Store.open(dsn)
    try:
        hold = await reader.hold_host("web-1")
        await reader.ingest("web-1", [_event(1, 1, "web-1")])
        pid = lock_holder(dsn, "host web-1")
        assert pid is not None
        terminate(dsn, pid)
        # Before this store has even noticed, a batch it read is refused, not stored.
        with pytest.raises(HoldLost, match="no longer holds host web-1"):
            await reader.ingest("web-1", [_event(2, 2, "web-1")])
        await asyncio.wait_for(hold.lost.wait(), 10)
        taken = await asyncio.wait_for(other.hold_host("web-1"), 10)
        await other.ingest("web-1", [_event(2, 2, "web-1"), _event(3, 3, "web-1")])
        # The first store asks again and waits while the other one holds the host.
        again = asyncio.ensure_future(reader.hold_host("web-1"))
        await asyncio.sleep(0.3)
        assert not again.done()
        with pytest.raises(HoldLost):
            await reader.ingest("web-1", [_event(4, 4, "web-1")])
        await other.close()
        await asyncio.wait_for(again, 10)
        assert not taken.lost.is_set()  # closing is not losing
        await reader.ingest("web-1", [_event(4, 4, "web-1")])
        [error] = await reader.errors()
        assert error.count == 4
        assert [h.last_seq for h in await reader.hosts()] == [4]
    finally:
        await reader.close()
        await other.close()


def _listener(server_dsn: str, store: Store) -> int | None:
    """The server backend a store listens for announcements on, once it does."""
    with psycopg.connect(server_dsn) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (f"autofix {store.session} listening",),
        ).fetchone()
    return int(row[0]) if row else None


async def test_changes_made_while_a_listener_reconnects_are_told_once_it_is_back(
    postgres, pg_database
):
    dsn = pg_database()
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    watcher, writer = await Store.open(dsn), await Store.open(dsn)
    told: list[tuple[str, int]] = []
    watcher.on_change(lambda kind, number: told.append((kind, number)))
    try:
        # The writer's connections are open before the database stops taking new ones.
        (first,) = await writer.ingest("web-1", [_event(1, 1, "web-1")])
        await eventually(lambda: ("error", first.error_id) in told, 10, "the first announcement")
        pid = await eventually(
            lambda: _listener(postgres.dsn(), watcher), 10, "the watcher to listen"
        )
        with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            try:
                terminate(postgres.dsn(), pid)
                told.clear()
                # Announced while nobody listens: the watcher cannot reconnect meanwhile.
                (other,) = await writer.ingest("web-1", [_event(2, 1, "web-1", "d1" * 8)])
                assert await writer.transition(first.error_id, State.NEW, State.AWAITING_APPROVAL)
                attempt = await writer.create_attempt(first.error_id, actor="keyboard")
                assert attempt is not None
                await writer.append_transcript(attempt.id, ['{"type": "system"}'])
                assert _listener(postgres.dsn(), watcher) is None and told == []
            finally:
                admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        expected = {
            ("error", first.error_id),
            ("error", other.error_id),
            ("attempt", attempt.id),
            ("transcript", attempt.id),
        }
        await eventually(lambda: expected <= set(told), 15, "the missed changes told")
        # Listening again, new changes are announced as they commit.
        told.clear()
        await writer.append_transcript(attempt.id, ['{"type": "assistant"}'])
        await eventually(lambda: ("transcript", attempt.id) in told, 10, "the new line told")
    finally:
        await watcher.close()
        await writer.close()


# One host's stream: each step is an occurrence of one of three errors (its running total
# rising by 1-3) at some severity; the stream is cut into batches and a batch may be resent.
_STEP = st.tuples(st.integers(0, 2), st.integers(1, 3), st.sampled_from(["low", "high"]))
_STREAM = st.tuples(
    st.lists(_STEP, min_size=1, max_size=30),
    st.lists(st.integers(1, 12), min_size=1, max_size=8),
    st.one_of(st.none(), st.integers(0, 7)),
)


def _batches(host: str, stream) -> tuple[list[list[ErrorEvent]], dict[str, int]]:
    """The host's batches as its link would hand them over, and each error's last total."""
    steps, sizes, resent = stream
    totals: dict[str, int] = {}
    events: list[ErrorEvent] = []
    for seq, (error, rise, severity) in enumerate(steps, 1):
        fingerprint = f"{error:016x}"
        totals[fingerprint] = totals.get(fingerprint, 0) + rise
        events.append(
            replace(_event(seq, totals[fingerprint], host, fingerprint), severity=severity)
        )
    batches: list[list[ErrorEvent]] = []
    start, turn = 0, 0
    while start < len(events):
        size = sizes[turn % len(sizes)]
        batches.append(events[start : start + size])
        start, turn = start + size, turn + 1
    if resent is not None:
        batches.append(batches[resent % len(batches)])
    return batches, totals


def _shown(errors) -> set[tuple]:
    return {(e.fingerprint, e.count, e.severity, e.last_seen, tuple(sorted(e.hosts.items())))
            for e in errors}  # fmt: skip


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_STREAM, _STREAM)
def test_two_consoles_ingesting_two_hosts_at_once_store_what_one_sqlite_console_stores(
    tmp_path, pg_database, first_stream, second_stream
) -> None:
    web1, totals1 = _batches("web-1", first_stream)
    web2, totals2 = _batches("web-2", second_stream)

    async def feed(store: Store, host: str, batches: list[list[ErrorEvent]]) -> None:
        for batch in batches:
            await store.ingest(host, batch)

    async def run() -> None:
        dsn = pg_database()
        async with (
            await Store.open(dsn) as first,
            await Store.open(dsn) as second,
            await Store.open(tmp_path / f"{os.urandom(6).hex()}.db") as lite,
        ):
            await asyncio.gather(feed(first, "web-1", web1), feed(second, "web-2", web2))
            await feed(lite, "web-1", web1)
            await feed(lite, "web-2", web2)
            shared = await first.errors()
            assert _shown(shared) == _shown(await lite.errors())
            assert {e.fingerprint: e.count for e in shared} == {
                fp: totals1.get(fp, 0) + totals2.get(fp, 0) for fp in totals1.keys() | totals2
            }

    asyncio.run(run())
