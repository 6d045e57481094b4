"""What auto-merge keeps in the store, on both backends: decisions that change no state
(a merge, a stop, a pause) and the per-service reads the daily limit and the pause use."""

from __future__ import annotations

from agent.wire import ErrorEvent
from console.models import State
from console.store import Store


def _event(seq: int, service: str, fingerprint: str) -> ErrorEvent:
    return ErrorEvent(
        type="error",
        seq=seq,
        host="web-1",
        service=service,
        fingerprint=fingerprint,
        count=1,
        severity="medium",
        message="Cannot read properties of undefined (reading 'id')",
        error_type="TypeError",
        stack=["    at getUser (/srv/app/lib/users.js:12:7)"],
        route=None,
        first_seen="2026-01-01T00:00:00.000Z",
        last_seen="2026-01-01T00:00:01.000Z",
    )


async def test_a_noted_decision_keeps_the_state_and_is_read_per_service(store: Store) -> None:
    results = await store.ingest(
        "web-1",
        [_event(1, "api", "a1" * 8), _event(2, "api", "b2" * 8), _event(3, "web", "c3" * 8)],
    )
    api_a, api_b, web = (r.error_id for r in results)
    for error_id in (api_a, api_b, web):
        assert await store.transition(error_id, State.NEW, State.AWAITING_APPROVAL)
    await store.note_decision(api_a, "auto_merge", "auto-merge", "merged PR #1")
    await store.note_decision(api_b, "pause_auto_merge", "auto-merge", "PR #1 regressed")
    await store.note_decision(web, "auto_merge", "auto-merge", "merged PR #2")
    await store.note_decision(api_b, "resume_auto_merge", "keyboard")

    error = await store.error(api_a)
    assert error is not None and error.state is State.AWAITING_APPROVAL
    merged = await store.service_decisions("api", ("auto_merge",))
    assert [(d.error_id, d.reason) for d in merged] == [(api_a, "merged PR #1")]
    assert merged[0].from_state is merged[0].to_state is State.AWAITING_APPROVAL
    marks = await store.service_decisions("api", ("pause_auto_merge", "resume_auto_merge"))
    assert [(d.action, d.actor) for d in marks] == [
        ("pause_auto_merge", "auto-merge"),
        ("resume_auto_merge", "keyboard"),
    ]
    assert await store.service_decisions("api", ("auto_merge",), since="2999-01-01") == []
    today = merged[0].at[:10]
    assert len(await store.service_decisions("api", ("auto_merge",), since=today)) == 1
