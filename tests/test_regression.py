"""When a regressed error counts as answered, and what counts as its occurrences since the
merged code ran: read from a real SQLite store filled through its own API
(tests/regressed_store.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from agent.wire import iso
from console.models import DecisionRow, State
from console.regression import after_merge, previous_fix, regressed_by, unanswered
from console.store import Store
from tests.regressed_store import (
    AGAIN_MESSAGE,
    FINGERPRINT,
    MERGED_AT,
    PR_NUMBER,
    STARTED_AT,
    WHY,
    fill_regressed,
)
from tests.rows import row
from tests.snapshot_store import NOW
from tests.telegram_api import parse_html


def decision(id: int, action: str, old: State, new: State) -> DecisionRow:
    return DecisionRow(id, 1, 1, action, "keyboard", "2027-01-15T08:00:00.000Z", old, new)


REGRESSED = decision(1, "regressed", State.MERGED, State.REGRESSED)


async def regressed(tmp_path: Path):
    await fill_regressed(tmp_path / "console.db")
    store = await Store.open(tmp_path / "console.db")
    [row] = [e for e in await store.errors(limit=100) if e.fingerprint == FINGERPRINT]
    return store, row


async def test_a_regression_waits_until_reverted_or_muted_and_again_when_the_mute_ends(
    tmp_path: Path,
) -> None:
    store, error = await regressed(tmp_path)
    try:
        decisions = await store.decisions(error_id=error.id)
        assert unanswered(error, decisions, NOW)
        await store.set_mute(error.id, until=iso(NOW + 60), until_count=None, actor="keyboard")
        muted = await store.error(error.id)
        assert muted is not None
        decisions = await store.decisions(error_id=error.id)
        assert not unanswered(muted, decisions, NOW)
        assert unanswered(muted, decisions, NOW + 120), "an ended mute answers nothing"
        # A mute is recorded regressed -> regressed: it is no new regression.
        assert [regressed_by(d) for d in decisions][-2:] == [True, False]
    finally:
        await store.close()


def test_a_revert_after_the_latest_regression_answers_it_and_one_before_does_not() -> None:
    error = replace(row(1), state=State.REGRESSED)
    revert = decision(2, "revert", State.REGRESSED, State.REGRESSED)
    assert not unanswered(error, [REGRESSED, revert], NOW)
    again = decision(3, "regressed", State.RESOLVED, State.REGRESSED)
    assert unanswered(error, [REGRESSED, revert, again], NOW)
    assert not unanswered(replace(error, state=State.FIXING), [REGRESSED], NOW)


async def test_after_the_merge_counts_what_came_since_the_start_and_tells_the_prompt(
    tmp_path: Path,
) -> None:
    store, error = await regressed(tmp_path)
    try:
        merged = await after_merge(store, error)
        assert merged is not None
        assert (merged.pr.number, merged.since, merged.why) == (PR_NUMBER, STARTED_AT, WHY)
        seen = merged.recurrence
        assert seen.first_seen is not None and seen.first_seen >= STARTED_AT
        assert sum(seen.hosts.values()) == seen.count and seen.count > 4
        everything = await store.recurrence(error.id, MERGED_AT[:4])
        assert everything.count == error.count, "from the start of time: every occurrence"
        told = previous_fix(merged)
        assert told.message == AGAIN_MESSAGE and told.occurrences == seen.count
        assert "+    return null;" in told.diff
        assert await after_merge(store, error, before=merged.attempt.id) is None
    finally:
        await store.close()


async def test_a_recurrence_adds_up_the_rises_after_its_moment_on_either_store(store) -> None:
    from agent.wire import ErrorEvent

    def seen(seq: int, count: int, at: str, host: str = "web-1") -> ErrorEvent:
        return ErrorEvent(
            type="error" if seq == 1 else "update", seq=seq, host=host, service="pa",
            fingerprint="fp-back", count=count, severity="high", message=f"boom {seq}",
            error_type="TypeError", stack=[], route=None,
            first_seen="2027-01-15T08:00:00.000Z", last_seen=at,
        )  # fmt: skip

    await store.ingest("web-1", [seen(1, 1, "2027-01-15T08:00:00.000Z"),
                                 seen(2, 3, "2027-01-15T08:10:00.000Z"),
                                 seen(3, 6, "2027-01-15T08:20:00.000Z")])  # fmt: skip
    await store.ingest("web-2", [seen(1, 2, "2027-01-15T08:15:00.000Z", host="web-2")])
    [error] = await store.errors()
    back = await store.recurrence(error.id, "2027-01-15T08:10:00.000Z", samples=2)
    assert (back.count, back.hosts) == (2 + 3 + 2, {"web-1": 5, "web-2": 2})
    assert (back.first_seen, back.last_seen) == (
        "2027-01-15T08:10:00.000Z",
        "2027-01-15T08:20:00.000Z",
    )
    assert [json.loads(raw)["message"] for raw in back.samples] == ["boom 1", "boom 3"]
    later = await store.recurrence(error.id, "2027-01-15T08:00:00.000Z", relayed_after="9999")
    assert later.count == 0 and later.samples == [], "nothing was relayed after that"


async def test_one_error_is_muted_from_telegram_for_a_while_or_n_more_and_unmuted(
    bot_phone,
) -> None:
    from tests.telegram_phone import error_event

    engine = bot_phone.engine
    [error_id] = await engine.ingest("prod-9", [error_event(1, "fp-loud", "boom")])
    await bot_phone.reply_containing(f"error #{error_id}")  # its card, before the replies
    reply = await bot_phone.say(f"/mute {error_id} 2h or 50x")
    assert parse_html(reply.text) == (
        "🔕 muted PA Error: boom for 120 min or 50 more occurrence(s)"
    )
    muted = await engine.store.error(error_id)
    assert muted is not None and muted.muted_until_count == muted.count + 50
    [*_, decision] = await engine.store.decisions(error_id=error_id)
    assert (decision.action, decision.actor) == ("mute", "telegram:4242")
    assert "could not read 'soon'" in parse_html(
        (await bot_phone.say(f"/mute {error_id} soon")).text
    )
    assert parse_html((await bot_phone.say(f"/mute #{error_id} 5x")).text) == (
        "⚠️ PA Error: boom is muted already"
    )
    assert parse_html((await bot_phone.say(f"/mute {error_id} off")).text) == (
        "🔕 unmuted PA Error: boom"
    )
    # Without an error id, /mute is still the whole bot's new-error messages.
    assert "New-error messages muted for 30m" in parse_html((await bot_phone.say("/mute 30m")).text)


async def test_the_detail_screen_says_how_long_a_mute_holds(tmp_path: Path) -> None:
    from textual.widgets import Static

    from console.screens.detail import DetailScreen
    from tests.regressed_store import regressed_app
    from tests.snapshot_store import settle
    from tests.test_app import composed, static_text, until

    async with regressed_app(tmp_path) as app, app.run_test(size=(160, 60)) as pilot:
        await settle(pilot)
        [error] = [e for e in await app.engine.store.errors() if e.fingerprint == FINGERPRINT]
        assert (await app.engine.mute(error.id, "keyboard", occurrences=25)).ok
        app.main_screen.query_one("#errors").select_error(error.id)
        await pilot.press("enter")
        detail = await until(pilot, lambda: composed(app, DetailScreen, "#detail-body"))
        body = detail.query_one("#detail-body", Static)
        await until(pilot, lambda: "for 25 more occurrence(s)" in static_text(body), 10, "muted")
