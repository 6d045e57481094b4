"""Every refusal of a fix attempt, as one record per tool call.

Claude Code reports a refused call in several places, none of them complete: a mode denial
comes as a ``system/permission_denied`` event, a deny rule only as the tool result's error
text (and its ``tool_result_meta``), and the result line lists most of them again. A call
that did run can still be stopped by the Bash sandbox, which only shows in the command's
output (``Read-only file system``, ``ECONNREFUSED``). The collector reads all of these and
keeps one :class:`~console.models.Denial` per call, naming the deny rule when one matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import PurePosixPath

from console.fix.transcript import Event, PermissionDenied, Result, ToolResult, ToolUse
from console.models import Denial

# Which rule name governs a tool's paths (Claude Code matches Read and Edit rules only).
_RULE_NAME = {
    "Read": "Read",
    "Glob": "Read",
    "Grep": "Read",
    "Edit": "Edit",
    "Write": "Edit",
    "MultiEdit": "Edit",
    "NotebookEdit": "Edit",
}
# Stronger evidence replaces weaker for the same call.
_RANK = {"refused": 1, "mode": 2, "sandbox": 3, "rule": 4}
_REASONS = {
    "mode": "no allow rule for this call (dontAsk mode)",
    "subcommandResults": "part of the command has no allow rule",
}
# What a sandboxed command prints when bubblewrap or the missing network stopped it.
SANDBOX_SIGNS = re.compile(
    r"read-only file system|\bEROFS\b|\bECONNREFUSED\b|couldn't connect to server|"
    r"failed to connect|could not resolve host|\bEAI_AGAIN\b|\bENOTFOUND\b|"
    r"network is unreachable|\bENETUNREACH\b|operation not permitted|\bEPERM\b|"
    r"\bEACCES\b|permission denied",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*(\w+)\((.*)\)\s*$")


class DenialCollector:
    """Feed it a run's events in order; :meth:`feed` returns each new or sharper denial."""

    def __init__(self, deny_rules: Iterable[str] = (), root: str | None = None) -> None:
        self.deny_rules = tuple(deny_rules)
        self.root = root
        self._uses: dict[str, ToolUse] = {}
        self._found: dict[str, Denial] = {}

    @property
    def denials(self) -> list[Denial]:
        """One record per refused call, in the order the calls were made."""
        return list(self._found.values())

    def feed(self, event: Event) -> Denial | None:
        if isinstance(event, ToolUse):
            self._uses[event.id] = event
            return None
        if isinstance(event, PermissionDenied):
            reason = _REASONS.get(event.reason_type, _first_line(event.message))
            kind = "rule" if event.reason_type == "rule" else "mode"
            return self._add(event.tool_use_id, event.tool_name, kind, reason)
        if isinstance(event, ToolResult):
            return self._result(event)
        if isinstance(event, Result):
            found = None
            for denial in event.permission_denials:
                use = ToolUse(denial.tool_use_id, denial.tool_name, denial.tool_input)
                self._uses.setdefault(denial.tool_use_id, use)
                new = self._add(
                    denial.tool_use_id, denial.tool_name, "refused", "refused by Claude Code"
                )
                found = new or found
            return found
        return None

    def _result(self, event: ToolResult) -> Denial | None:
        use = self._uses.get(event.tool_use_id)
        tool = use.name if use else ""
        text = event.content
        if event.refused or (event.is_error and _refusal_text(text)):
            kind = event.reason_type or _kind_from_text(text)
            if kind == "rule":
                rule = self.matching_rule(use)
                reason = f"deny rule {rule}" if rule else _first_line(text)
            else:
                reason = _REASONS.get(kind, _first_line(text))
                kind = "mode"
            return self._add(event.tool_use_id, tool, kind, reason)
        if event.decision not in (None, "accept"):
            return None
        if tool not in ("Bash", ""):
            # Only commands run in the sandbox; a file that mentions ECONNREFUSED is no refusal.
            return None
        sign = next((ln for ln in text.splitlines() if SANDBOX_SIGNS.search(ln)), None)
        if sign is not None:
            return self._add(event.tool_use_id, tool, "sandbox", f"sandbox: {sign.strip()[:200]}")
        return None

    def matching_rule(self, use: ToolUse | None) -> str | None:
        """The first deny rule whose path pattern covers the call's path."""
        if use is None:
            return None
        path = _target_path(use)
        name = _RULE_NAME.get(use.name)
        if not path or name is None:
            return None
        for rule in self.deny_rules:
            match = _RULE.match(rule)
            if match and match.group(1) == name and _path_matches(match.group(2), path, self.root):
                return rule
        return None

    def _add(self, use_id: str, tool: str, kind: str, reason: str) -> Denial | None:
        old = self._found.get(use_id)
        if old is not None and _RANK[kind] <= _RANK.get(old.kind, 0):
            return None
        use = self._uses.get(use_id)
        name = tool or (use.name if use else "") or (old.tool if old else "tool")
        denial = Denial(
            tool=name, target=target_of(use), kind=kind, reason=reason, tool_use_id=use_id
        )
        self._found[use_id] = denial
        return denial


def target_of(use: ToolUse | None) -> str:
    """What a call aimed at: its path, its command, or its input."""
    if use is None:
        return ""
    if use.name == "Bash":
        return str(use.input.get("command", ""))
    path = _target_path(use)
    if path:
        return path
    pattern = use.input.get("pattern")
    return str(pattern) if pattern is not None else use.summary


def _target_path(use: ToolUse) -> str:
    for key in ("file_path", "notebook_path", "path"):
        value = use.input.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _refusal_text(text: str) -> bool:
    lowered = text.lower()
    return any(
        sign in lowered
        for sign in (
            "denied by your permission settings",
            "has been denied",
            "require approval",
            "requires approval",
            "confines the file tools",
        )
    )


def _kind_from_text(text: str) -> str:
    return "rule" if "denied by your permission settings" in text.lower() else "mode"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        clean = re.sub(r"</?tool_use_error>", "", line).strip()
        if clean:
            return clean[:200]
    return "refused"


def _path_matches(pattern: str, path: str, root: str | None) -> bool:
    """Claude Code's path rule syntax: ``//abs``, ``**/anywhere``, or relative to the worktree."""
    if not path.startswith("/") and root:
        path = str(PurePosixPath(root) / path)
    if pattern.startswith("//"):
        anchored = pattern[1:]
    elif pattern.startswith("**"):
        anchored = pattern
    elif root and not pattern.startswith(("/", "~")):
        anchored = str(PurePosixPath(root) / pattern.removeprefix("./"))
    else:
        return False
    return _glob(anchored).fullmatch(str(PurePosixPath(path))) is not None


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    """A gitignore-style glob as a regex: ``**`` spans directories, ``*`` does not."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
