"""An error's life after its PR, through the engine with real parts: the PR merged on the
GitHub stand-in (a real merge commit on the bare remote), polled with ETags, a start the
agent relayed, the quiet time, a regression, and the revert PR opened through the API.
The world is tests/engine_world.py's, through the ``world`` fixture."""

from __future__ import annotations

import time
from dataclasses import replace

from agent.wire import ErrorEvent, Start, iso
from console.engine import Engine
from console.events import Notice
from console.models import Action, ErrorRow, State
from tests.engine_world import World
from tests.service_repo import git


def quick(world: World, resolve_after_s: float = 1.0):
    """The world's config with a resolve time of seconds and polling every half second."""
    service = replace(world.config.services[0], resolve_after_minutes=resolve_after_s / 60)
    github = replace(world.config.github, poll_seconds=0.5)
    return replace(world.config, services=(service,), github=github)


async def published(world: World, engine: Engine) -> ErrorRow:
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok
    review = await world.error_in(State.REVIEW, timeout=120)
    assert (await engine.publish(review.current_attempt_id or 0, actor="keyboard")).ok
    return await world.error_in(State.PR_OPENED)


def occurrence(error: ErrorRow, seq: int, at: float, host: str = "prod-1") -> ErrorEvent:
    return ErrorEvent(
        type="update",
        seq=seq,
        host=host,
        service=error.service,
        fingerprint=error.fingerprint,
        count=error.hosts.get(host, 0) + 1,
        severity="high",
        message=error.message,
        error_type=error.error_type,
        stack=error.stack,
        route=error.route,
        first_seen=error.first_seen,
        last_seen=iso(at),
    )


async def test_a_merged_fix_resolves_after_a_start_and_quiet_then_regresses_and_is_reverted(
    world: World,
) -> None:
    engine = await world.start(quick(world))
    error = await published(world, engine)
    assert Action.REVERT not in engine.actions(error)
    [pr] = await engine.store.prs(error.current_attempt_id or 0)
    # While nothing changes, the poller asks with the ETag and GitHub answers 304.
    await world.until(lambda: len(world.github.reads(pr.number)) >= 3, 30, "polls")
    [pr] = await engine.store.prs(error.current_attempt_id or 0)
    assert pr.etag and pr.state == "open" and pr.checked_at
    assert world.github.reads(pr.number)[-1].headers.get("if-none-match") == pr.etag

    merge_sha = world.github.merge("acme/pa", pr.number, by="octocat")
    merged = await world.error_in(State.MERGED, timeout=30)
    decisions = await engine.store.decisions(error_id=merged.id)
    assert (decisions[-1].action, decisions[-1].actor) == ("merged", "github:octocat")
    [pr] = await engine.store.prs(merged.current_attempt_id or 0)
    assert (pr.state, pr.merge_sha, pr.merged_by) == ("merged", merge_sha, "octocat")

    # The old code still runs until the service restarts: not a regression, not resolved.
    await engine.ingest("prod-1", [occurrence(merged, 900, time.time())])
    assert (await engine.store.error(merged.id)).state is State.MERGED  # type: ignore[union-attr]
    await engine.lifecycle.sweep(time.time() + 3600)
    assert (await engine.store.error(merged.id)).state is State.MERGED  # type: ignore[union-attr]

    started = time.time() + 0.01
    start = Start(seq=901, host="prod-1", service="PA", at=iso(started), line="listening on :3000")
    await engine.ingest("prod-1", [start])
    assert await engine.store.last_seq("prod-1") >= 901
    resolved = await world.error_in(State.RESOLVED, timeout=30)
    assert resolved.resolved_at is not None
    why = (await engine.store.decisions(error_id=resolved.id))[-1]
    assert why.actor == "console" and "started again" in (why.reason or "")

    await engine.ingest("prod-1", [occurrence(resolved, 902, time.time() + 1)])
    regressed = await world.error_in(State.REGRESSED)
    assert regressed.regressed_at is not None
    assert any(
        isinstance(e, Notice) and e.level == "error" and "REGRESSED" in e.text for e in world.events
    )
    assert {Action.REVERT, Action.RETRY, Action.SKIP} <= engine.actions(regressed)

    reverted = await engine.revert(regressed.id, actor="telegram:7")
    assert reverted.ok, reverted.message
    [_, revert] = await engine.store.prs(regressed.current_attempt_id or 0)
    assert revert.kind == "revert" and revert.number == pr.number + 1
    post = world.github.posts()[-1]
    assert post.body["base"] == "main" and post.body["head"] == revert.branch
    assert f"Reverts #{pr.number}" in post.body["body"]
    # The pushed branch really reverts the merge: the fix's line is gone again.
    assert "if (!user) return null;" in git(world.bare, "show", "main:lib/users.js")
    reverted_file = git(world.bare, "show", f"{revert.branch}:lib/users.js")
    assert "if (!user) return null;" not in reverted_file
    again = await engine.revert(regressed.id, actor="keyboard")
    assert again.ok and "found the open" in again.message
    assert len(world.github.posts()) == 2, "a second revert finds the open PR"
    assert [d.action for d in await engine.store.decisions(error_id=regressed.id)][-2:] == [
        "revert",
        "revert",
    ]


async def test_a_pr_closed_without_merging_offers_retry_and_skip(world: World) -> None:
    engine = await world.start(quick(world))
    error = await published(world, engine)
    [pr] = await engine.store.prs(error.current_attempt_id or 0)
    world.github.close("acme/pa", pr.number)
    closed = await world.error_in(State.CLOSED, timeout=30)
    assert {Action.RETRY, Action.SKIP} <= engine.actions(closed)
    assert Action.REVERT not in engine.actions(closed)


async def test_a_mute_holds_for_n_occurrences_and_is_recorded_with_who(world: World) -> None:
    engine = await world.start(quick(world))
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert Action.MUTE in engine.actions(error)
    assert (await engine.mute(error.id, "telegram:7", occurrences=2)).ok
    muted = await engine.store.error(error.id)
    assert muted is not None and muted.muted_until_count == error.count + 2
    assert Action.UNMUTE in engine.actions(muted) and Action.MUTE not in engine.actions(muted)
    assert not (await engine.mute(error.id, "keyboard", minutes=5)).ok
    # Each host sends its own running total; the error's count is their sum.
    await engine.ingest("prod-2", [occurrence(muted, 950, time.time(), host="prod-2")])
    await engine.ingest("prod-3", [occurrence(muted, 951, time.time(), host="prod-3")])
    done = await engine.store.error(error.id)
    assert done is not None and done.count >= muted.count + 2
    assert Action.MUTE in engine.actions(done), "two more occurrences end the mute"
    assert (await engine.unmute(error.id, "keyboard")).ok is False
    actions = [(d.action, d.actor) for d in await engine.store.decisions(error_id=error.id)]
    assert ("mute", "telegram:7") in actions
