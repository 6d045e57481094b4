"""The status bar at the top: every host's link, Claude, and Telegram, at a glance.

A problem anywhere (a link with a host key error, a failed push) must be visible without
looking for it, so each part carries its state in words and in colour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual.widgets import Static

from console.budget import QueueHold, clock_text
from console.fix.claude_state import ClaudeState
from console.link import LinkStatus
from console.models import AttemptRow, State, attempt_name
from console.widgets.labels import clock_duration, duration, money
from console.widgets.queue import elapsed

_LINK_STYLE = {
    "connected": "green",
    "connecting": "yellow",
    "reconnecting": "yellow",
    "error": "bold red",
    "stopped": "dim",
}
LAG_WARNING_SECONDS = 30.0


def link_text(
    host: str, status: LinkStatus | None, last_seq: int | None, *, brief: bool = False
) -> Text:
    """One host's link; ``brief`` leaves out the sequence number and the retry time, so a
    short line keeps the state and the start of the reason instead."""
    if status is None:
        text = Text("○ ", style="dim")
        text.append(host, style="bold")
        text.append(" not connected", style="dim")
        if last_seq:
            text.append(f" #{last_seq}", style="dim")
        return text
    style = _LINK_STYLE.get(status.state, "")
    text = Text("● " if status.state == "connected" else "◌ ", style=style)
    text.append(host, style="bold")
    state: str = status.state
    if state == "error" and status.error and "host key" in status.error.lower():
        state = "host key problem"
    text.append(f" {state}", style=style)
    seq = status.last_seq if status.last_seq is not None else last_seq
    if seq is not None and not brief:
        text.append(f" #{seq}", style="dim")
    lag = status.lag_seconds
    if status.state == "connected" and lag is not None:
        text.append(f" lag {duration(lag)}", style="yellow" if lag > LAG_WARNING_SECONDS else "dim")
    if status.state in ("reconnecting", "error") and status.next_retry_seconds and not brief:
        text.append(f" retry in {duration(status.next_retry_seconds)}", style="dim")
    if status.error and state != "host key problem":
        text.append(f" ({status.error})", style=style)
    return text


def fit_words(text: Text, width: int) -> Text:
    """``text`` cut to ``width`` cells at a word boundary, with an ellipsis: a reason cut
    mid-word ("[Errno -2] Name)") reads as a different reason."""
    if text.cell_len <= width:
        return text
    if width <= 1:
        return Text("…"[:width])
    plain = text.plain
    cut = plain.rfind(" ", 0, width)
    cut = cut if cut > 0 else width - 1
    short = text[:cut]
    short.rstrip()
    short.append("…")
    short.truncate(width, overflow="ellipsis")  # wide characters take two cells
    return short


def claude_text(
    running: list[AttemptRow],
    now: float,
    state: ClaudeState | None = None,
    latest: AttemptRow | None = None,
) -> Text:
    """Running attempts; otherwise why attempts cannot reach a model (``state``) and why the
    latest one failed, so that neither is found out only after approving a fix."""
    unusual = state is not None and not state.ready
    if running:
        text = Text("Claude ", style="bold")
        if state is not None and state.kind == "scripted":
            text.append("(scripted demo model) ", style="yellow")
        for attempt in running:
            text.append(f"{attempt.state.value} {attempt_name(attempt)} ", style="bold magenta")
            text.append(clock_duration(elapsed(attempt, now)))
            if attempt.claude_cost_usd is not None:
                text.append(f" {money(attempt.claude_cost_usd)}")
            text.append("  ")
        return text
    failed = latest if latest is not None and latest.state is State.FAILED else None
    if state is not None and unusual:
        text = Text(state.text, style="yellow" if state.kind == "scripted" else "bold red")
        if failed is not None:
            text.append(" · ")
    else:
        text = Text("Claude ", style="bold")
        if failed is None:
            text.append("idle", style="dim")
    if failed is not None:
        text.append(f"{attempt_name(failed)} failed", style="bold red")
        if failed.reason:
            text.append(f": {' '.join(failed.reason.split())[:300]}", style="red")
    return text


def hold_text(hold: QueueHold) -> Text:
    """Today's Claude cost against the daily budget, and what holds the queue if anything:
    a rate limit with the time it resumes, or the spent budget."""
    if hold.rate_limited_until is not None:
        text = Text(f"Claude rate-limited, resuming {clock_text(hold.rate_limited_until)}")
        text.stylize("bold yellow")
        text.append(f"   today {money(hold.spent_today_usd)}", style="dim")
        return text
    spent = f"today {money(hold.spent_today_usd)} of {money(hold.daily_budget_usd)}"
    if hold.over_budget:
        return Text(f"daily budget reached ({spent}): fixes wait", style="bold red")
    return Text(spent, style="dim")


def alarm_text(regressed: int) -> Text:
    """The loud part: how many fixed errors came back and wait for someone to answer
    (revert, retry, skip or mute them); nothing when none does."""
    if regressed <= 0:
        return Text()
    return Text(f" ⚠ {regressed} regressed ", style="bold white on red")


def telegram_text(state: str, detail: str | None) -> Text:
    """The bot's state; while polling fails the detail leads with when it tries again
    ("polling retry in 8.0s: another program is polling this bot"), so it is kept whole."""
    style = {"on": "green", "off": "dim", "error": "bold red"}.get(state, "dim")
    text = Text("Telegram ", style="bold")
    text.append(state, style=style)
    if detail:
        text.append(f" ({detail[:80]})", style=style)
    return text


class StatusHeader(Static):
    """Rendered from plain data the screen hands over; it keeps no engine reference."""

    def __init__(self, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self._clock = clock
        self.hosts: list[str] = []
        self.links: dict[str, LinkStatus] = {}
        self.seqs: dict[str, int] = {}
        self.running: list[AttemptRow] = []
        self.latest: AttemptRow | None = None
        self.claude: ClaudeState | None = None
        self.telegram: tuple[str, str | None] = ("off", None)
        self.hold: QueueHold | None = None
        # Regressed errors nobody answered yet: the alarm that leads the first line.
        self.regressed = 0
        self._shown: Text | None = None

    def set_links(self, statuses: Iterable[LinkStatus]) -> None:
        for status in statuses:
            self.links[status.host] = status
            if status.host not in self.hosts:
                self.hosts.append(status.host)
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def _tail(self, *, cost: bool, detail: bool) -> Text:
        """The second line's end: the queue's hold (or today's cost) and Telegram."""
        tail = Text()
        hold = self.hold
        if hold is not None and (cost or hold.over_budget or hold.rate_limited_until):
            tail.append_text(hold_text(hold))
            tail.append("   ")
        state, why = self.telegram
        tail.append_text(telegram_text(state, why if detail else None))
        return tail

    def redraw(self) -> None:
        """Two lines, each cut to the width at word boundaries: the regression alarm (when
        any) and the hosts share the first (however many are down, and however long their
        errors), Claude the second with the cost and Telegram kept whole at its end."""
        now = self._clock()
        gap = "   "
        width = max(1, self.content_size.width or 160)
        alarm = alarm_text(self.regressed)
        left = max(1, width - (alarm.cell_len + 1 if alarm else 0))  # the hosts' room
        hosts = [link_text(h, self.links.get(h), self.seqs.get(h)) for h in self.hosts]
        if hosts and sum(h.cell_len for h in hosts) + len(gap) * (len(hosts) - 1) > left:
            share = max(1, (left - len(gap) * (len(hosts) - 1)) // len(hosts))
            hosts = [
                fit_words(link_text(h, self.links.get(h), self.seqs.get(h), brief=True), share)
                for h in self.hosts
            ]
        line = Text(gap).join(hosts) if hosts else Text("no hosts configured", style="dim")
        line = fit_words(line, left)
        if alarm:
            line = fit_words(alarm + Text(" ") + line, width)
        claude = claude_text(self.running, now, self.claude, self.latest)
        # The longest tail that leaves Claude's part room to say all it says; when none
        # does, the shortest: the detail of Telegram's state goes first, then today's cost
        # (unless it holds the queue). Telegram's state itself always stays.
        tails = [self._tail(cost=True, detail=True), self._tail(cost=True, detail=False)]
        tails.append(self._tail(cost=False, detail=False))
        fits = (t for t in tails if width - t.cell_len - len(gap) >= claude.cell_len)
        tail = next(fits, tails[-1])
        room = width - tail.cell_len - len(gap)
        if room >= 16:
            status = fit_words(claude, room) + Text(gap) + tail
        else:
            status = fit_words(claude + Text(gap) + tail, width)
        text = Text("\n").join([line, status])
        # The console redraws the header at each repaint: only update when it changed, and
        # without a layout of the screen (every scrollbar redrawn): the header is two lines
        # high and as wide as the screen (styles.tcss) whatever it says.
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
