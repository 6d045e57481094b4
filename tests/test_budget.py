"""Cost and rate limits with the real Claude Code CLI against the scripted Messages API.

A day's budget spent holds the next attempt in the queue (not failed) until the budget is
raised in the config file and the config reloaded; a 429 from the API holds the queue
until the reset time (or a back-off) and the attempt runs again on its own; the per-attempt
budget and the fallback model reach the CLI's command line.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.budget import (
    BACKOFF_FIRST_SECONDS,
    BACKOFF_MAX_SECONDS,
    QueueGate,
    QueueHold,
    next_midnight,
    utc_day,
)
from console.config import parse_config
from console.events import Notice
from console.fix.transcript import RateLimitEvent, parse_line
from console.models import State
from console.widgets.header import hold_text
from tests.config_documents import toml_text
from tests.engine_world import World, fix_turns
from tests.messages_api import ApiError


def _with_claude(world: World, **claude: object) -> dict:
    document = copy.deepcopy(world.document)
    document["claude"].update(claude)
    return document


def _notices(world: World, text: str) -> list[str]:
    return [e.text for e in world.events if isinstance(e, Notice) and text in e.text]


async def test_a_spent_daily_budget_holds_the_next_attempt_until_a_raised_budget_is_reloaded(
    world: World, tmp_path: Path
) -> None:
    # A budget the first attempt's real cost (the CLI prices the stand-in's tokens) exceeds.
    config_file = tmp_path / "console.toml"
    config_file.write_text(toml_text(_with_claude(world, daily_budget_usd=0.0001)))
    engine = await world.start(parse_config(_with_claude(world, daily_budget_usd=0.0001)))
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok
    await world.error_in(State.REVIEW, timeout=120)
    [first] = await engine.store.attempts(error_id=error.id)
    assert first.claude_cost_usd and first.claude_cost_usd > 0.0001
    spent = await engine.store.daily_costs()
    assert spent == {utc_day(time.time()): pytest.approx(first.claude_cost_usd)}

    asked = len(world.api.conversation)
    retried = await engine.retry(error.id, actor="keyboard", instruction="try again")
    assert retried.ok and retried.attempt_id is not None
    await world.until(
        lambda: _notices(world, "daily Claude budget reached"), what="the budget notice"
    )
    await asyncio.sleep(1.0)
    waiting = await engine.store.attempt(retried.attempt_id)
    assert waiting is not None and waiting.state is State.FIXING and waiting.reason is None
    assert len(world.api.conversation) == asked, "a held attempt must not reach Claude"
    held = [e for e in world.events if isinstance(e, QueueHold) and e.over_budget]
    assert held and held[-1].daily_budget_usd == 0.0001

    # A bad file changes nothing and says which key is wrong.
    config_file.write_text(toml_text(_with_claude(world, daily_budget_usd="lots")))
    refused = await engine.reload_config(config_file)
    assert not refused.ok and "claude.daily_budget_usd" in refused.message
    config_file.write_text(toml_text(_with_claude(world, daily_budget_usd=50.0)))
    reloaded = await engine.reload_config(config_file)
    assert reloaded.ok and "$50.00" in reloaded.message

    await world.until(
        lambda: len(world.api.conversation) > asked, what="the held attempt reaching Claude"
    )
    await engine.wait_idle()
    second = await engine.store.attempt(retried.attempt_id)
    assert second is not None and second.state is State.REVIEW
    assert _notices(world, "the fix queue resumes")


async def test_a_429_with_a_reset_time_holds_the_queue_and_the_attempt_runs_again(
    world: World,
) -> None:
    reset = time.time() + 3
    refusal = ApiError(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        {
            "retry-after": "3",
            "anthropic-ratelimit-requests-reset": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset)
            ),
        },
    )
    turns = fix_turns(world.worktree)
    answers: list[str] = []

    def script(body: dict) -> object:
        # The first request of the day is refused; the run after the pause goes through.
        turn = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        if not answers:
            answers.append("429")
            return refusal
        answers.append("ok")
        return turns[turn] if turn < len(turns) else turns[-1]

    world.api.turns = script  # type: ignore[assignment]
    engine = await world.start()
    # The CLI does not pass a 429's headers on in its output: the queue backs off instead,
    # here for two seconds rather than the first minute.
    engine.gate.backoff_seconds = 2.0
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok

    notice = await world.until(
        lambda: _notices(world, "Claude rate-limited, resuming"), what="the rate-limit notice"
    )
    assert "is queued again" in notice[0] and "429" in notice[0]
    [attempt] = await engine.store.attempts(error_id=error.id)
    assert attempt.state is State.FIXING and attempt.reason is None
    held = await world.until(
        lambda: [e for e in world.events if isinstance(e, QueueHold) and e.rate_limited_until],
        what="the queue held for the rate limit",
    )
    assert held[0].rate_limited_until - time.time() <= 2.0
    # Nobody does anything: the queue resumes on its own and the same attempt runs again.
    await world.error_in(State.REVIEW, timeout=180)
    [done] = await engine.store.attempts(error_id=error.id)
    assert done.id == attempt.id and done.state is State.REVIEW
    assert answers[0] == "429" and "ok" in answers


def _recording_cli(tmp_path: Path, real: str) -> tuple[str, Path]:
    """A `claude` that writes its argv to a file, then is the real CLI."""
    argv = tmp_path / "argv"
    script = tmp_path / "claude-recording"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{argv}"\nexec "{real}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), argv


async def test_the_attempt_budget_and_the_fallback_model_reach_the_cli(
    world: World, tmp_path: Path
) -> None:
    command, argv = _recording_cli(tmp_path, world.document["claude"]["command"])
    config = parse_config(
        _with_claude(
            world, command=command, max_budget_usd=1.25, fallback_model="claude-sonnet-4-5"
        )
    )
    engine = await world.start(config)
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok
    await world.error_in(State.REVIEW, timeout=120)

    args = argv.read_text().splitlines()
    assert args[args.index("--max-budget-usd") + 1] == "1.25"
    assert args[args.index("--fallback-model") + 1] == "claude-sonnet-4-5"
    assert os.access(command, os.X_OK)


async def test_a_tiny_attempt_budget_stops_the_cli_and_fails_the_attempt_with_why(
    world: World,
) -> None:
    engine = await world.start(parse_config(_with_claude(world, max_budget_usd=0.000001)))
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok
    failed = await world.error_in(State.FAILED, timeout=120)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and "budget" in attempt.reason.lower()


def test_a_rejected_rate_limit_event_is_read_with_its_reset_time() -> None:
    line = (
        '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected",'
        '"resetsAt":1796032800,"rateLimitType":"five_hour"},"uuid":"u","session_id":"s"}'
    )
    assert parse_line(line) == [RateLimitEvent("rejected", 1796032800.0, "five_hour")]


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_gate_opens_at_utc_midnight_when_the_day_was_spent() -> None:
    clock = _Clock(1_796_083_190.0)  # 23:59:50 UTC
    spent = {utc_day(clock.now): 21.0}
    holds: list[QueueHold] = []

    async def spent_on(day: str) -> float:
        return spent.get(day, 0.0)

    gate = QueueGate(20.0, spent_today=spent_on, publish=holds.append, clock=clock)
    waiter = asyncio.create_task(gate.wait_open())
    await asyncio.sleep(0.1)
    assert not waiter.done() and holds[-1].over_budget
    clock.now = next_midnight(clock.now) + 1
    gate.poke()
    await asyncio.wait_for(waiter, 5)
    assert not holds[-1].held and holds[-1].spent_today_usd == 0.0


@pytest.mark.parametrize("turns", range(6))
async def test_a_worker_waiting_on_a_held_gate_stops_when_cancelled_even_as_it_is_poked(
    turns: int,
) -> None:
    """Stopping the engine cancels its workers; a poke landing in the same moment (an
    attempt's cost being recorded) must not swallow that cancellation."""
    clock = _Clock(1_796_083_190.0)

    async def spent_on(day: str) -> float:
        return 21.0  # over the budget all day: the gate stays shut

    gate = QueueGate(20.0, spent_today=spent_on, publish=lambda hold: None, clock=clock)
    waiter = asyncio.create_task(gate.wait_open())
    await asyncio.sleep(0.05)
    gate.poke()
    for _ in range(turns):  # the cancellation meets the poke at each step of its way
        await asyncio.sleep(0)
    waiter.cancel()
    done, _ = await asyncio.wait({waiter}, timeout=2)
    assert done and waiter.cancelled(), "the cancelled worker went on waiting at the gate"


@given(st.lists(st.none() | st.floats(min_value=-1e6, max_value=1e6), max_size=12))
async def test_back_off_doubles_per_refused_run_and_never_passes_its_cap(
    resets: list[float | None],
) -> None:
    clock = _Clock(1_800_000_000.0)

    async def nothing(day: str) -> float:
        return 0.0

    gate = QueueGate(20.0, spent_today=nothing, publish=lambda hold: None, clock=clock)
    previous = clock.now
    for i, reset in enumerate(resets):
        at = None if reset is None else clock.now + reset
        resume = gate.rate_limited(at, "429")
        assert resume >= previous
        if at is not None and at > clock.now:
            assert resume >= at
        else:
            step = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** min(i, 10))
            assert resume >= clock.now + step
        previous = resume


def test_the_header_says_when_a_rate_limited_queue_resumes_and_when_the_day_is_spent() -> None:
    resume = time.mktime((2026, 12, 1, 14, 5, 0, 0, 0, -1))
    limited = hold_text(QueueHold(3.2, 20.0, rate_limited_until=resume, rate_limit_reason="429"))
    assert limited.plain.startswith("Claude rate-limited, resuming 14:05")
    assert hold_text(QueueHold(20.5, 20.0)).plain == (
        "daily budget reached (today $20.50 of $20.00): fixes wait"
    )
    assert hold_text(QueueHold(0.25, 20.0)).plain == "today $0.2500 of $20.00"


def test_serve_reads_the_config_again_on_sigusr1(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    state = tmp_path / "state"
    config.write_text(f'state_dir = "{state}"\n[claude]\ndaily_budget_usd = 5.0\n')
    autofix = Path(sys.executable).with_name("autofix")
    proc = subprocess.Popen(
        [str(autofix), "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "Ctrl+C stops" in proc.stdout.readline()
        config.write_text(f'state_dir = "{state}"\n[claude]\ndaily_budget_usd = 75.0\n')
        proc.send_signal(signal.SIGUSR1)
        line = proc.stdout.readline()
        while line and "config reloaded" not in line:
            line = proc.stdout.readline()
        assert "daily Claude budget $75.00" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
