"""A team on one PostgreSQL store: two consoles (engines) sharing the queue, with real parts.

The world is tests/engine_world.py's (a real agent stream, repo, Claude Code CLI against the
Messages API stand-in, GitHub stand-in); the store is a database on the session's throwaway
PostgreSQL server. One console is a real ``autofix serve`` process where a test kills it; the
Telegram bot runs against the Bot API stand-in (tests/telegram_api.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace

from console.config import ConsoleConfig, TelegramConfig
from console.engine import HOLD_LOST, Engine
from console.events import (
    AttemptChanged,
    ClaudeActivity,
    EngineEvent,
    ErrorChanged,
    LinkChanged,
)
from console.fix.transcript import StreamParser
from console.models import State
from console.session import running
from console.store import Store
from tests.conftest import eventually
from tests.engine_world import World, fix_turns, seed_agent, write_serve_config
from tests.messages_api import Stall
from tests.postgres_server import lock_holder, terminate
from tests.telegram_api import TelegramApi
from tests.telegram_phone import OWNER, TOKEN_ENV


async def _console(world: World, dsn: str, name: str, events: list[EngineEvent]) -> Engine:
    """A console of the team: its own state directory, the shared store."""
    config = replace(world.config, store=dsn, state_dir=world.tmp / f"state-{name}")
    engine = await Engine.open(config)
    engine.subscribe(events.append)
    await engine.start()
    return engine


async def test_two_consoles_approving_one_error_at_once_start_one_attempt_and_both_see_it(
    world: World, pg_database
) -> None:
    dsn = pg_database()
    seen_a: list[EngineEvent] = []
    seen_b: list[EngineEvent] = []
    first = await _console(world, dsn, "a", seen_a)
    second = await _console(world, dsn, "b", seen_b)
    try:
        error = await world.until(
            lambda: _error_in(first.store, State.AWAITING_APPROVAL), 60, "the error to arrive"
        )
        # Only one console reads the host; the other says so.
        await world.until(
            lambda: any(isinstance(e, LinkChanged) and e.status.error for e in seen_a + seen_b),
            30,
            "one console to report the host read elsewhere",
        )
        results = await asyncio.gather(
            first.approve(error.id, "keyboard:alice@laptop"),
            second.approve(error.id, "telegram:7"),
        )
        assert sorted(r.ok for r in results) == [False, True]
        [attempt] = await second.store.attempts()
        [decision] = [d for d in await first.store.decisions() if d.action == "approve"]
        assert decision.actor in ("keyboard:alice@laptop", "telegram:7")
        # Whichever console runs it, the other sees it reach review, as it happens.
        for seen in (seen_a, seen_b):
            await world.until(
                lambda seen=seen: _told(seen, attempt.id, State.REVIEW),
                120,
                "both consoles to see the attempt in review",
            )
            assert any(
                isinstance(e, ErrorChanged) and e.error.id == error.id and e.error.count == 3
                for e in seen
            )
        reviewed = await first.store.attempt(attempt.id)
        assert reviewed is not None and reviewed.runner and reviewed.runner_session
        # The console not running it was shown Claude's output too, every line once.
        watching = seen_b if reviewed.runner_session == first.store.session else seen_a
        parser = StreamParser()
        stored = [e for line in await first.store.transcript(attempt.id) for e in parser.feed(line)]
        assert stored

        def watched() -> list[object]:
            return [e.event for e in watching if isinstance(e, ClaudeActivity)]

        await world.until(lambda: watched() == stored, 30, "the other console to show the run")
    finally:
        await first.stop()
        await second.stop()


def _told(seen: list[EngineEvent], attempt_id: int, state: State) -> bool:
    """Whether a console's listeners were told the attempt reached ``state``."""
    return any(
        isinstance(e, AttemptChanged) and e.attempt.id == attempt_id and e.attempt.state is state
        for e in seen
    )


def _log_of(world: World) -> bytes:
    """What the sample service logged for the world (tests/engine_world.node_error_log)."""
    return b"".join(p.read_bytes() for p in sorted(world.tmp.glob("logs-*/*-error.log")))


async def _error_in(store: Store, state: State):
    errors = await store.errors(state=state)
    return errors[0] if errors else None


async def test_a_console_killed_mid_attempt_is_seen_interrupted_and_its_host_taken_over(
    world: World, pg_database
) -> None:
    dsn = pg_database()
    world.api.turns = [Stall()]
    toml = world.tmp / "serve.toml"
    write_serve_config(toml, world.config, world.tmp, world.api, store=dsn)
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--config", str(toml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: list[EngineEvent] = []
    survivor: Engine | None = None
    try:
        watcher = await Store.open(dsn)
        try:

            async def fixing():
                attempts = await watcher.attempts(states=State.FIXING)
                return attempts[0] if attempts and world.api.conversation else None

            attempt = await world.until(fixing, 120, "the serve process to start a fix")
        finally:
            await watcher.close()
        survivor = await _console(world, dsn, "survivor", seen)
        assert attempt.runner_session != survivor.store.session
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

        async def interrupted():
            row = await survivor.store.attempt(attempt.id)
            return row if row is not None and row.state is State.INTERRUPTED else None

        await world.until(interrupted, 30, "the survivor to see the attempt interrupted")
        error = await survivor.store.error(attempt.error_id)
        assert error is not None and error.state is State.INTERRUPTED
        await world.until(
            lambda: _told(seen, attempt.id, State.INTERRUPTED),
            10,
            "the survivor's screen to be told",
        )
        # The survivor reads the host now: more occurrences arrive and are counted once.
        await world.until(
            lambda: any(isinstance(e, LinkChanged) and e.status.state == "connected" for e in seen),
            30,
            "the survivor to take the host over",
        )
        seed_agent(world.tmp / "agent-prod-1", _log_of(world), "prod-1", times=2)

        async def counted():
            row = await survivor.store.error(attempt.error_id)
            return row is not None and row.count == 5

        await world.until(counted, 60, "the new occurrences counted once")
        # A person can retry it on the surviving console.
        world.api.turns = fix_turns(world.worktree)
        assert (await survivor.retry(attempt.error_id, "keyboard:bob@desk")).ok
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout:
            proc.stdout.close()
        if survivor is not None:
            await survivor.stop()


def _bot_consoles(
    tmp_path, dsn: str, api: TelegramApi, monkeypatch
) -> Callable[[str], ConsoleConfig]:
    """The config of a team console named ``name``: the shared store, the bot on ``api``."""
    monkeypatch.setenv(TOKEN_ENV, api.token)
    telegram = TelegramConfig(
        enabled=True, token_env=TOKEN_ENV, api_base_url=api.url, allowed_user_ids=(OWNER,)
    )
    return lambda name: ConsoleConfig(state_dir=tmp_path / name, store=dsn, telegram=telegram)


async def test_one_console_of_the_team_runs_the_telegram_bot_and_another_takes_it_over(
    tmp_path, pg_database, monkeypatch
) -> None:
    dsn = pg_database()
    with TelegramApi() as api:
        config = _bot_consoles(tmp_path, dsn, api, monkeypatch)

        async with AsyncExitStack() as second_console:
            async with running(config("first"), links=False) as first:
                assert first.telegram is not None
                second = await second_console.enter_async_context(
                    running(config("second"), links=False)
                )
                await asyncio.sleep(1.0)
                assert second.telegram is None, "a second bot polls while the first runs"
                polls = len(api.calls_to("getUpdates", ok_only=False))
            # The first console stopped: the second console's bot starts and polls.
            await eventually(lambda: second.telegram is not None, 30, "the bot to move")
            await eventually(
                lambda: len(api.calls_to("getUpdates", ok_only=False)) > polls,
                30,
                "the second console's bot to poll",
            )


def _agent_events(world: World) -> int:
    """How many events the world's agent has to send (its outbox's own table)."""
    db = sqlite3.connect(world.tmp / "agent-prod-1" / "agent.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        db.close()


def _stored_seqs(dsn: str) -> list[int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq FROM occurrences WHERE host = 'prod-1' ORDER BY seq")
        return [int(seq) for (seq,) in rows.fetchall()]


async def test_a_console_whose_host_lock_connection_is_ended_stops_and_each_event_counts_once(
    world: World, pg_database
) -> None:
    dsn = pg_database()
    seen: list[EngineEvent] = []
    first = await _console(world, dsn, "a", seen)
    second = await _console(world, dsn, "b", seen)
    try:
        error = await world.until(
            lambda: _error_in(first.store, State.AWAITING_APPROVAL), 60, "the error to arrive"
        )
        log = _log_of(world)

        def flow(rounds: int) -> None:
            for _ in range(rounds):
                seed_agent(world.tmp / "agent-prod-1", log, "prod-1", times=1)

        # Events flow while the backend holding the host's lock is ended from outside.
        flowing = asyncio.ensure_future(asyncio.to_thread(flow, 20))
        pid = lock_holder(dsn, "host prod-1")
        assert pid is not None
        await asyncio.to_thread(terminate, dsn, pid)
        await flowing
        await eventually(
            lambda: lock_holder(dsn, "host prod-1") not in (None, pid),
            15,
            "a console to hold the host again",
        )
        assert any(isinstance(e, LinkChanged) and e.status.error == HOLD_LOST for e in seen)
        flow(5)

        async def counted() -> bool:
            row = await first.store.error(error.id)
            return row is not None and row.count == 3 + 25

        await world.until(counted, 60, "every occurrence counted")
        sent = _agent_events(world)
        [host] = await second.store.hosts()
        assert host.last_seq == sent
        assert _stored_seqs(dsn) == list(range(1, sent + 1))
    finally:
        await first.stop()
        await second.stop()


async def test_the_bot_whose_lock_connection_is_ended_stops_and_one_console_polls_again(
    tmp_path, pg_database, monkeypatch
) -> None:
    dsn = pg_database()
    with TelegramApi() as api:
        config = _bot_consoles(tmp_path, dsn, api, monkeypatch)

        async with (
            running(config("first"), links=False) as first,
            running(config("second"), links=False) as second,
        ):
            assert first.telegram is not None and second.telegram is None
            pid = lock_holder(dsn, "telegram bot")
            assert pid is not None
            terminate(dsn, pid)
            await eventually(
                lambda: lock_holder(dsn, "telegram bot") not in (None, pid),
                15,
                "a console to hold the bot again",
            )

            # The second console was waiting on the lock, so the server gave it the bot.
            def moved() -> bool:
                return first.telegram is None and second.telegram is not None

            await eventually(moved, 15, "the first bot to stop and the second to start")
            polls = len(api.calls_to("getUpdates", ok_only=False))
            await eventually(
                lambda: len(api.calls_to("getUpdates", ok_only=False)) > polls,
                30,
                "the bot to poll again",
            )
            assert moved()
