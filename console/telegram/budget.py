"""The Telegram texts about Claude's cost: ``/status`` and the messages that say the fix
queue is held (the daily budget is spent, Claude is rate-limited) or resumes."""

from __future__ import annotations

from console.budget import QueueHold, clock_text, utc_day
from console.telegram.limits import escape


def status_text(hold: QueueHold, days: dict[str, float], now: float) -> str:
    """Cost per UTC day, newest first, today against the daily budget; then the hold."""
    today = utc_day(now)
    lines = ["📊 <b>Claude cost per day</b> (UTC)"]
    if today not in days:
        lines.append(f"{today}: $0.00 of ${hold.daily_budget_usd:.2f}")
    for day, cost in days.items():
        limit = f" of ${hold.daily_budget_usd:.2f}" if day == today else ""
        lines.append(f"{escape(day)}: ${cost:.4f}{limit}")
    lines += ["", queue_line(hold)]
    return "\n".join(lines)


def queue_line(hold: QueueHold) -> str:
    if hold.rate_limited_until is not None:
        return f"⏳ Claude rate-limited, resuming {clock_text(hold.rate_limited_until)}"
    if hold.over_budget:
        return "💸 Daily budget reached: approved fixes wait"
    return "▶️ Fix queue running"


def change_text(before: QueueHold | None, now: QueueHold) -> str | None:
    """The message for a change of what holds the queue, or None when nothing to say."""
    if now.over_budget and not (before is not None and before.over_budget):
        return (
            f"💸 <b>Daily Claude budget reached</b>: ${now.spent_today_usd:.2f} of "
            f"${now.daily_budget_usd:.2f} spent today (UTC). Approved fixes wait in the queue "
            "until <code>claude.daily_budget_usd</code> is raised and the config reloaded, "
            "or until midnight UTC."
        )
    if now.rate_limited_until is not None and (
        before is None or before.rate_limited_until != now.rate_limited_until
    ):
        return (
            f"⏳ <b>Claude rate-limited</b>, resuming {clock_text(now.rate_limited_until)}; "
            "the queued fix starts again on its own."
        )
    if before is not None and before.held and not now.held:
        return "▶️ The fix queue resumes."
    return None
