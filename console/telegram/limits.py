"""Fitting HTML messages into Telegram's limits without ever cutting inside markup.

A message is assembled from :class:`Part` values: fixed markup written here (tags, icons)
around plain text that came from outside (error messages, diffs, Claude's summary). Only the
plain text is ever cut, and it is cut *before* escaping, so an ``&amp;`` or a closing tag can
never be split. Lengths are counted in UTF-16 code units, as Telegram counts them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
ANSWER_LIMIT = 200  # answerCallbackQuery text
ELLIPSIS = "…"


def tg_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji is usually two)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def escape_within(text: str, budget: int) -> str:
    """``text`` escaped, cut (with an ellipsis) so the escaped result fits ``budget``."""
    full = escape(text)
    if tg_len(full) <= budget:
        return full
    room = budget - tg_len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for char in text:
        piece = escape(char)
        size = tg_len(piece)
        if used + size > room:
            break
        out.append(piece)
        used += size
    return "".join(out) + ELLIPSIS if room >= 0 else ""


def clip(text: str, limit: int) -> str:
    """Plain text cut to ``limit`` characters with an ellipsis (for answers and captions)."""
    if tg_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        if used + tg_len(char) > limit - 1:
            break
        out.append(char)
        used += tg_len(char)
    return "".join(out) + ELLIPSIS


@dataclass(frozen=True)
class Part:
    """Plain ``text`` to escape between fixed markup; ``cap`` bounds it before fitting."""

    text: str
    before: str = ""
    after: str = ""
    cap: int | None = None


def markup(html_text: str) -> Part:
    """A part that is trusted markup written in this package, never cut."""
    return Part("", before=html_text)


def fit(parts: Sequence[Part], limit: int = MESSAGE_LIMIT) -> str:
    """Join parts into HTML no longer than ``limit``, shortening the longest texts first."""
    budgets = [tg_len(escape(p.text)) if p.cap is None else p.cap for p in parts]
    pieces = [escape_within(p.text, b) for p, b in zip(parts, budgets, strict=True)]
    fixed = sum(tg_len(p.before) + tg_len(p.after) for p in parts)
    if fixed > limit:
        raise ValueError("fixed markup alone exceeds the message limit")
    while True:
        total = fixed + sum(tg_len(piece) for piece in pieces)
        if total <= limit:
            return "".join(
                p.before + piece + p.after for p, piece in zip(parts, pieces, strict=True)
            )
        longest = max(range(len(pieces)), key=lambda i: tg_len(pieces[i]))
        budget = max(0, tg_len(pieces[longest]) - (total - limit))
        pieces[longest] = escape_within(parts[longest].text, budget)
