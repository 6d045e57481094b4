"""The scripted Messages API the tests point the real Claude Code CLI at.

It is the product's own (``autofix demo`` runs its scripted model on it), so the tests and
the demo speak to the CLI through one implementation.
"""

from typing import Any

from console.demo.messages_api import (
    ApiError,
    MessagesApi,
    Request,
    Script,
    Stall,
    Text,
    ToolCall,
    Turn,
    assistant_turns,
    tool_id,
    verdict_call,
)

__all__ = [
    "ApiError",
    "MessagesApi",
    "Request",
    "Script",
    "Stall",
    "Text",
    "ToolCall",
    "Turn",
    "assistant_turns",
    "tool_id",
    "verdict_call",
]


def by_round(*rounds: list[Turn]) -> Script:
    """A script for an attempt of several rounds in one resumed session: ``rounds[i]`` are
    the turns of round ``i + 1``. A round begins at a user message carrying the console's
    failing test output (a ``TEST-DATA`` block); turns count from there, so the script
    does not depend on how the CLI replays the earlier rounds."""

    def answer(body: dict[str, Any]) -> Turn:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        starts = [i for i, m in enumerate(messages) if _has_test_data(m)]
        after = messages[starts[-1] + 1 :] if starts else messages
        turns = rounds[min(len(starts), len(rounds) - 1)]
        done = sum(1 for m in after if m.get("role") == "assistant")
        return turns[done] if done < len(turns) else [Text("(round exhausted)")]

    return answer


def _has_test_data(message: dict[str, Any]) -> bool:
    if message.get("role") != "user":
        return False
    content = message.get("content")
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    return any(
        isinstance(b, dict) and "BEGIN TEST-DATA-" in str(b.get("text") or "") for b in blocks
    )
