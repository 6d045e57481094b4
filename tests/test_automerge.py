"""Auto-merge end to end: the real agent stream, the real Claude Code CLI against the
Messages API stand-in, the caged test run, a real bare remote and the GitHub stand-in's
checks and merge endpoint. Soaks are seconds long."""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import pytest
from textual.widgets import Static

from agent.wire import Start, iso
from console.app import AutofixApp
from console.automerge.plan import MERGED_ACTION, MergePlan, MergeStep
from console.config import parse_config
from console.engine import Engine
from console.events import AutoMergeChanged, ErrorChanged, Notice
from console.models import Action, AttemptRow, ErrorRow, State
from console.screens.review import ReviewScreen
from console.widgets.errors_table import ErrorsTable
from tests.conftest import eventually
from tests.engine_world import World, fix_turns, fix_with_test_turns
from tests.messages_api import ToolCall
from tests.service_repo import git
from tests.telegram_api import Message, parse_html
from tests.telegram_phone import OWNER, world_bot
from tests.test_app import composed
from tests.test_lifecycle_engine import occurrence

POLL = 0.2


def with_auto_merge(world: World, **policy: Any) -> Any:
    document = copy.deepcopy(world.document)
    document["services"][0]["auto_merge"] = {"enabled": True, "soak_minutes": 0.02, **policy}
    return parse_config(document)


async def start(world: World, **policy: Any) -> Engine:
    engine = await world.start(with_auto_merge(world, **policy))
    engine.auto_merge.poll_seconds = POLL
    return engine


async def open_pr(world: World, engine: Engine) -> tuple[ErrorRow, AttemptRow]:
    """Approve the error, wait for the tested fix, publish it: the PR is open."""
    error = await world.error_in(State.AWAITING_APPROVAL)
    assert (await engine.approve(error.id, actor="keyboard")).ok
    review = await world.error_in(State.REVIEW, timeout=120)
    assert review.current_attempt_id is not None
    published = await engine.publish(review.current_attempt_id, actor="keyboard")
    assert published.ok, published.message
    done = await world.error_in(State.PR_OPENED)
    attempt = await engine.store.attempt(review.current_attempt_id)
    assert attempt is not None and attempt.pr_number is not None and attempt.branch
    return done, attempt


async def plan_at(
    world: World, engine: Engine, attempt: AttemptRow, *steps: MergeStep
) -> MergePlan:
    def reached() -> MergePlan | None:
        plan = engine.auto_merge.plan(attempt.id)
        return plan if plan is not None and plan.step in steps else None

    plan: MergePlan = await world.until(reached, 60, f"auto-merge at {steps}")
    return plan


def merges(world: World) -> list[Any]:
    return [r for r in world.github.requests if r.method == "PUT" and r.path.endswith("/merge")]


def notices(world: World) -> list[str]:
    return [e.text for e in world.events if isinstance(e, Notice)]


async def test_a_small_tested_fix_is_squash_merged_through_the_api_after_green_checks_and_the_soak(
    world: World,
) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await start(world)
    before = git(world.bare, "rev-parse", "refs/heads/main").strip()
    error, attempt = await open_pr(world, engine)

    waiting = await plan_at(world, engine, attempt, MergeStep.CHECKS)
    await world.until(
        lambda: "no checks reported yet" in (engine.auto_merge.plan(attempt.id) or waiting).line(),
        30,
        "the PR's checks read",
    )
    assert Action.STOP_MERGE in engine.actions(error)
    world.github.report_check(attempt.branch or "", "build", repo="acme/pa", status="in_progress")
    world.github.report_status(attempt.branch or "", "ci/lint", "success", repo="acme/pa")
    await world.until(
        lambda: "checks running: 1 of 2" in (engine.auto_merge.plan(attempt.id) or waiting).line(),
        30,
        "the running check shown",
    )
    assert not merges(world)
    world.github.report_check(attempt.branch or "", "build", repo="acme/pa")

    soaking = await plan_at(world, engine, attempt, MergeStep.SOAKING, MergeStep.MERGED)
    assert soaking.gates.passed
    assert soaking.gates.summary().startswith("5 lines, only stack files, tests pass, checks green")
    assert any(
        t.startswith("auto-merge in ") and "tests pass, checks green" in t for t in notices(world)
    )

    merged = await plan_at(world, engine, attempt, MergeStep.MERGED)
    [put] = merges(world)
    head = git(world.bare, "rev-parse", f"refs/heads/{attempt.branch}").strip()
    assert put.body["merge_method"] == "squash" and put.body["sha"] == head
    tip = git(world.bare, "rev-parse", "refs/heads/main").strip()
    assert git(world.bare, "rev-parse", f"{tip}^").strip() == before
    assert git(world.bare, "log", "-1", "--format=%cn", tip).strip() == "GitHub"
    assert "if (!user) return null;" in git(world.bare, "show", f"{tip}:lib/users.js")
    assert merged.note == tip[:12]
    decided = [
        d for d in await engine.store.decisions(error_id=error.id) if d.action == MERGED_ACTION
    ]
    assert len(decided) == 1 and decided[0].actor == "auto-merge"
    assert "5 lines, only stack files, tests pass, checks green, risk low" in (
        decided[0].reason or ""
    )
    assert Action.STOP_MERGE not in engine.actions(error)
    assert any(
        isinstance(e, AutoMergeChanged) and e.plan.step is MergeStep.MERGED for e in world.events
    )


async def test_a_person_stops_the_merge_during_the_soak_and_the_pr_stays_open(
    world: World,
) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await start(world, require_checks=False, soak_minutes=10)
    error, attempt = await open_pr(world, engine)
    soaking = await plan_at(world, engine, attempt, MergeStep.SOAKING)
    assert soaking.line().startswith("auto-merge in 10 min: 5 lines")
    stopped = await engine.stop_merge(error.id, actor="telegram:7")
    assert stopped.ok, stopped.message
    plan = await plan_at(world, engine, attempt, MergeStep.STOPPED)
    assert plan.line() == "auto-merge stopped by telegram:7"
    again = await engine.stop_merge(error.id, actor="keyboard")
    assert not again.ok and "no auto-merge to stop" in again.message
    assert Action.STOP_MERGE not in engine.actions(error)
    assert not merges(world)
    assert world.github.pulls["acme/pa"][0]["state"] == "open"
    decided = await engine.store.decisions(error_id=error.id)
    assert [d.actor for d in decided if d.action == "stop_auto_merge"] == ["telegram:7"]

    # A restarted console remembers the stop: nothing starts soaking again.
    await engine.stop()
    world.engine = None
    engine = await start(world, require_checks=False, soak_minutes=0)
    assert engine.auto_merge.plan(attempt.id) is None
    assert Action.STOP_MERGE not in engine.actions(error)


async def _refused(world: World, engine: Engine, *, asked: int = 0) -> tuple[MergePlan, ErrorRow]:
    """Publish the fix and wait for auto-merge to refuse it; ``asked``: merge requests made."""
    error, attempt = await open_pr(world, engine)
    plan = await plan_at(world, engine, attempt, MergeStep.REFUSED, MergeStep.MERGED)
    assert plan.step is MergeStep.REFUSED, plan.line()
    assert len(merges(world)) == asked, "a refused fix is never merged"
    assert world.github.pulls["acme/pa"][0]["state"] == "open"
    assert any(plan.note in t and "it stays open" in t for t in notices(world))
    return plan, error


def _fix_with_test(world: World) -> list[Any]:
    return fix_with_test_turns(world.worktree)


def _edit_another_file(world: World) -> list[Any]:
    products = str(world.worktree / "lib" / "products.js")
    turns = fix_with_test_turns(world.worktree)
    extra = ToolCall(
        "Edit",
        {"file_path": products, "old_string": "'use strict';", "new_string": "'use strict';\n"},
    )
    return [*turns[:2], [extra], *turns[2:]]


@pytest.mark.parametrize(
    ("policy", "turns", "reason"),
    [
        ({"max_changed_lines": 2}, _fix_with_test, "5 lines, above max_changed_lines 2"),
        ({}, _edit_another_file, "lib/products.js not in the stack"),
        ({}, lambda w: fix_turns(w.worktree), "tests pass but no test file changed"),
        (
            {},
            lambda w: fix_with_test_turns(w.worktree, risk="medium"),
            "risk medium, above max_risk low",
        ),
        ({"never_paths": ["lib/users.js"]}, _fix_with_test, "touches lib/users.js (never_paths)"),
    ],
    ids=["lines", "stack", "tests", "risk", "never_paths"],
)
async def test_a_fix_failing_a_gate_is_not_merged_and_the_reason_is_shown(
    world: World, policy: dict[str, Any], turns: Any, reason: str
) -> None:
    world.api.turns = turns(world)
    engine = await start(world, **policy)
    plan, _ = await _refused(world, engine)
    assert reason in plan.note


async def test_failing_pr_checks_stop_the_merge_with_the_check_named(world: World) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await start(world)
    _, attempt = await open_pr(world, engine)
    await plan_at(world, engine, attempt, MergeStep.CHECKS)
    world.github.report_check(attempt.branch or "", "build", repo="acme/pa", conclusion="failure")
    plan = await plan_at(world, engine, attempt, MergeStep.REFUSED)
    assert plan.note == "checks failed: build"
    assert not merges(world)


async def test_the_daily_limit_holds_back_the_next_fix(world: World) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await start(world, daily_limit=1, require_checks=False)
    error = await world.error_in(State.AWAITING_APPROVAL)
    await engine.store.note_decision(error.id, MERGED_ACTION, "auto-merge", "an earlier merge")
    plan, _ = await _refused(world, engine)
    assert plan.note == "daily limit reached: 1 of 1 today"


async def test_telegram_says_when_it_merges_and_why_and_its_stop_button_stops_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = with_auto_merge(world, require_checks=False, soak_minutes=30)
    world.api.turns = fix_with_test_turns(world.worktree)
    async with world_bot(world, config, monkeypatch) as (api, _, engine):
        await engine.start()
        _, attempt = await open_pr(world, engine)

        def merge_message() -> Message | None:
            return next((m for m in api.chat(OWNER) if "Auto-merge" in m.text), None)

        message = await world.until(merge_message, 30, "the auto-merge message")
        text = parse_html(message.text)
        assert "auto-merge in 30 min: 5 lines, only stack files, tests pass" in text
        assert "tap to stop" in text
        assert [b["text"] for b in message.buttons()] == ["Stop auto-merge"]
        query = api.tap(OWNER, message, message.button("Stop auto-merge")["callback_data"])
        await world.until(lambda: api.answer_to(query), 20, "the button's answer")
        plan = await plan_at(world, engine, attempt, MergeStep.STOPPED)
        assert plan.note == f"telegram:{OWNER}"

        def edited() -> Message | None:
            found = merge_message()
            return found if found is not None and "stopped by" in found.text else None

        final = await world.until(edited, 20, "the message saying it was stopped")
        assert final.buttons() == []
        assert not merges(world)


async def test_the_review_screen_lists_every_gate_and_x_stops_the_merge(world: World) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await start(world, require_checks=False, soak_minutes=30)
    error, attempt = await open_pr(world, engine)
    await plan_at(world, engine, attempt, MergeStep.SOAKING)
    app = AutofixApp(engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await eventually(
            lambda: app.main_screen.query_one(ErrorsTable).select_error(error.id), 30, "the row"
        )
        await pilot.pause()
        assert app.main_screen.check_action("auto_merge", ()) is True
        await pilot.press("d")
        review = await eventually(lambda: composed(app, ReviewScreen), 10, "the review")
        panel = review.query_one("#review-merge", Static)
        shown = str(panel.render())
        assert "auto-merge in 30 min: 5 lines" in shown
        for line in ("✓ lines  5 lines", "✓ stack  only stack files", "✓ tests  tests pass",
                     "✓ risk   risk low", "✓ daily  0 of 3 today", "x stops it"):  # fmt: skip
            assert line in shown, (line, shown)
        await pilot.press("x")
        await plan_at(world, engine, attempt, MergeStep.STOPPED)
        await eventually(
            lambda: "auto-merge stopped by keyboard" in str(panel.render()), 10, "the stop shown"
        )
        await eventually(lambda: review.check_action("auto_merge", ()) is None, 10, "x greyed")
    assert not merges(world)


async def test_a_merge_github_refuses_is_said_with_githubs_reason_and_the_pr_stays_open(
    world: World,
) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    world.github.unmergeable[1] = "At least 1 approving review is required by reviewers"
    engine = await start(world, require_checks=False)
    before = git(world.bare, "rev-parse", "refs/heads/main")
    plan, _ = await _refused(world, engine, asked=1)
    assert "GitHub will not merge pull request #1" in plan.note
    assert "approving review is required" in plan.note
    assert git(world.bare, "rev-parse", "refs/heads/main") == before


def _slow_polling(world: World, **policy: Any) -> Any:
    """Auto-merge on, GitHub polled once an hour: whatever follows a merge is auto-merge's
    own doing, not the poller's."""
    config = with_auto_merge(world, require_checks=False, **policy)
    return dataclasses.replace(config, github=dataclasses.replace(config.github, poll_seconds=3600))


async def _auto_merged(world: World, engine: Engine) -> tuple[ErrorRow, AttemptRow]:
    _, attempt = await open_pr(world, engine)
    await plan_at(world, engine, attempt, MergeStep.MERGED)
    merged = await world.error_in(State.MERGED, timeout=10)
    return merged, attempt


async def _regress(world: World, engine: Engine, error: ErrorRow) -> ErrorRow:
    """The host starts again on the merged code and the error occurs after that start."""
    started = time.time()
    start = Start(seq=901, host="prod-1", service="PA", at=iso(started), line="listening on :3000")
    await engine.ingest("prod-1", [start, occurrence(error, 902, started + 1)])
    regressed: ErrorRow = await world.error_in(State.REGRESSED, timeout=10)
    return regressed


async def test_an_auto_merged_pr_is_marked_merged_at_once_not_on_the_next_poll(
    world: World,
) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await world.start(_slow_polling(world))
    error, attempt = await _auto_merged(world, engine)
    tip = git(world.bare, "rev-parse", "refs/heads/main").strip()
    [pr] = await engine.store.prs(attempt.id)
    assert (pr.state, pr.merge_sha, pr.merged_by) == ("merged", tip, "auto-merge")
    assert pr.merged_at is not None
    decided = await engine.store.decisions(error_id=error.id)
    moved = [d for d in decided if d.to_state is State.MERGED]
    assert [(d.actor, d.from_state) for d in moved] == [("auto-merge", State.PR_OPENED)]
    assert f"squash-merged as {tip[:12]}" in (moved[0].reason or "")
    assert any(isinstance(e, ErrorChanged) and e.error.state is State.MERGED for e in world.events)
    # Polled only when the PR opened: the merge came from auto-merge itself.
    assert len(world.github.reads(pr.number)) == 1


async def test_a_regressed_auto_merged_fix_is_reverted_and_its_service_paused(
    world: World,
) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await world.start(_slow_polling(world, revert_on_regression=True))
    error, attempt = await _auto_merged(world, engine)
    regressed = await _regress(world, engine, error)

    paused = await world.until(lambda: engine.auto_merge.paused("PA"), 10, "the pause")
    assert paused.startswith("auto-merged PR #1 regressed: occurred again at ")
    assert Action.RESUME_MERGE in engine.actions(regressed)

    async def revert_pr() -> Any:
        prs = await engine.store.prs(attempt.id)
        return next((p for p in prs if p.kind == "revert"), None)

    revert = await world.until(revert_pr, 60, "the revert PR")
    post = world.github.posts()[-1]
    assert post.body["head"] == revert.branch and "Reverts #1" in post.body["body"]
    assert "if (!user) return null;" not in git(world.bare, "show", f"{revert.branch}:lib/users.js")
    decided = [(d.action, d.actor) for d in await engine.store.decisions(error_id=error.id)]
    assert decided[-3:] == [
        ("regressed", "console"),
        ("pause_auto_merge", "auto-merge"),
        ("revert", "auto-merge"),
    ]
    assert await engine.unanswered_regressions() == [], "the revert answers the regression"
    said = notices(world)
    assert any("auto-merge for PA is paused (auto-merged PR #1 regressed" in t for t in said)
    assert any(f"opened revert pull request #{revert.number}" in t for t in said)
    assert any(
        isinstance(e, AutoMergeChanged) and e.plan.attempt_id == attempt.id for e in world.events
    )

    # A person resumes it; a restarted console keeps the resume.
    resumed = await engine.resume_merge(error.id, actor="keyboard")
    assert resumed.ok and resumed.noticed
    assert engine.auto_merge.paused("PA") is None
    await engine.stop()
    world.engine = None
    engine = await world.start(_slow_polling(world, revert_on_regression=True))
    assert engine.auto_merge.paused("PA") is None


async def test_without_revert_on_regression_a_regression_pauses_and_leaves_the_revert_to_a_person(
    world: World,
) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    engine = await world.start(_slow_polling(world))
    error, attempt = await _auto_merged(world, engine)
    regressed = await _regress(world, engine, error)
    assert engine.auto_merge.paused("PA") is not None
    assert {Action.REVERT, Action.RESUME_MERGE} <= engine.actions(regressed)
    assert any("revert_on_regression is off" in t for t in notices(world))
    assert [e.id for e in await engine.unanswered_regressions()] == [regressed.id]
    assert [p.kind for p in await engine.store.prs(attempt.id)] == ["fix"]
    # Still paused after a restart, until a person resumes it.
    await engine.stop()
    world.engine = None
    engine = await world.start(_slow_polling(world))
    assert (engine.auto_merge.paused("PA") or "").startswith("auto-merged PR #1 regressed")


async def test_telegram_says_the_pause_of_a_regressed_auto_merge_and_its_resume_button_resumes_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.api.turns = fix_with_test_turns(world.worktree)
    async with world_bot(world, _slow_polling(world), monkeypatch) as (api, _, engine):
        await engine.start()
        error, _ = await _auto_merged(world, engine)

        def merge_message(*needles: str) -> Message | None:
            return next(
                (
                    m
                    for m in api.chat(OWNER)
                    if "Auto-merge" in m.text and all(n in parse_html(m.text) for n in needles)
                ),
                None,
            )

        await world.until(lambda: merge_message("auto-merged PR #1"), 30, "the merge said")
        await _regress(world, engine, error)
        message = await world.until(
            lambda: merge_message("Auto-merge paused: auto-merged PR #1 regressed"),
            30,
            "the pause on the auto-merge message",
        )
        assert [b["text"] for b in message.buttons()] == ["Resume auto-merge"]
        query = api.tap(OWNER, message, message.button("Resume auto-merge")["callback_data"])
        await world.until(lambda: api.answer_to(query), 20, "the button's answer")
        await world.until(lambda: engine.auto_merge.paused("PA") is None, 20, "the resume")
        decided = await engine.store.decisions(error_id=error.id)
        assert (decided[-1].action, decided[-1].actor) == ("resume_auto_merge", f"telegram:{OWNER}")

        def without_buttons() -> Message | None:
            same = (m for m in api.chat(OWNER) if m.message_id == message.message_id)
            return next((m for m in same if not m.buttons()), None)

        final = await world.until(without_buttons, 20, "the message without its Resume button")
        assert "Auto-merge paused" not in parse_html(final.text)
