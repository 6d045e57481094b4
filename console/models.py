"""Rows the store hands to the engine, the terminal UI and the Telegram bot.

They are plain frozen dataclasses so that nothing outside ``console.store`` ever sees a
database cursor, and so the UI can hold them without a connection. Times are ISO 8601 UTC
strings (``2026-01-02T03:04:05.678Z``), the same shape the agent puts on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from console.fix.diffstat import FileStat
from console.fix.verdict import Verdict


class State(StrEnum):
    """Where an error (and its current fix attempt) stands in the approval flow."""

    NEW = "new"
    AWAITING_APPROVAL = "awaiting_approval"
    FIXING = "fixing"
    TESTING = "testing"
    REVIEW = "review"
    PUSHED = "pushed"  # the branch is on the remote but no pull request was opened
    PR_OPENED = "pr_opened"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    # After the pull request, as error trackers have it (console.lifecycle decides these).
    MERGED = "merged"  # the fix's PR was merged; waiting for a restart and a quiet spell
    CLOSED = "closed"  # the fix's PR was closed without being merged
    RESOLVED = "resolved"  # merged, restarted, and quiet for the service's resolve_after
    REGRESSED = "regressed"  # it occurred again on the merged code
    ESCALATING = "escalating"  # a skipped error came back at several times its rate


# Every allowed move. Anything else is a bug in the caller, not a race, so it raises.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.NEW: frozenset({State.AWAITING_APPROVAL}),
    State.AWAITING_APPROVAL: frozenset({State.FIXING, State.SKIPPED}),
    State.FIXING: frozenset({State.TESTING, State.FAILED, State.INTERRUPTED}),
    State.TESTING: frozenset({State.REVIEW, State.FAILED, State.INTERRUPTED}),
    State.REVIEW: frozenset(
        {State.PUSHED, State.PR_OPENED, State.SKIPPED, State.FIXING, State.FAILED}
    ),
    State.FAILED: frozenset({State.FIXING, State.SKIPPED}),
    State.INTERRUPTED: frozenset({State.FIXING, State.SKIPPED}),
    State.SKIPPED: frozenset({State.AWAITING_APPROVAL, State.ESCALATING}),
    State.PUSHED: frozenset(),
    State.PR_OPENED: frozenset({State.MERGED, State.CLOSED}),
    State.MERGED: frozenset({State.RESOLVED, State.REGRESSED}),
    State.CLOSED: frozenset({State.FIXING, State.SKIPPED}),
    State.RESOLVED: frozenset({State.REGRESSED}),
    State.REGRESSED: frozenset({State.FIXING, State.SKIPPED}),
    State.ESCALATING: frozenset({State.AWAITING_APPROVAL, State.SKIPPED}),
}

# States in which an attempt is doing work (a Claude run or the test suite).
RUNNING_STATES: frozenset[State] = frozenset({State.FIXING, State.TESTING})
# States in which a merged fix is watched for a regression (console.lifecycle.rules).
WATCHED_STATES: frozenset[State] = frozenset({State.MERGED, State.RESOLVED})
# States in which an attempt is over; it gets a finished_at when it enters one.
FINISHED_STATES: frozenset[State] = frozenset(
    {State.PUSHED, State.PR_OPENED, State.SKIPPED, State.FAILED, State.INTERRUPTED}
)


# How a person reads each state, in the console and on Telegram alike.
STATE_LABELS: dict[State, str] = {
    State.NEW: "new",
    State.AWAITING_APPROVAL: "awaiting approval",
    State.FIXING: "fixing",
    State.TESTING: "testing",
    State.REVIEW: "review",
    State.PUSHED: "pushed",
    State.PR_OPENED: "PR opened",
    State.SKIPPED: "skipped",
    State.FAILED: "failed",
    State.INTERRUPTED: "interrupted",
    State.MERGED: "merged",
    State.CLOSED: "PR closed",
    State.RESOLVED: "resolved",
    State.REGRESSED: "REGRESSED",
    State.ESCALATING: "escalating",
}


def error_name(service: str, error_type: str, message: str, *, limit: int = 60) -> str:
    """How a person recognises an error in a message: its service, type and a short
    message (ids and state names mean nothing to them)."""
    text = " ".join(message.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{service} {error_type}: {text}"


def attempt_name(attempt: AttemptRow, error: ErrorRow | None = None) -> str:
    """How a person reads an attempt: numbered among its error's attempts ("attempt 2 of
    PA TypeError: ..."), never by the store's global id."""
    text = f"attempt {attempt.number}" if attempt.number else f"attempt #{attempt.id}"
    if error is None:
        return text
    return f"{text} of {error_name(error.service, error.error_type, error.message)}"


def parse_time(stamp: str | None) -> datetime | None:
    """An ISO 8601 stamp as an aware datetime (UTC when it names no zone), or None.

    Stamps come from remote agents, so a malformed one must read as unknown, not crash
    whatever shows it.
    """
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def epoch(stamp: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 stamp, or None for an empty or foreign one."""
    moment = parse_time(stamp)
    return moment.timestamp() if moment else None


def can_transition(old: State, new: State) -> bool:
    """Whether the flow allows ``old -> new``; the engine's ``actions`` is built on it."""
    return new in TRANSITIONS[State(old)]


class Action(StrEnum):
    """What a person can decide about an error or its attempt.

    Which of them are possible for a given error and attempt is answered in one place,
    ``Engine.actions``; keys, buttons and commands all ask it.
    """

    APPROVE = "approve"  # start a fix attempt for an error awaiting approval
    PUBLISH = "publish"  # push a reviewed diff and, when GitHub is set up, open its PR
    SKIP = "skip"  # shelve the error (and discard its attempt's worktree)
    RETRY = "retry"  # a new attempt from a clean base, optionally with an instruction
    REOPEN = "reopen"  # bring a skipped (or escalating) error back to awaiting approval
    REVERT = "revert"  # open a pull request reverting a regressed fix's merge
    MUTE = "mute"  # keep an error's notifications quiet for a while or N occurrences
    UNMUTE = "unmute"  # end a mute early
    STOP_MERGE = "stop_merge"  # stop an automatic merge during its soak (the PR stays open)
    RESUME_MERGE = "resume_merge"  # let auto-merge work again for a service it paused for


def action_name(old: State, new: State) -> str:
    """The verb a person performed, as the decision log and notifications show it."""
    if new is State.FIXING:
        return "approve" if old is State.AWAITING_APPROVAL else "retry"
    if new is State.SKIPPED:
        return "skip"
    if new is State.AWAITING_APPROVAL:
        return "reopen" if old in (State.SKIPPED, State.ESCALATING) else "queue"
    if new is State.PUSHED:
        return "push"
    if new is State.PR_OPENED:
        return "open_pr"
    return str(new.value)


@dataclass(slots=True)
class IngestResult:
    """What happened to one relayed event; ``created`` tells the engine to queue the error.

    Not frozen: one is built per relayed event on the ingest hot path, and a frozen
    dataclass costs five times as much to construct.
    """

    seq: int
    error_id: int
    created: bool
    duplicate: bool
    # Why the event was not stored (it is reported, the rest of its batch is stored).
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """A stored batch: one result per event, and the errors it counted again (neither
    created by it nor only repeated) as they are after it, read on the store's ingest
    connection so the engine can publish them without another round trip."""

    results: list[IngestResult]
    counted: list[ErrorRow]


@dataclass(frozen=True)
class ErrorRow:
    id: int
    service: str
    fingerprint: str
    error_type: str
    message: str
    stack: list[str]
    route: str | None
    severity: str
    count: int
    hosts: dict[str, int]
    first_seen: str
    last_seen: str
    state: State
    created_at: str
    updated_at: str
    current_attempt_id: int | None = None
    # When the lifecycle last resolved it and saw it regress (ISO 8601, None: never).
    resolved_at: str | None = None
    regressed_at: str | None = None
    # A per-error mute: quiet until this time and/or until the count reaches this number.
    muted_until: str | None = None
    muted_until_count: int | None = None
    # Per stack line: an app frame, a library or runtime frame, or no frame (None), as the
    # agent's parser saw it; empty when the agent did not say (an older agent).
    in_app: list[bool | None] = field(default_factory=list)


@dataclass(frozen=True)
class AttemptRow:
    id: int
    error_id: int
    state: State
    branch: str | None = None
    worktree: str | None = None
    started_at: str = ""
    finished_at: str | None = None
    reason: str | None = None
    claude_cost_usd: float | None = None
    claude_turns: int | None = None
    claude_duration_ms: int | None = None
    claude_summary: str | None = None
    extra_instruction: str | None = None
    test_exit_code: int | None = None
    test_output_tail: str | None = None
    diff: str | None = None
    diff_stat: tuple[FileStat, ...] = ()  # stored as JSON, see console.fix.diffstat
    pr_url: str | None = None
    pr_number: int | None = None
    claude_denials: str | None = None  # JSON, see Denial.encode_all
    verdict: str | None = None  # JSON, see console.fix.verdict.Verdict
    number: int = 0  # 1 for the first attempt on its error, 2 for the next...
    # Who runs the attempt (the console's OS user@host) and that console's store session:
    # on a shared store, another console tells a live runner from one that went away.
    runner: str | None = None
    runner_session: str | None = None

    @property
    def denials(self) -> list[Denial]:
        """What Claude Code was refused during this attempt, in the order it happened."""
        return Denial.decode_all(self.claude_denials)

    @property
    def conclusion(self) -> Verdict | None:
        """Claude's checked verdict, once the attempt has one."""
        return Verdict.decode(self.verdict)

    @property
    def is_report(self) -> bool:
        """An attempt that ended as an investigation report: a verdict other than a fix."""
        conclusion = self.conclusion
        return conclusion is not None and not conclusion.is_fix


@dataclass(frozen=True)
class Denial:
    """A tool call Claude Code refused, or its sandbox blocked, during an attempt.

    ``kind`` says who stopped it: ``mode`` (no allow rule), ``rule`` (a deny rule, named in
    ``reason``), ``sandbox`` (the call ran but the sandbox refused a file write or a
    connection) or ``refused`` (the CLI's list of denials, with no more detail).
    ``target`` is the path or command the call aimed at.
    """

    tool: str
    target: str
    kind: str
    reason: str
    tool_use_id: str = ""

    @property
    def line(self) -> str:
        """One line for a person: never phrased as if the call had happened."""
        return f"refused {self.tool} {self.target}: {self.reason}"

    @staticmethod
    def encode_all(denials: Sequence[Denial]) -> str:
        return json.dumps([asdict(d) for d in denials], ensure_ascii=False)

    @staticmethod
    def decode_all(text: str | None) -> list[Denial]:
        """Stored denials; a row written by hand or a newer version never breaks a view."""
        try:
            items = json.loads(text or "[]")
        except ValueError:
            return []
        found = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                found.append(
                    Denial(
                        tool=str(item.get("tool", "")),
                        target=str(item.get("target", "")),
                        kind=str(item.get("kind", "")),
                        reason=str(item.get("reason", "")),
                        tool_use_id=str(item.get("tool_use_id", "")),
                    )
                )
        return found


@dataclass(frozen=True)
class DecisionRow:
    """One recorded state change with who caused it (``keyboard``, ``telegram:12345``...)."""

    id: int
    error_id: int
    attempt_id: int | None
    action: str
    actor: str
    at: str
    from_state: State
    to_state: State
    reason: str | None = None


@dataclass(frozen=True)
class TestResultRow:
    __test__: ClassVar[bool] = False  # not a pytest test class despite the name

    id: int
    attempt_id: int
    command: str
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    output_tail: str
    at: str


@dataclass(frozen=True)
class RoundRow:
    """One Claude run of an attempt: the first on the prompt, later ones on failing tests.

    ``tests_passed`` is None when no test ran after it (a report, or a failed run).
    """

    attempt_id: int
    round: int
    turns: int | None
    cost_usd: float | None
    tests_passed: bool | None
    at: str


@dataclass(frozen=True)
class PullRequestRow:
    """A pull request the console opened, and what polling GitHub last said about it.

    ``etag`` is the last answer's ETag, sent back as If-None-Match so an unchanged PR costs
    a 304 (which GitHub does not count against the rate limit). ``kind`` is ``fix`` for an
    attempt's PR and ``revert`` for one reverting a regressed fix's merge.
    """

    id: int
    attempt_id: int
    branch: str
    url: str
    number: int
    created_at: str
    state: str = "open"  # open, merged or closed, as last polled
    etag: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None
    merge_sha: str | None = None
    merged_by: str | None = None
    checked_at: str | None = None
    kind: str = "fix"


@dataclass(frozen=True)
class HostRow:
    """A host's stream position and link status as the relay last recorded them."""

    name: str
    instance: str
    last_seq: int
    last_seen_at: str | None
    status: str
    detail: str | None = None


@dataclass(frozen=True)
class StartRow:
    """A service start an agent saw in its log (a start pattern matched ``line``): ``at``
    by the host's clock, ``received_at`` by the console's."""

    host: str
    service: str
    at: str
    line: str
    seq: int
    received_at: str


@dataclass(frozen=True)
class Recurrence:
    """An error's occurrences from a moment on (since its fix's service started again
    after the merge): what a person, and a retry's prompt, are shown as why a fix did not
    hold. ``count`` adds up the rises of each host's running total, as the table does."""

    since: str
    count: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    hosts: dict[str, int] = field(default_factory=dict)
    # The latest relayed lines among them, newest first, as stored (redacted by the agent).
    samples: list[str] = field(default_factory=list)
