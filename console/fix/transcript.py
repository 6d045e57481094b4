"""Typed events from the Claude Code CLI's ``--output-format stream-json`` output.

The CLI's stream is the only record of what a fix attempt did, and its shape changes
between CLI versions. Every line therefore parses to *something*: known shapes become typed
events, anything else (a new event type, a malformed line) becomes :class:`Unknown` so the
caller can keep the raw text and carry on.
"""

from __future__ import annotations

import difflib
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar

SUMMARY_WIDTH = 120


@dataclass(frozen=True)
class SystemInit:
    """The first line of a run: which session, model, directory and tools the CLI settled on."""

    session_id: str
    model: str
    cwd: str
    tools: tuple[str, ...]
    permission_mode: str
    mcp_servers: tuple[str, ...] = ()
    sandbox_enabled: bool | None = None
    version: str = ""


@dataclass(frozen=True)
class PermissionDenied:
    """The CLI refused a tool call before it ran (``system/permission_denied``).

    ``reason_type`` is the CLI's own word for why: ``mode`` (no allow rule in dontAsk
    mode), ``rule`` (a deny rule), ``subcommandResults`` (a part of a compound command).
    """

    tool_name: str
    tool_use_id: str
    reason_type: str
    message: str


@dataclass(frozen=True)
class SystemNotice:
    """Any other ``system`` line (a Bash task starting or ending, a hook, a status): kept
    typed so views can pass over it quietly."""

    subtype: str


@dataclass(frozen=True)
class AssistantText:
    """Text the model wrote. ``error`` is set on the CLI's synthetic failure messages."""

    text: str
    error: str | None = None


@dataclass(frozen=True)
class ToolUse:
    """A tool call the model asked for (it may still be refused by the CLI)."""

    id: str
    name: str
    input: dict[str, Any]
    root: str | None = field(default=None, compare=False)

    @property
    def summary(self) -> str:
        """One readable line for a live view: what the call touches, not its full input."""
        return _one_line(_summarise(self.name, self.input, self.root))


@dataclass(frozen=True)
class ToolResult:
    """What the CLI sent back to the model for one tool call (output, error or refusal)."""

    tool_use_id: str
    content: str
    is_error: bool
    # From the CLI's ``tool_result_meta``: ``reject`` when the permission check refused the
    # call, ``accept`` when it ran; ``reason_type`` as in :class:`PermissionDenied`.
    decision: str | None = None
    reason_type: str | None = None

    @property
    def refused(self) -> bool:
        """True when the permission check refused the call (it never ran)."""
        return self.decision == "reject"


@dataclass(frozen=True)
class PermissionDenial:
    """A tool call the CLI refused because the permission rules did not allow it."""

    tool_name: str
    tool_use_id: str
    tool_input: dict[str, Any]


@dataclass(frozen=True)
class Result:
    """The closing line of a run; the only authority on whether the run succeeded.

    The subtype alone is not enough: a run that could not log in reports
    ``"subtype": "success"`` together with ``"is_error": true``.
    """

    is_error: bool
    subtype: str
    result_text: str
    num_turns: int | None
    total_cost_usd: float | None
    duration_ms: int | None
    permission_denials: list[PermissionDenial]
    terminal_reason: str | None
    errors: list[str] = field(default_factory=list)
    api_error_status: int | None = None
    # What the model returned for ``--json-schema`` (None when it returned nothing).
    structured_output: Any = None
    session_id: str | None = None

    @property
    def ok(self) -> bool:
        """True only when the CLI reported neither an error flag nor an error subtype."""
        return not self.is_error and self.subtype == "success"

    @property
    def message(self) -> str:
        """The CLI's own words for how the run ended, for showing to a person."""
        parts = [p for p in [self.result_text, *self.errors] if p]
        if parts:
            return "; ".join(dict.fromkeys(parts))
        return self.subtype or "no message"


@dataclass(frozen=True)
class RateLimitEvent:
    """The CLI's ``rate_limit_event``: its account's limit changed state.

    ``status`` is ``allowed``, ``allowed_warning`` or ``rejected``; ``resets_at`` is when
    the limit resets, in epoch seconds, when the CLI says.
    """

    status: str
    resets_at: float | None
    limit_type: str | None = None


@dataclass(frozen=True)
class RoundStart:
    """The console starting another round of an attempt in the same Claude session.

    Not a CLI line: the console writes it into the transcript between two runs (see
    :meth:`line`), so a transcript read back shows where each round began.
    """

    number: int
    rounds: int
    reason: str

    TYPE: ClassVar[str] = "autofix_round"

    def line(self) -> str:
        """The transcript line that stands for this separator."""
        return json.dumps(
            {"type": self.TYPE, "round": self.number, "rounds": self.rounds, "reason": self.reason}
        )

    @property
    def text(self) -> str:
        """The separator as a person reads it."""
        return f"── round {self.number} of {self.rounds}: {self.reason} ──"


@dataclass(frozen=True)
class Unknown:
    """A line (or part of one) this parser does not understand; kept verbatim."""

    raw: str
    note: str = ""


Event = (
    SystemInit
    | SystemNotice
    | AssistantText
    | ToolUse
    | ToolResult
    | PermissionDenied
    | Result
    | RateLimitEvent
    | RoundStart
    | Unknown
)


class StreamParser:
    """Parses a run's lines in order, remembering the working directory from the init line
    so tool summaries can show paths relative to the worktree."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root

    def feed(self, line: str) -> list[Event]:
        events = parse_line(line, root=self.root)
        for event in events:
            if isinstance(event, SystemInit) and event.cwd:
                self.root = event.cwd
        return events


def parse_line(line: str, root: str | None = None) -> list[Event]:
    """Turn one stream-json line into events; never raises, whatever the line holds."""
    stripped = line.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
    except ValueError as exc:
        return [Unknown(line, f"not JSON: {exc}")]
    if not isinstance(data, dict):
        return [Unknown(line, "not a JSON object")]
    try:
        return _parse_object(data, line, root)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        return [Unknown(line, f"unexpected shape: {exc}")]


def _parse_object(data: dict[str, Any], line: str, root: str | None) -> list[Event]:
    kind = data.get("type")
    if kind == RoundStart.TYPE:
        return [
            RoundStart(
                number=_int(data.get("round")) or 0,
                rounds=_int(data.get("rounds")) or 0,
                reason=_str(data.get("reason")),
            )
        ]
    if kind == "system" and data.get("subtype") == "init":
        return [
            SystemInit(
                session_id=_str(data.get("session_id")),
                model=_str(data.get("model")),
                cwd=_str(data.get("cwd")),
                tools=tuple(_str(t) for t in data.get("tools") or []),
                permission_mode=_str(data.get("permissionMode")),
                mcp_servers=tuple(_server_name(s) for s in data.get("mcp_servers") or []),
                sandbox_enabled=_bool(data.get("sandbox_enabled")),
                version=_str(data.get("claude_code_version")),
            )
        ]
    if kind == "system" and data.get("subtype") == "permission_denied":
        return [
            PermissionDenied(
                tool_name=_str(data.get("tool_name")),
                tool_use_id=_str(data.get("tool_use_id")),
                reason_type=_str(data.get("decision_reason_type")),
                message=_str(data.get("message")),
            )
        ]
    if kind == "system":
        return [SystemNotice(_str(data.get("subtype")))]
    if kind == "assistant":
        return _assistant_events(data, line, root)
    if kind == "user":
        return _user_events(data, line)
    if kind == "result":
        return [_result(data)]
    if kind == "rate_limit_event":
        info = _dict(data.get("rate_limit_info"))
        return [
            RateLimitEvent(
                _str(info.get("status")),
                _float(info.get("resetsAt")),
                _str(info.get("rateLimitType")) or None,
            )
        ]
    return [Unknown(line, f"unhandled event type {kind!r}")]


def _assistant_events(data: dict[str, Any], line: str, root: str | None) -> list[Event]:
    message = data.get("message")
    if not isinstance(message, dict):
        return [Unknown(line, "assistant event without a message")]
    error = data.get("error")
    events: list[Event] = []
    for block in _blocks(message.get("content")):
        block_type = block.get("type")
        if block_type == "text":
            events.append(AssistantText(_str(block.get("text")), _str(error) if error else None))
        elif block_type == "tool_use":
            raw_input = block.get("input")
            events.append(
                ToolUse(
                    id=_str(block.get("id")),
                    name=_str(block.get("name")),
                    input=raw_input if isinstance(raw_input, dict) else {"value": raw_input},
                    root=root,
                )
            )
        else:
            events.append(Unknown(json.dumps(block), f"assistant block type {block_type!r}"))
    return events or [Unknown(line, "assistant message without content blocks")]


def _user_events(data: dict[str, Any], line: str) -> list[Event]:
    message = data.get("message")
    if not isinstance(message, dict):
        return [Unknown(line, "user event without a message")]
    decisions = _decisions(data.get("tool_result_meta"))
    events: list[Event] = []
    for block in _blocks(message.get("content")):
        if block.get("type") == "tool_result":
            use_id = _str(block.get("tool_use_id"))
            decision, reason_type = decisions.get(use_id, (None, None))
            events.append(
                ToolResult(
                    tool_use_id=use_id,
                    content=_content_text(block.get("content")),
                    is_error=bool(block.get("is_error")),
                    decision=decision,
                    reason_type=reason_type,
                )
            )
        else:
            events.append(Unknown(json.dumps(block), f"user block type {block.get('type')!r}"))
    return events or [Unknown(line, "user message without tool results")]


def _result(data: dict[str, Any]) -> Result:
    denials = [
        PermissionDenial(
            tool_name=_str(d.get("tool_name")),
            tool_use_id=_str(d.get("tool_use_id")),
            tool_input=_dict(d.get("tool_input")),
        )
        for d in data.get("permission_denials") or []
        if isinstance(d, dict)
    ]
    errors = data.get("errors")
    status = data.get("api_error_status")
    return Result(
        is_error=bool(data.get("is_error")),
        subtype=_str(data.get("subtype")),
        result_text=_str(data.get("result")),
        num_turns=_int(data.get("num_turns")),
        total_cost_usd=_float(data.get("total_cost_usd")),
        duration_ms=_int(data.get("duration_ms")),
        permission_denials=denials,
        terminal_reason=_str(data.get("terminal_reason")) or None,
        errors=[_str(e) for e in errors] if isinstance(errors, list) else [],
        api_error_status=_int(status),
        structured_output=data.get("structured_output"),
        session_id=_str(data.get("session_id")) or None,
    )


def _decisions(meta: Any) -> dict[str, tuple[str | None, str | None]]:
    """Permission decisions by tool_use id from a user event's ``tool_result_meta``."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for item in meta if isinstance(meta, list) else []:
        decision = item.get("permission_decision") if isinstance(item, dict) else None
        if isinstance(decision, dict):
            found[_str(item.get("id"))] = (
                _str(decision.get("decision")) or None,
                _str(decision.get("reason_type")) or None,
            )
    return found


def _server_name(server: Any) -> str:
    if isinstance(server, dict):
        return _str(server.get("name")) or json.dumps(server, sort_keys=True)
    return _str(server)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict)]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(_str(block.get("text")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'block')}]")
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _summarise(name: str, tool_input: dict[str, Any], root: str | None) -> str:
    path = _relative(_str(tool_input.get("file_path") or tool_input.get("path")), root)
    if name == "Read":
        offset, limit = tool_input.get("offset"), tool_input.get("limit")
        if isinstance(offset, int) and isinstance(limit, int):
            return f"Read {path}:{offset}-{offset + limit - 1}"
        return f"Read {path}"
    if name == "Edit":
        added, removed = _line_changes(
            _str(tool_input.get("old_string")), _str(tool_input.get("new_string"))
        )
        every = " everywhere" if tool_input.get("replace_all") else ""
        return f"Edit {path} (+{added} -{removed}){every}"
    if name == "MultiEdit":
        added = removed = 0
        for edit in tool_input.get("edits") or []:
            if isinstance(edit, dict):
                a, r = _line_changes(_str(edit.get("old_string")), _str(edit.get("new_string")))
                added, removed = added + a, removed + r
        return f"Edit {path} (+{added} -{removed})"
    if name == "Write":
        lines = len(_str(tool_input.get("content")).splitlines())
        return f"Write {path} ({lines} lines)"
    if name == "Bash":
        return f"Bash {_str(tool_input.get('command'))}"
    if name == "Glob":
        where = f" in {path}" if path else ""
        return f"Glob {_str(tool_input.get('pattern'))}{where}"
    if name == "Grep":
        where = f" in {path}" if path else ""
        return f"Grep {_str(tool_input.get('pattern'))!r}{where}"
    return f"{name} {json.dumps(tool_input, sort_keys=True)}"


def _relative(path: str, root: str | None) -> str:
    if not path or not root:
        return path
    try:
        return str(PurePosixPath(path).relative_to(PurePosixPath(root)))
    except ValueError:
        return path


def _line_changes(old: str, new: str) -> tuple[int, int]:
    """Lines added and removed by replacing ``old`` with ``new``, as a diff would count them."""
    added = removed = 0
    matcher = difflib.SequenceMatcher(a=old.splitlines(), b=new.splitlines(), autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed += a1 - a0
        if tag in ("replace", "insert"):
            added += b1 - b0
    return added, removed


def _one_line(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    clean = "".join(c for c in first if unicodedata.category(c) not in ("Cc", "Cf"))
    if len(clean) > SUMMARY_WIDTH or len(text.splitlines()) > 1:
        clean = clean[: SUMMARY_WIDTH - 1].rstrip() + "…"
    return clean
