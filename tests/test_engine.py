"""The console engine end to end with real parts.

A real agent stream (local subprocess) delivers errors that a real Node.js service wrote;
fix attempts run in real git worktrees with the real Claude Code CLI against the scripted
Messages API stand-in; tests run with real `node --test`; PRs go to the GitHub stand-in
and branches to a real bare remote. The world is tests/engine_world.py's, through the
``world`` fixture in conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.config import parse_config
from console.engine import Engine
from console.events import AttemptChanged, ClaudeActivity, Notice
from console.models import TRANSITIONS, Action, AttemptRow, ErrorRow, State, error_name
from console.store import Store
from tests.engine_world import (
    World,
    breaking_turns,
    fix_turns,
    local_host,
    main_state,
    node_error_log,
    seed_agent,
    write_serve_config,
)
from tests.messages_api import (
    ApiError,
    Stall,
    Text,
    by_round,
    verdict_call,
)
from tests.service_repo import git


async def test_a_fix_starts_from_the_spare_checkout_and_stopping_leaves_no_spare(
    world: World,
) -> None:
    spare = world.repo / ".worktrees" / "ready"
    engine = await world.start()
    await engine.wait_ready_worktrees()
    inode = spare.stat().st_ino
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok

    await world.error_in(State.REVIEW, timeout=120)
    assert world.worktree.stat().st_ino == inode, "the attempt's worktree is the spare, renamed"
    await engine.wait_idle()
    await engine.wait_ready_worktrees()
    assert spare.stat().st_ino != inode, "the attempt's run over, a new spare is made"
    assert git(spare, "rev-parse", "HEAD") == git(world.bare, "rev-parse", "main")

    await engine.stop()
    world.engine = None
    assert not spare.exists()
    listed = git(world.repo, "worktree", "list", "--porcelain").splitlines()
    assert f"worktree {spare}" not in listed and f"worktree {world.worktree}" in listed


async def test_approved_error_is_fixed_tested_reviewed_and_opened_as_one_pr(world: World) -> None:
    before = main_state(world.repo)
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert error.hosts == {"prod-1": 3} and error.error_type == "TypeError"

    # The keyboard and Telegram approve at the same moment: one attempt.
    results = await asyncio.gather(
        engine.approve(error.id, actor="keyboard"), engine.approve(error.id, actor="telegram:7")
    )
    assert sorted(r.ok for r in results) == [False, True]
    assert "already decided" in next(r.message for r in results if not r.ok)

    review = await world.error_in(State.REVIEW, timeout=120)
    [attempt] = await engine.store.attempts(error_id=review.id)
    assert attempt.test_exit_code == 0
    assert attempt.diff and "+  if (!user) return null;" in attempt.diff
    assert attempt.claude_turns and attempt.claude_summary and "null" in attempt.claude_summary
    assert any(isinstance(e, ClaudeActivity) for e in world.events)
    transcript = await engine.store.transcript(attempt.id)
    assert any('"type":"result"' in line.replace(" ", "") for line in transcript)
    # The prompt carried the error as delimited data.
    prompt = world.api.conversation[0]["messages"][0]
    assert "Cannot read properties of undefined" in str(prompt)
    assert main_state(world.repo) == before, "the main checkout must not change"

    # Approving is not publishing: the reviewed diff goes out only through publish.
    refused = await engine.approve(review.id, actor="keyboard")
    assert not refused.ok
    assert refused.message == f"already decided: PA {review.error_type}: {review.message} is review"
    published = await asyncio.gather(
        engine.publish(attempt.id, actor="keyboard"), engine.publish(attempt.id, actor="telegram:7")
    )
    assert sorted(r.ok for r in published) == [False, True]
    done = await world.error_in(State.PR_OPENED)
    [final] = await engine.store.attempts(error_id=done.id)
    assert final.pr_number == 1 and final.pr_url
    [post] = world.github.posts()
    assert post.body["head"] == f"hotfix/auto-{world.fingerprint}" and post.body["base"] == "main"
    remote_heads = git(world.bare, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    assert f"hotfix/auto-{world.fingerprint}" in remote_heads.splitlines()
    pushed = git(world.bare, "show", f"hotfix/auto-{world.fingerprint}:lib/users.js")
    assert "if (!user) return null;" in pushed
    assert not world.worktree.exists(), "the worktree is removed once the PR is open"
    assert main_state(world.repo) == before
    decisions = await engine.store.decisions(error_id=done.id)
    assert len([d for d in decisions if d.action == "approve"]) == 1
    assert len([d for d in decisions if d.action == "open_pr"]) == 1


async def test_a_fix_whose_tests_still_fail_after_every_round_fails_with_the_last_output(
    world: World,
) -> None:
    world.api.turns = by_round(
        breaking_turns(world.worktree),
        [[Text("The field name is right."), verdict_call()]],  # rounds 2 and 3
    )
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok
    failed = await world.error_in(State.FAILED, timeout=120)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and attempt.reason.startswith("tests failed (exit 1)")
    assert attempt.test_exit_code == 1 and "fail" in (attempt.test_output_tail or "")
    assert attempt.diff and "user.nickname" in attempt.diff, "the diff is kept for reading"
    assert not world.worktree.exists()
    assert any(isinstance(e, Notice) and e.level == "error" for e in world.events)
    rounds = await engine.store.rounds(attempt.id)
    assert [(r.round, r.tests_passed) for r in rounds] == [(1, False), (2, False), (3, False)]
    assert len(await engine.store.test_results(attempt.id)) == 3


async def test_a_claude_api_error_fails_the_attempt_with_the_clis_own_message(
    world: World,
) -> None:
    world.api.turns = [ApiError(401, "authentication_error", "invalid x-api-key")]
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    failed = await world.error_in(State.FAILED, timeout=120)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and attempt.reason.startswith("Claude Code:")
    assert "401" in attempt.reason or "api" in attempt.reason.lower()
    assert not world.worktree.exists()


async def test_retry_with_an_instruction_reaches_the_prompt_and_skip_shelves_it(
    world: World,
) -> None:
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    await world.error_in(State.REVIEW, timeout=120)
    requests_before = len(world.api.conversation)
    result = await engine.retry(error.id, actor="keyboard", instruction="Also log the bad id.")
    assert result.ok
    await world.error_in(State.REVIEW, timeout=120)
    first_new = world.api.conversation[requests_before]
    assert "Also log the bad id." in str(first_new["messages"][0])
    attempts = await engine.store.attempts(error_id=error.id)
    assert [a.state for a in attempts] == [State.SKIPPED, State.REVIEW]
    assert attempts[1].extra_instruction == "Also log the bad id."

    skipped = await engine.skip(error.id, actor="keyboard")
    assert skipped.ok
    again = await engine.skip(error.id, actor="telegram:7")
    row = await world.error_in(State.SKIPPED)
    # Said as people read it: the error's name and the state word, not its id and enum value.
    name = error_name(row.service, row.error_type, row.message)
    assert again.message == f"already decided: {name} is skipped"
    assert row.current_attempt_id == attempts[1].id
    assert not world.worktree.exists()
    assert world.github.posts() == []


async def test_a_repo_path_that_is_not_a_repo_fails_the_attempt_clearly(world: World) -> None:
    not_repo = world.tmp / "not-a-repo"
    not_repo.mkdir()
    service = replace(world.config.services[0], repo=not_repo)
    config = replace(world.config, services=(service,))
    engine = await world.start(config)
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    failed = await world.error_in(State.FAILED)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and "not a git repository" in attempt.reason


async def test_a_missing_claude_fails_with_an_install_hint(world: World) -> None:
    config = replace(
        world.config, claude=replace(world.config.claude, command=str(world.tmp / "no-claude"))
    )
    engine = await world.start(config)
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.approve(error.id, actor="keyboard")
    failed = await world.error_in(State.FAILED)
    [attempt] = await engine.store.attempts(error_id=failed.id)
    assert attempt.reason and "install Claude Code" in attempt.reason
    assert not world.worktree.exists()


async def test_the_same_fault_on_two_hosts_is_one_error_with_summed_counts(
    world: World,
) -> None:
    host2, state2 = local_host(world.tmp, "prod-2")
    seed_agent(state2, node_error_log(world.tmp, payload="1234"), "prod-2", times=2)
    config = replace(
        world.config, hosts=(*world.config.hosts, parse_config({"hosts": [host2]}).hosts[0])
    )
    engine = await world.start(config)

    async def both():
        rows = await engine.store.errors(limit=10)
        return [r for r in rows if r.hosts == {"prod-1": 3, "prod-2": 2}]

    [row] = await world.until(both, 30, "both hosts counted")
    assert row.count == 5 and row.fingerprint == world.fingerprint


async def test_auto_approve_starts_a_fix_for_configured_severities(world: World) -> None:
    config = replace(world.config, auto_approve=("low", "medium", "high", "critical"))
    engine = await world.start(config)
    await world.error_in(State.REVIEW, timeout=120)
    decisions = await engine.store.decisions()
    assert any(d.actor == "auto" and d.action == "approve" for d in decisions)


async def test_a_console_killed_during_a_fix_recovers_the_attempt_as_interrupted(
    world: World,
) -> None:
    world.api.turns = [Stall()]
    toml = world.tmp / "console.toml"
    write_serve_config(toml, world.config, world.tmp, world.api)
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--config", str(toml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    db = world.config.db_path
    try:

        def fixing() -> bool:
            if not db.exists() or not world.worktree.exists():
                return False
            conn = sqlite3.connect(db)
            try:
                rows = conn.execute("SELECT state FROM attempts").fetchall()
            except sqlite3.OperationalError:
                return False
            finally:
                conn.close()
            return rows == [("fixing",)] and bool(world.api.conversation)

        await world.until(fixing, 90, "the serve process to start a fix")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout:
            proc.stdout.close()

    engine = await world.start(links=False)
    [attempt] = await engine.store.attempts()
    assert attempt.state is State.INTERRUPTED
    error = await engine.store.error(attempt.error_id)
    assert error is not None and error.state is State.INTERRUPTED and error.count == 3
    assert not world.worktree.exists(), "the half-done worktree is cleaned up"
    assert any(isinstance(e, Notice) and "interrupted" in e.text for e in world.events)
    # A person can retry it.
    world.api.turns = fix_turns(world.worktree)
    assert (await engine.retry(error.id, actor="keyboard")).ok
    await world.error_in(State.REVIEW, timeout=120)
    changes = [e for e in world.events if isinstance(e, AttemptChanged)]
    assert changes


# --- the flow rule ---------------------------------------------------------------------------

# What each decision does to the error's state, as the store's transitions name it (None:
# the state stays; a mute changes notifications, a revert opens a PR of its own).
ENTERS = {
    Action.APPROVE: State.FIXING,
    Action.RETRY: State.FIXING,
    Action.SKIP: State.SKIPPED,
    Action.REOPEN: State.AWAITING_APPROVAL,
    Action.PUBLISH: State.PR_OPENED,
    Action.REVERT: None,
    Action.MUTE: None,
    Action.UNMUTE: None,
}
# Every error a person has met can be muted (an unmuted one; a muted one is unmuted).
MUTE = {Action.MUTE}
# The whole flow as a person meets it, for a service the config names.
EXPECTED = {
    State.NEW: set(),
    State.AWAITING_APPROVAL: {Action.APPROVE, Action.SKIP, *MUTE},
    State.FIXING: {*MUTE},
    State.TESTING: {*MUTE},
    State.REVIEW: {Action.PUBLISH, Action.SKIP, Action.RETRY, *MUTE},
    State.FAILED: {Action.RETRY, Action.SKIP, *MUTE},
    State.INTERRUPTED: {Action.RETRY, Action.SKIP, *MUTE},
    State.SKIPPED: {Action.REOPEN, *MUTE},
    State.PUSHED: {*MUTE},
    State.PR_OPENED: {*MUTE},
    State.MERGED: {*MUTE},
    State.CLOSED: {Action.RETRY, Action.SKIP, *MUTE},
    State.RESOLVED: {*MUTE},
    State.REGRESSED: {Action.REVERT, Action.RETRY, Action.SKIP, *MUTE},
    State.ESCALATING: {Action.REOPEN, Action.SKIP, *MUTE},
}


def error_row(state: State, service: str, attempt_id: int | None) -> ErrorRow:
    return ErrorRow(
        id=1, service=service, fingerprint="fp", error_type="TypeError", message="x",
        stack=[], route=None, severity="high", count=1, hosts={"prod-1": 1},
        first_seen="", last_seen="", state=state, created_at="", updated_at="",
        current_attempt_id=attempt_id,
    )  # fmt: skip


@pytest.fixture
def flow_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine that is never started: the flow rule needs its config only."""
    config = parse_config(
        {"state_dir": str(tmp_path), "services": [{"name": "PA", "repo": str(tmp_path)}]}
    )
    store = asyncio.run(Store.open(config.db_path))
    yield Engine(config, store)
    asyncio.run(store.close())


def test_the_possible_decisions_for_each_state_are_the_flow_as_a_person_meets_it(
    flow_engine: Engine,
) -> None:
    for state, expected in EXPECTED.items():
        attempt = None if state in (State.NEW, State.AWAITING_APPROVAL) else 7
        assert flow_engine.actions(error_row(state, "PA", attempt)) == expected, state


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    state=st.sampled_from(list(State)),
    attempt_state=st.sampled_from(list(State)),
    service=st.sampled_from(["PA", "billing"]),
    current=st.sampled_from([None, 7]),
    shown=st.sampled_from([None, 7, 8]),
)
def test_every_possible_decision_is_a_transition_the_store_allows(
    flow_engine: Engine,
    state: State,
    attempt_state: State,
    service: str,
    current: int | None,
    shown: int | None,
) -> None:
    error = error_row(state, service, current)
    attempt = None if shown is None else AttemptRow(id=shown, error_id=1, state=attempt_state)
    allowed = flow_engine.actions(error, attempt)
    for action in allowed:
        enters = ENTERS[action]
        assert enters is None or enters in TRANSITIONS[state], (state, action)
    assert allowed <= EXPECTED[state]
    if service == "billing":  # no [[services]] entry: it can be shelved, never fixed
        assert not allowed & {Action.APPROVE, Action.RETRY}
    if attempt is not None and attempt.id != current:
        assert allowed == frozenset(), "nothing to decide about an attempt that was replaced"
    if Action.PUBLISH in allowed:
        assert current is not None and (attempt is None or attempt.state is State.REVIEW)


async def test_commands_refuse_what_the_flow_rule_does_not_allow_and_say_why(
    world: World,
) -> None:
    engine = await world.start()
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert engine.actions(error) == {Action.APPROVE, Action.SKIP, Action.MUTE}
    # Named by service, type and message, in the state words the table shows.
    name = f"PA {error.error_type}: {error.message}"
    retry = await engine.retry(error.id, actor="keyboard")
    assert retry.message == f"cannot retry: {name} is awaiting approval"
    assert (await engine.reopen(error.id, actor="keyboard")).message == f"{name} is not skipped"
    # A decision about an attempt the error does not have is refused.
    stale = await engine.skip(error.id, actor="telegram:7", attempt_id=41)
    assert stale.message == f"already decided: {name} has moved on"
    assert (await engine.skip(error.id, actor="keyboard", attempt_id=None)).ok
    skipped = await world.error_in(State.SKIPPED)
    assert engine.actions(skipped) == {Action.REOPEN, Action.MUTE}
    assert not (await engine.approve(error.id, actor="keyboard")).ok

    # `autofix fix`'s command: a skipped error is reopened and its fix started.
    started = await engine.fix(error.id, actor="cli")
    assert started.ok and started.attempt_id is not None
    running = await engine.fix(error.id, actor="cli")
    assert running.ok and running.attempt_id == started.attempt_id, "no second attempt"
    await world.error_in(State.REVIEW, timeout=120)
    decisions = await engine.store.decisions(error_id=error.id)
    assert [(d.action, d.actor) for d in decisions] == [
        ("skip", "keyboard"),
        ("reopen", "cli"),
        ("approve", "cli"),
    ]
