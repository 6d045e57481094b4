"""What the parser hands to the rest of the agent: one error occurrence, already redacted."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Frame:
    """One stack frame, reduced to what identifies code rather than a deployment.

    ``path`` is as printed in the log; ``in_app`` is false for node_modules, node:internal,
    the runtime's own library and similar frames.
    """

    function: str
    path: str
    line: int | None = None
    column: int | None = None
    in_app: bool = True


@dataclass(frozen=True)
class ErrorRecord:
    """One occurrence of an error as assembled from one or more log lines.

    ``stack`` holds the stack lines as they appeared (redacted); ``frames`` the parsed
    frames from them. ``timestamp`` is an ISO 8601 UTC string taken from the log line when
    it carries one, otherwise ``None`` (the caller then uses the time it read the line).
    """

    error_type: str
    message: str
    stack: list[str] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    route: str | None = None
    timestamp: str | None = None
    raw: str = ""
