"""The dashboard message: one message whose buttons switch its view in place.

Views are pure renderings of what the engine and store report at the moment a button is
tapped; the bot edits the same message with the result, so looking around never floods the
chat. Lists use ages ("5m ago") because the view is redrawn whenever someone looks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from console.history import History
from console.history_text import figures, rate_words
from console.link import LinkStatus
from console.models import STATE_LABELS, ErrorRow, HostRow, State
from console.telegram.limits import Part, escape, fit, markup
from console.telegram.render import age, severity_icon

View = Literal["home", "queue", "errors", "system", "history"]
QUEUE_STATES = (State.AWAITING_APPROVAL, State.FIXING, State.TESTING, State.REVIEW)
LIST_LIMIT = 15
HISTORY_RECURRING = 5


@dataclass(frozen=True)
class Snapshot:
    """What a view needs, read by the bot from the engine just before rendering."""

    errors: list[ErrorRow]
    queued: list[ErrorRow]
    counts: Mapping[State, int]
    links: Mapping[str, LinkStatus] = field(default_factory=dict)
    hosts: list[HostRow] = field(default_factory=list)
    busy: bool = False
    muted_until: float | None = None
    telegram_state: str = "on"
    now: float = field(default_factory=time.time)
    # The period's figures, read only for the history view.
    history: History | None = None


def error_line(error: ErrorRow, now: float) -> list[Part]:
    """One list row: severity icon, [service], message, state, age."""
    return [
        markup(f"\n{severity_icon(error.severity)} "),
        Part(f"[{error.service}]", before="<b>", after="</b> ", cap=40),
        Part(f"{error.error_type}: {error.message}", cap=90),
        markup(
            f" · <i>{STATE_LABELS.get(error.state, error.state.value)}</i>"
            f" · {escape(age(error.last_seen, now))} · #{error.id}"
        ),
        markup(f" x{error.count}" if error.count > 1 else ""),
    ]


def _lines(errors: Iterable[ErrorRow], now: float) -> list[Part]:
    parts: list[Part] = []
    for error in list(errors)[:LIST_LIMIT]:
        parts += error_line(error, now)
    return parts or [markup("\n<i>nothing here</i>")]


def _count_line(counts: Mapping[State, int]) -> str:
    shown = [f"{STATE_LABELS[s]}: <b>{counts.get(s, 0)}</b>" for s in QUEUE_STATES]
    return " · ".join(shown)


def _mute_line(snapshot: Snapshot) -> str:
    if snapshot.muted_until and snapshot.muted_until > snapshot.now:
        minutes = max(1, round((snapshot.muted_until - snapshot.now) / 60))
        return f"\n🔕 New-error notifications muted for {minutes} more min"
    return ""


def render(view: View, snapshot: Snapshot) -> str:
    if view == "queue":
        parts = [markup("📋 <b>Queue Status</b>\n" + _count_line(snapshot.counts))]
        parts += _lines(snapshot.queued, snapshot.now)
    elif view == "errors":
        parts = [markup("🧾 <b>Recent Errors</b>")]
        parts += _lines(snapshot.errors, snapshot.now)
    elif view == "system":
        parts = [markup("🖥 <b>System Status</b>")]
        parts += _system(snapshot)
    elif view == "history":
        parts = _history(snapshot.history)
    else:
        parts = [
            markup("📊 <b>AutoFix dashboard</b>\n" + _count_line(snapshot.counts)),
            markup(f"\nFix running: <b>{'yes' if snapshot.busy else 'no'}</b>"),
            markup(f"\nHosts: {_link_summary(snapshot)}"),
            markup(_mute_line(snapshot)),
        ]
    return fit(parts)


def _history(history: History | None) -> list[Part]:
    """The History screen's figures as text: headline figures, success by service and
    severity, the errors that recur most."""
    if history is None:
        return [markup("📈 <b>History</b>\n<i>no history read</i>")]
    where = f" · {history.query.service}" if history.query.service else ""
    parts: list[Part] = [markup(f"📈 <b>History</b> · last {history.query.period}"),
                         Part(where, cap=60)]  # fmt: skip
    for name, value in figures(history):
        bold = name == "regressions" and history.regressions
        parts.append(markup(f"\n{escape(name)}: " + (f"<b>{escape(value)}</b>" if bold
                                                         else escape(value))))  # fmt: skip
    for title, rates in (("By service", history.by_service), ("By severity", history.by_severity)):
        if rates:
            parts.append(markup(f"\n<b>{title}</b>: "))
            parts.append(Part(" · ".join(rate_words(r) for r in rates), cap=400))
    if history.recurring:
        parts.append(markup("\n<b>Most recurring</b>"))
    for row in history.recurring[:HISTORY_RECURRING]:
        parts.append(Part(f"[{row.service}]", before="\n<b>", after="</b> ", cap=40))
        parts.append(Part(f"{row.error_type}: {' '.join(row.message.split())}", cap=80))
        back = f", back {row.regressions}x" if row.regressions else ""
        parts.append(markup(f" · x{row.occurrences:,}, {row.attempts} tries{back}"))
    return parts


def _link_summary(snapshot: Snapshot) -> str:
    if not snapshot.links:
        return "no live links"
    connected = sum(1 for s in snapshot.links.values() if s.state == "connected")
    return f"{connected}/{len(snapshot.links)} connected"


def _system(snapshot: Snapshot) -> list[Part]:
    parts: list[Part] = [markup(f"\nFix running: <b>{'yes' if snapshot.busy else 'no'}</b>")]
    parts.append(markup(f"\nTelegram: {escape(snapshot.telegram_state)}{_mute_line(snapshot)}"))
    parts.append(markup("\n<b>Hosts</b>"))
    hosts = {h.name: h for h in snapshot.hosts}
    names = sorted(set(hosts) | set(snapshot.links))
    if not names:
        parts.append(markup("\n<i>no hosts configured</i>"))
    for name in names[:LIST_LIMIT]:
        status = snapshot.links.get(name)
        state = status.state if status else hosts[name].status
        icon = {"connected": "🟢", "connecting": "🟡", "reconnecting": "🟡"}.get(state, "🔴")
        parts.append(Part(name, before=f"\n{icon} <b>", after="</b> ", cap=60))
        detail = state
        if status is not None and status.lag_seconds is not None:
            detail += f", last line {int(status.lag_seconds)}s ago"
        if status is not None and status.error:
            detail += f": {status.error}"
        elif status is None and hosts[name].detail:
            detail += f": {hosts[name].detail}"
        parts.append(Part(detail, cap=200))
    return parts
