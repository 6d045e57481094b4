"""The bot's messages about one error or one fix attempt, as Telegram HTML.

Pure functions of store rows, so what a person reads on the phone can be checked without a
network. Everything from outside (error text, routes, Claude's summary, the diff) goes
through :func:`console.telegram.limits.fit`, which escapes it and cuts it to the limits.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC

from console.automerge.plan import MergePlan
from console.fix.verdict import report_title
from console.models import (
    STATE_LABELS,
    AttemptRow,
    DecisionRow,
    ErrorRow,
    RoundRow,
    State,
    TestResultRow,
    attempt_name,
    parse_time,
)
from console.regression import AfterMerge
from console.telegram.limits import Part, escape, fit, markup

SEVERITY_ICONS = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "⚪"}
DECISION_LABELS = {
    "approve": "✅ <b>Fix approved</b>",
    "skip": "⏭ <b>Skipped</b>",
    "retry": "🔁 <b>Retry requested</b>",
    "open_pr": "🚀 <b>Pull request opened</b>",
    "reopen": "↩️ <b>Reopened</b>",
    "revert": "⏪ <b>Revert pull request opened</b>",
    "mute": "🔕 <b>Muted</b>",
    "unmute": "🔔 <b>Unmuted</b>",
}
DIFF_EXCERPT_LINES = 30
DIFF_EXCERPT_CHARS = 1500


def severity_icon(severity: str) -> str:
    return SEVERITY_ICONS.get(severity, "⚪")


def when(iso: str) -> str:
    """An absolute time for messages that stay in the chat (an age would go stale there)."""
    moment = parse_time(iso)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else iso


def age(iso: str, now: float) -> str:
    """ "5m ago", for lists that are redrawn whenever someone looks."""
    moment = parse_time(iso)
    if moment is None:
        return "?"
    seconds = now - moment.timestamp()
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"  # unreachable


def actor_name(actor: str, names: Mapping[int, str]) -> str:
    """Who acted, in words: the console keyboard (and whose), auto-approval or a Telegram
    user."""
    if actor == "keyboard":
        return "the console"
    if actor.startswith("keyboard:"):
        return f"{actor.removeprefix('keyboard:')} at the console"
    if actor == "auto":
        return "auto-approval"
    if actor.startswith("telegram:"):
        raw = actor.removeprefix("telegram:")
        if raw.isdigit() and int(raw) in names:
            return f"{names[int(raw)]} (Telegram {raw})"
        return f"Telegram user {raw}"
    return actor


def decision_parts(decision: DecisionRow, names: Mapping[int, str]) -> list[Part]:
    label = DECISION_LABELS.get(decision.action, f"<b>{escape(decision.action)}</b>")
    return [
        markup(f"\n{label} by "),
        Part(actor_name(decision.actor, names), cap=120),
        markup(f" at {escape(when(decision.at))}"),
    ]


def pr_link(attempt: AttemptRow | None) -> str:
    if (
        attempt is None
        or not attempt.pr_url
        or not attempt.pr_url.startswith(("https://", "http://"))
    ):
        return ""
    number = f" #{attempt.pr_number}" if attempt.pr_number else ""
    return f'<a href="{html.escape(attempt.pr_url, quote=True)}">pull request{number}</a>'


def status_parts(error: ErrorRow, attempt: AttemptRow | None) -> list[Part]:
    parts = [markup(f"\nStatus: <i>{STATE_LABELS.get(error.state, error.state.value)}</i>")]
    link = pr_link(attempt) if len(pr_link(attempt)) < 600 else ""
    if link:
        parts.append(markup(f" · {link}"))
    if error.state in (State.FAILED, State.INTERRUPTED) and attempt and attempt.reason:
        parts.append(Part(attempt.reason, before=" — ", cap=400))
    return parts


def _hosts(error: ErrorRow) -> str:
    return ", ".join(f"{host} x{n}" for host, n in sorted(error.hosts.items())) or "none"


def error_card(
    error: ErrorRow,
    *,
    decision: DecisionRow | None = None,
    attempt: AttemptRow | None = None,
    names: Mapping[int, str] | None = None,
) -> str:
    """The new-error message; with a decision it becomes the record of who decided what."""
    parts = [
        markup(f"{severity_icon(error.severity)} <b>{escape(error.severity.upper())}</b> · "),
        Part(error.service, before="<b>", after="</b>", cap=80),
        markup(f" · error #{error.id}\n"),
        Part(error.error_type, before="<b>", after="</b>: ", cap=120),
        Part(error.message, cap=1500),
    ]
    if error.route:
        parts.append(Part(error.route, before="\nRoute: <code>", after="</code>", cap=300))
    parts += [
        markup(f"\nCount: <b>{error.count}</b> · Hosts: "),
        Part(_hosts(error), cap=400),
        markup(f"\nFirst seen {escape(when(error.first_seen))}"),
        markup(f" · last seen {escape(when(error.last_seen))}"),
    ]
    if decision is not None:
        parts += [markup("\n"), *decision_parts(decision, names or {})]
    if error.state is not State.AWAITING_APPROVAL:
        parts += status_parts(error, attempt)
    return fit(parts)


def diff_excerpt(diff: str) -> tuple[str, bool]:
    """The first lines of a diff and whether that is not all of it."""
    lines = diff.splitlines()
    excerpt = "\n".join(lines[:DIFF_EXCERPT_LINES])
    cut = len(lines) > DIFF_EXCERPT_LINES
    if len(excerpt) > DIFF_EXCERPT_CHARS:
        excerpt, cut = excerpt[:DIFF_EXCERPT_CHARS], True
    return excerpt, cut


def _test_parts(test: TestResultRow | None) -> list[Part]:
    if test is None:
        return [markup("\n<b>Tests</b>: not run")]
    seconds = f"{test.duration_ms / 1000:.1f}s"
    if test.timed_out:
        verdict = f"⏱ timed out after {seconds}"
    elif test.exit_code == 0:
        verdict = f"✅ passed in {seconds}"
    else:
        verdict = f"❌ failed (exit {test.exit_code}) in {seconds}"
    parts = [
        markup(f"\n<b>Tests</b>: {verdict} · "),
        Part(test.command, before="<code>", after="</code>", cap=200),
    ]
    if test.exit_code != 0 and test.output_tail.strip():
        tail = "\n".join(test.output_tail.strip().splitlines()[-12:])
        parts.append(Part(tail, before="\n<pre>", after="</pre>", cap=600))
    return parts


def review_card(
    error: ErrorRow,
    attempt: AttemptRow,
    *,
    test: TestResultRow | None,
    sensitive: list[str],
    decision: DecisionRow | None = None,
    names: Mapping[int, str] | None = None,
    rounds: Sequence[RoundRow] = (),
) -> str:
    """The diff-ready message: enough to decide from the phone, with the full diff attached.

    A report (a verdict other than a fix) shows Claude's findings and questions instead of
    changes; a fix that took more than one round says how many.
    """
    stats = attempt.diff_stat
    added = sum(s.added for s in stats)
    removed = sum(s.removed for s in stats)
    verdict = attempt.conclusion
    title = (
        f"🔎 <b>Investigation report</b> ({escape(report_title(verdict))})"
        if verdict is not None and not verdict.is_fix
        else "🛠 <b>Fix ready for review</b>"
    )
    parts = [
        markup(f"{title} · error #{error.id} · {attempt_name(attempt)}\n"),
        markup(f"{severity_icon(error.severity)} "),
        Part(error.service, before="<b>", after="</b> · ", cap=80),
        Part(f"{error.error_type}: {error.message}", cap=300),
    ]
    if attempt.extra_instruction:
        parts.append(Part(attempt.extra_instruction, before="\n<b>Instruction</b>: ", cap=300))
    if verdict is not None:
        parts.append(Part(verdict.root_cause, before="\n\n<b>Root cause</b>\n", cap=900))
    parts.append(
        Part(attempt.claude_summary or "(no summary)", before="\n\n<b>Summary</b>\n", cap=1200)
    )
    if verdict is not None:
        parts.append(markup(f"\n<b>Risk</b>: {escape(verdict.risk)}"))
        if verdict.questions:
            questions = "\n".join(f"• {q}" for q in verdict.questions)
            parts.append(Part(questions, before="\n\n<b>Questions</b>\n", cap=900))
    if len(rounds) > 1:
        failed = sum(1 for r in rounds if r.tests_passed is False)
        parts.append(
            markup(f"\n🔁 <b>Rounds</b>: {len(rounds)} (tests failed in {failed} of them)")
        )
    if verdict is not None and not verdict.is_fix:
        parts.append(markup("\nNo code was changed; nothing can be published."))
    else:
        parts.append(markup(f"\n\n<b>Changes</b>: {len(stats)} file(s), +{added} -{removed}"))
    if stats:
        lines = "\n".join(s.line() for s in stats)
        parts.append(Part(lines, before="\n<pre>", after="</pre>", cap=600))
    if sensitive:
        parts.append(
            Part(", ".join(sensitive), before="\n⚠️ <b>Touches sensitive paths</b>: ", cap=400)
        )
    if attempt.denials:
        parts.append(markup(f"\n🛡 <b>Claude Code was refused {len(attempt.denials)} call(s)</b>"))
    parts += _test_parts(test)
    if attempt.diff:
        excerpt, cut = diff_excerpt(attempt.diff)
        note = " (first lines; full diff attached)" if cut else ""
        parts.append(markup(f"\n\n<b>Diff</b>{note}"))
        parts.append(
            Part(excerpt, before='\n<pre><code class="language-diff">', after="</code></pre>")
        )
    if attempt.state is State.REVIEW and attempt.reason:
        parts.append(Part(attempt.reason, before="\n⚠️ ", cap=400))
    if decision is not None:
        parts += [markup("\n"), *decision_parts(decision, names or {})]
    if attempt.state is not State.REVIEW:
        label = STATE_LABELS.get(attempt.state, attempt.state.value)
        parts.append(markup(f"\nAttempt: <i>{label}</i>"))
        link = pr_link(attempt)
        if link and len(link) < 600:
            parts.append(markup(f" · {link}"))
        elif attempt.state is State.FAILED and attempt.reason:
            parts.append(Part(attempt.reason, before=" — ", cap=400))
    return fit(parts)


def diff_is_long(diff: str | None) -> bool:
    """Whether the card shows only part of the diff, so the whole goes as a document."""
    return bool(diff) and diff_excerpt(diff or "")[1]


def merge_card(
    error: ErrorRow, attempt: AttemptRow, plan: MergePlan, *, paused: str | None = None
) -> str:
    """An automatic merge on its way, with every gate's reason: ``auto-merge in 30 min:
    8 lines, tests pass, checks green; tap to stop``, then what became of it."""
    parts = [
        markup(f"🤖 <b>Auto-merge</b> · error #{error.id} · {attempt_name(attempt)}\n"),
        markup(f"{severity_icon(error.severity)} "),
        Part(error.service, before="<b>", after="</b> · ", cap=80),
        Part(f"{error.error_type}: {error.message}", cap=300),
        Part(plan.line() + ("; tap to stop" if plan.stoppable else ""), before="\n\n", cap=1200),
    ]
    link = pr_link(attempt)
    if link and len(link) < 600:
        parts.append(markup(f"\n{link}"))
    if paused is not None:
        parts.append(Part(paused, before="\n\n⏸ <b>Auto-merge paused</b>: ", cap=400))
    return fit(parts)


def regression_card(
    error: ErrorRow,
    merged: AfterMerge | None,
    *,
    answers: Sequence[DecisionRow] = (),
    names: Mapping[int, str] | None = None,
) -> str:
    """The loud message when a fixed error came back: which merged fix did not hold, the
    occurrences since the merged code ran, and then who answered how."""
    parts = [
        markup(f"🚨 <b>REGRESSED</b> · {severity_icon(error.severity)} "),
        Part(error.service, before="<b>", after="</b>", cap=80),
        markup(f" · error #{error.id}\n"),
        Part(error.error_type, before="<b>", after="</b>: ", cap=120),
        Part(error.message, cap=800),
    ]
    if merged is not None:
        seen = merged.recurrence
        hosts = ", ".join(f"{h} x{n}" for h, n in sorted(seen.hosts.items())) or "none"
        parts += [
            markup(
                f"\n\nThe fix merged in pull request #{merged.pr.number} did not hold: "
                f"<b>{seen.count}</b> occurrence(s) since the merged code ran "
                f"({escape(when(merged.since))}) · "
            ),
            Part(hosts, cap=300),
        ]
        if merged.why:
            parts.append(Part(merged.why, before="\n<i>", after="</i>", cap=500))
        if merged.attempt.diff:
            excerpt, cut = diff_excerpt(merged.attempt.diff)
            parts.append(markup("\n\n<b>Merged diff</b>" + (" (first lines)" if cut else "")))
            parts.append(
                Part(excerpt, before='\n<pre><code class="language-diff">', after="</code></pre>")
            )
    for answer in answers:
        parts += decision_parts(answer, names or {})
    if merged is not None and merged.revert is not None and merged.revert.url.startswith("http"):
        link = html.escape(merged.revert.url, quote=True)
        parts.append(markup(f'\n<a href="{link}">revert pull request #{merged.revert.number}</a>'))
    if error.state is not State.REGRESSED:
        parts.append(markup(f"\nStatus: <i>{STATE_LABELS.get(error.state, error.state.value)}</i>"))
    return fit(parts)
