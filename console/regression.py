"""A fix that did not hold, as people and the next attempt see it: the merged diff, the
occurrences since the service ran the merged code, and whether anyone has answered yet.

The lifecycle (:mod:`console.lifecycle`) decides that an error regressed; this reads what
to show about it, in one place, for the detail screen, the header's alarm, the Telegram
message and the retry's prompt alike.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from console.fix.prompt import PreviousFix
from console.lifecycle.rules import is_muted
from console.models import (
    AttemptRow,
    DecisionRow,
    ErrorRow,
    PullRequestRow,
    Recurrence,
    State,
)
from console.store import Store

SAMPLES = 3


@dataclass(frozen=True)
class AfterMerge:
    """A merged fix of an error and what happened since: ``since`` is the first start of
    the service after the merge (the moment the merged code ran), or the merge itself when
    no start was seen, and only occurrences relayed after the merge count; ``why`` is the
    lifecycle's reason when it regressed."""

    attempt: AttemptRow
    pr: PullRequestRow
    since: str
    recurrence: Recurrence
    why: str | None = None
    revert: PullRequestRow | None = None


@dataclass(frozen=True)
class Sample:
    """What one relayed line said: its message and stack (log text: untrusted)."""

    message: str
    stack: list[str]
    host: str | None = None
    at: str | None = None


async def after_merge(
    store: Store, error: ErrorRow, *, before: int | None = None, samples: int = SAMPLES
) -> AfterMerge | None:
    """The error's latest attempt whose fix PR was merged (only attempts older than
    ``before`` when given, for the prompt of a new attempt), with the occurrences since;
    None when no fix of it was ever merged."""
    attempts = await store.attempts(error_id=error.id)
    for attempt in sorted(attempts, key=lambda a: a.id, reverse=True):
        if before is not None and attempt.id >= before:
            continue
        prs = await store.prs(attempt.id)
        pr = next((p for p in prs if p.kind == "fix"), None)
        if pr is None or pr.merged_at is None:
            continue
        start = await store.first_start(error.service, pr.merged_at)
        since = start.at if start is not None else pr.merged_at
        decisions = await store.decisions(error_id=error.id, limit=100_000)
        return AfterMerge(
            attempt=attempt,
            pr=pr,
            since=since,
            recurrence=await store.recurrence(
                error.id, since, relayed_after=pr.merged_at, samples=samples
            ),
            why=regressed_because(decisions),
            revert=next((p for p in reversed(prs) if p.kind == "revert"), None),
        )
    return None


def regressed_because(decisions: list[DecisionRow]) -> str | None:
    """The reason recorded with the error's latest move to regressed."""
    return next((d.reason for d in reversed(decisions) if regressed_by(d) and d.reason), None)


def regressed_by(decision: DecisionRow) -> bool:
    """Whether a decision is a move to regressed (a mute or a revert of a regressed error
    is recorded from regressed to regressed: not one)."""
    return decision.to_state is State.REGRESSED and decision.from_state is not State.REGRESSED


def unanswered(error: ErrorRow, decisions: list[DecisionRow], now: float | None = None) -> bool:
    """Whether a regressed error still waits for a person: nobody reverted its fix or muted
    it since it regressed (a retry or a skip moves it out of regressed altogether), and no
    mute holds now."""
    if error.state is not State.REGRESSED:
        return False
    moment = time.time() if now is None else now
    if is_muted(error.muted_until, error.muted_until_count, error.count, moment):
        return False
    regressed = max((d.id for d in decisions if regressed_by(d)), default=0)
    return not any(d.id > regressed and d.action == "revert" for d in decisions)


def sample_of(raw: str) -> Sample | None:
    """A stored wire line's message and stack; None for a line that is not an event."""
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    stack = event.get("stack")
    return Sample(
        message=str(event.get("message") or ""),
        stack=[str(line) for line in stack] if isinstance(stack, list) else [],
        host=str(event["host"]) if isinstance(event.get("host"), str) else None,
        at=str(event["last_seen"]) if isinstance(event.get("last_seen"), str) else None,
    )


def previous_fix(merged: AfterMerge) -> PreviousFix:
    """What a retry's prompt is told about a fix that did not hold."""
    seen = merged.recurrence
    latest = next((s for s in map(sample_of, seen.samples) if s is not None), None)
    return PreviousFix(
        pr_number=merged.pr.number,
        merged_at=merged.pr.merged_at or "",
        diff=merged.attempt.diff or "(no diff was stored for it)",
        since=merged.since,
        occurrences=seen.count,
        hosts=seen.hosts,
        first_seen=seen.first_seen,
        last_seen=seen.last_seen,
        why=merged.why,
        message=latest.message if latest else None,
        stack=latest.stack if latest else (),
        reverted=merged.revert.number if merged.revert else None,
    )
