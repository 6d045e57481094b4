"""The gates of an auto-merge policy: each a pure function of what is known about a fix.

Every gate returns a :class:`GateResult` with a short reason a person reads ("8 lines",
"risk medium, above max_risk low"), so any merge, or any refusal to merge, is explained by
the list of its gates. Nothing here reads the store, git or GitHub: the scheduler gathers a
:class:`Candidate` and asks :func:`evaluate`, and the review screen and Telegram show the
same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from console.automerge.policy import AutoMergePolicy
from console.fix.diffstat import FileStat
from console.fix.github import CheckSummary
from console.fix.paths import is_test_path, touched_sensitive
from console.fix.verdict import RISKS

# How many names a reason lists before it says "and N more".
_NAMES_SHOWN = 3


@dataclass(frozen=True)
class GateResult:
    """One gate's answer: ``passed``, or ``pending`` (not known yet: checks still running),
    or failed; ``reason`` says why in a few words."""

    name: str
    passed: bool
    reason: str
    pending: bool = False

    @property
    def failed(self) -> bool:
        return not self.passed and not self.pending


@dataclass(frozen=True)
class Candidate:
    """What the gates look at for one fix PR.

    ``stack_files`` are the repository files the error's in-app frames name;
    ``tests_passed`` is the last caged test run (None: none ran); ``checks`` is what GitHub
    said (None: not read yet); ``merged_today`` counts this service's auto-merges of the UTC
    day; ``paused`` is why auto-merge is paused for the service (None: it is not).
    """

    stat: tuple[FileStat, ...]
    stack_files: tuple[str, ...]
    tests_passed: bool | None
    risk: str | None
    checks: CheckSummary | None
    merged_today: int
    paused: str | None = None


def _names(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_NAMES_SHOWN])
    more = len(paths) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _changed_paths(stat: Sequence[FileStat]) -> list[str]:
    paths: list[str] = []
    for entry in stat:
        for path in (entry.old_path, entry.path):
            if path and path not in paths:
                paths.append(path)
    return paths


def changed_lines(stat: Sequence[FileStat], maximum: int) -> GateResult:
    """Lines added plus removed at most ``maximum``; a binary file has no lines to count,
    so it never passes."""
    binary = [s.path for s in stat if s.binary]
    if binary:
        return GateResult("lines", False, f"binary file {_names(binary)}")
    lines = sum(s.added + s.removed for s in stat)
    if not stat:
        return GateResult("lines", False, "no change")
    if lines > maximum:
        return GateResult("lines", False, f"{lines} lines, above max_changed_lines {maximum}")
    return GateResult("lines", True, f"{lines} line{'s' if lines != 1 else ''}")


def files_in_stack(
    stat: Sequence[FileStat], stack_files: Sequence[str], required: bool
) -> GateResult:
    """Every changed file is one the error's in-app frames name, or a test."""
    if not required:
        return GateResult("stack", True, "any files")
    if not stack_files:
        return GateResult("stack", False, "the stack names no file of the repository")
    outside = [p for p in _changed_paths(stat) if p not in stack_files and not is_test_path(p)]
    if outside:
        return GateResult("stack", False, f"{_names(outside)} not in the stack")
    return GateResult("stack", True, "only stack files")


def tests(tests_passed: bool | None, stat: Sequence[FileStat], required: bool) -> GateResult:
    """The caged test run passed and the diff changes a test file."""
    if not required:
        return GateResult("tests", True, "tests not required")
    if tests_passed is None:
        return GateResult("tests", False, "no test run")
    if not tests_passed:
        return GateResult("tests", False, "tests fail")
    if not any(is_test_path(p) for p in _changed_paths(stat)):
        return GateResult("tests", False, "tests pass but no test file changed")
    return GateResult("tests", True, "tests pass")


def checks(summary: CheckSummary | None, required: bool) -> GateResult:
    """The PR's GitHub checks are green; pending while any runs or none has reported."""
    if not required:
        return GateResult("checks", True, "checks not required")
    if summary is None:
        return GateResult("checks", False, "checks not read yet", pending=True)
    if summary.failed:
        return GateResult("checks", False, f"checks failed: {_names(summary.failed)}")
    if summary.pending:
        total = len(summary.pending) + len(summary.passed)
        return GateResult(
            "checks", False, f"checks running: {len(summary.pending)} of {total}", pending=True
        )
    if not summary.passed:
        return GateResult("checks", False, "no checks reported yet", pending=True)
    return GateResult("checks", True, "checks green")


def risk(verdict_risk: str | None, max_risk: str) -> GateResult:
    """The verdict's risk is at most ``max_risk`` (``low`` < ``medium`` < ``high``)."""
    if verdict_risk not in RISKS:
        return GateResult("risk", False, "no verdict risk")
    if RISKS.index(verdict_risk) > RISKS.index(max_risk):
        return GateResult("risk", False, f"risk {verdict_risk}, above max_risk {max_risk}")
    return GateResult("risk", True, f"risk {verdict_risk}")


def never_paths(stat: Sequence[FileStat], patterns: Sequence[str]) -> GateResult:
    """No changed path matches a ``never_paths`` glob."""
    hits = touched_sensitive(stat, patterns)
    if hits:
        return GateResult("paths", False, f"touches {_names(hits)} (never_paths)")
    return GateResult("paths", True, "no never_paths")


def daily_limit(merged_today: int, limit: int) -> GateResult:
    """Fewer than ``limit`` automatic merges for the service so far this UTC day."""
    if merged_today >= limit:
        return GateResult("daily", False, f"daily limit reached: {merged_today} of {limit} today")
    return GateResult("daily", True, f"{merged_today} of {limit} today")


def not_paused(paused: str | None) -> GateResult:
    """Auto-merge is not paused for the service (a regression pauses it)."""
    if paused is not None:
        return GateResult("paused", False, f"paused: {paused}")
    return GateResult("paused", True, "not paused")


@dataclass(frozen=True)
class Gates:
    """Every gate's result for one candidate, in the order a person reads them."""

    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if r.failed)

    @property
    def pending(self) -> bool:
        """No gate failed but one is not known yet (the checks are still running)."""
        return not self.failed and any(r.pending for r in self.results)

    def summary(self) -> str:
        """The reasons in one line: ``8 lines, only stack files, tests pass, ...``."""
        return ", ".join(r.reason for r in self.results)

    def refusal(self) -> str:
        """Why the fix is not merged automatically: the failed gates' reasons."""
        return "; ".join(r.reason for r in self.failed)


def evaluate(policy: AutoMergePolicy, candidate: Candidate) -> Gates:
    """Every gate of ``policy`` on ``candidate``."""
    return Gates(
        (
            changed_lines(candidate.stat, policy.max_changed_lines),
            files_in_stack(candidate.stat, candidate.stack_files, policy.only_files_in_stack),
            tests(candidate.tests_passed, candidate.stat, policy.require_tests),
            checks(candidate.checks, policy.require_checks),
            risk(candidate.risk, policy.max_risk),
            never_paths(candidate.stat, policy.never_paths),
            daily_limit(candidate.merged_today, policy.daily_limit),
            not_paused(candidate.paused),
        )
    )
