"""The scripted Messages API the tests point the real Claude Code CLI at.

It is the product's own (``autofix demo`` runs its scripted model on it), so the tests and
the demo speak to the CLI through one implementation.
"""

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
]
