"""How severities, states, times and money read in the console, in one place.

Every panel shows the same error the same way; keeping the words and colours here means the
errors table, the queue and the dialogs cannot drift apart.
"""

from __future__ import annotations

from rich.text import Text

from console.models import STATE_LABELS, State, epoch

SEVERITY_ICON: dict[str, str] = {"critical": "✖", "high": "▲", "medium": "◆", "low": "•"}
SEVERITY_STYLE: dict[str, str] = {
    "critical": "bold red",
    "high": "dark_orange",
    "medium": "yellow",
    "low": "dim",
}
SEVERITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

STATE_LABEL = STATE_LABELS
STATE_STYLE: dict[State, str] = {
    State.NEW: "cyan",
    State.AWAITING_APPROVAL: "bold yellow",
    State.FIXING: "bold magenta",
    State.TESTING: "magenta",
    State.REVIEW: "bold green",
    State.PUSHED: "green",
    State.PR_OPENED: "green",
    State.SKIPPED: "dim",
    State.FAILED: "bold red",
    State.INTERRUPTED: "red",
    State.MERGED: "green",
    State.CLOSED: "dim",
    State.RESOLVED: "bold green",
    State.REGRESSED: "bold white on red",
    State.ESCALATING: "bold red",
}


def severity_text(severity: str) -> Text:
    """The icon alone carries the severity in narrow columns; colour repeats it."""
    return Text(SEVERITY_ICON.get(severity, "?"), style=SEVERITY_STYLE.get(severity, ""))


def state_text(state: State) -> Text:
    return Text(STATE_LABEL.get(state, str(state)), style=STATE_STYLE.get(state, ""))


parse_time = epoch


def duration(seconds: float | None) -> str:
    """Compact like k9s ages: 42s, 5m, 3h, 2d; the unit that matters, no more."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def clock_duration(seconds: float | None) -> str:
    """Elapsed time of a running job, precise enough to see it move: 1:05, 12:40, 1:02:03."""
    if seconds is None:
        return "—"
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def age(stamp: str | None, now: float) -> str:
    moment = parse_time(stamp)
    return duration(None if moment is None else now - moment)


def money(usd: float | None) -> str:
    return "—" if usd is None else f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def hosts_text(hosts: dict[str, int]) -> str:
    """Host names, busiest first; more than two collapse to a count so the column stays narrow."""
    names = [h for h, _ in sorted(hosts.items(), key=lambda item: (-item[1], item[0]))]
    if len(names) <= 2:
        return ", ".join(names) or "—"
    return f"{names[0]} +{len(names) - 1}"
