"""The verdict every attempt ends with: what Claude concluded, checked again on this side.

Claude Code is handed :data:`VERDICT_SCHEMA` with ``--json-schema`` and returns its answer in
the result line's ``structured_output``. The CLI checks it against the schema, but the value
still comes from a model, so :func:`parse_verdict` checks every field again before anything
acts on it; a value that does not pass is a failed attempt whose reason names the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("fixed", "not_a_code_bug", "needs_human")
RISKS = ("low", "medium", "high")
TEXT_CHARS = 4000
MAX_FILES = 50
MAX_QUESTIONS = 10

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "outcome": {
            "type": "string",
            "enum": list(OUTCOMES),
            "description": "fixed: the code had the bug and the change fixes it; "
            "not_a_code_bug: the error comes from outside the code (config, data, "
            "infrastructure), so no change is made; needs_human: a person must decide.",
        },
        "root_cause": {"type": "string", "description": "One paragraph: why the error happens."},
        "summary": {"type": "string", "description": "What was changed, or what to do."},
        "risk": {"type": "string", "enum": list(RISKS)},
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "why": {"type": "string"}},
                "required": ["path", "why"],
                "additionalProperties": False,
            },
        },
        "questions": {
            "type": "array",
            "items": {"type": "string"},
            "description": "For needs_human: what the person must answer.",
        },
    },
    "required": ["outcome", "root_cause", "summary", "risk", "files"],
    "additionalProperties": False,
}


class VerdictError(ValueError):
    """A verdict that is missing or does not match the schema; the message says where."""


@dataclass(frozen=True)
class FileNote:
    """A file the verdict names, and why."""

    path: str
    why: str


@dataclass(frozen=True)
class Verdict:
    """Claude's conclusion about one error, as checked by :func:`parse_verdict`."""

    outcome: str
    root_cause: str
    summary: str
    risk: str
    files: tuple[FileNote, ...] = ()
    questions: tuple[str, ...] = field(default=())

    @property
    def is_fix(self) -> bool:
        """Whether the attempt goes on to tests and a diff (the other outcomes are reports)."""
        return self.outcome == "fixed"

    def encode(self) -> str:
        """The verdict as the JSON the store keeps."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def decode(cls, text: str | None) -> Verdict | None:
        """A stored verdict, or None when there is none (or it no longer reads)."""
        if not text:
            return None
        try:
            return parse_verdict(json.loads(text))
        except (ValueError, VerdictError):
            return None


def parse_verdict(value: object) -> Verdict:
    """Check a verdict as it came from the CLI; raises :class:`VerdictError` naming the
    first field that is missing, of the wrong type or out of range."""
    if value is None:
        raise VerdictError("no verdict: Claude Code returned no structured output")
    if not isinstance(value, dict):
        raise VerdictError(f"the verdict is {type(value).__name__}, not an object")
    unknown = sorted(set(value) - set(VERDICT_SCHEMA["properties"]))
    if unknown:
        raise VerdictError(f"unknown verdict field(s): {', '.join(map(str, unknown))}")
    outcome = _choice(value, "outcome", OUTCOMES)
    risk = _choice(value, "risk", RISKS)
    files_value = value.get("files")
    if not isinstance(files_value, list):
        raise VerdictError("verdict field 'files' is missing or not a list")
    if len(files_value) > MAX_FILES:
        raise VerdictError(
            f"verdict field 'files' names {len(files_value)} files (at most {MAX_FILES})"
        )
    files = []
    for i, item in enumerate(files_value):
        if not isinstance(item, dict) or set(item) != {"path", "why"}:
            raise VerdictError(f"verdict field 'files[{i}]' is not an object of path and why")
        files.append(
            FileNote(_text(item, "path", f"files[{i}].path"), _text(item, "why", f"files[{i}].why"))
        )
    questions_value = value.get("questions", [])
    if not isinstance(questions_value, list) or not all(
        isinstance(q, str) for q in questions_value
    ):
        raise VerdictError("verdict field 'questions' is not a list of strings")
    if len(questions_value) > MAX_QUESTIONS:
        raise VerdictError(
            f"verdict field 'questions' has {len(questions_value)} entries "
            f"(at most {MAX_QUESTIONS})"
        )
    questions = tuple(q.strip()[:TEXT_CHARS] for q in questions_value if q.strip())
    if outcome == "needs_human" and not questions:
        raise VerdictError("verdict needs_human without any 'questions'")
    return Verdict(
        outcome=outcome,
        root_cause=_text(value, "root_cause"),
        summary=_text(value, "summary"),
        risk=risk,
        files=tuple(files),
        questions=questions,
    )


def _choice(value: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    found = value.get(key)
    if found not in allowed:
        raise VerdictError(
            f"verdict field {key!r} is {found!r}; expected one of {', '.join(allowed)}"
        )
    return str(found)


def _text(value: dict[str, Any], key: str, name: str | None = None) -> str:
    found = value.get(key)
    if not isinstance(found, str) or not found.strip():
        raise VerdictError(f"verdict field {name or key!r} is missing or empty")
    return found.strip()[:TEXT_CHARS]


def report_title(verdict: Verdict) -> str:
    """How a report is named where it is shown (review, Telegram, notices)."""
    return {
        "fixed": "fixed",
        "not_a_code_bug": "not a code bug",
        "needs_human": "needs a person",
    }[verdict.outcome]
