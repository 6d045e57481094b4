"""Severity of an error group: what kind of fault it is first, how often it happens second.

Some faults are outages whatever their count (the database is gone, auth is broken, the
process ran out of memory); those match ``critical_patterns`` or ``extra_critical_patterns``.
Everything else is ranked by how many times it has occurred, so a one-off glitch stays
``low`` and a fault that keeps firing climbs to ``high``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from agent.config import DetectionConfig
from agent.wire import severity_rank


@lru_cache(maxsize=32)
def _critical_regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation for all patterns, compiled once per distinct config."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def error_text(error_type: str, message: str, stack: Sequence[str]) -> str:
    """What :func:`classify` reads of an error: ``Type: message`` and the stack, a line each."""
    return "\n".join([f"{error_type}: {message}", *stack])


def classify(message_and_stack_text: str, count: int, config: DetectionConfig) -> str:
    """Rank an error group as "critical", "high", "medium" or "low".

    The text is :func:`error_text`: the error type, message and stack joined, so a pattern
    can key on any of them (a MongoNetworkError is critical whatever its message says).
    """
    regex = _critical_regex(config.all_critical_patterns)
    if regex is not None and regex.search(message_and_stack_text or "") is not None:
        return "critical"
    if count >= config.high_count:
        return "high"
    if count >= config.medium_count:
        return "medium"
    return "low"


def meets(severity: str, minimum: str) -> bool:
    """Whether a group is severe enough to relay under the configured minimum severity.

    Raises ``agent.wire.WireError`` for a name outside ``agent.wire.SEVERITIES``.
    """
    return severity_rank(severity) >= severity_rank(minimum)
