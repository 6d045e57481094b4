"""Where one fix PR stands on its way to an automatic merge, as the views show it.

The scheduler publishes a :class:`MergePlan` each time it moves; the review screen, the
errors table's notices and the Telegram message all render the same plan with
:meth:`MergePlan.line`, so the console and the phone say the same words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from console.automerge.gates import Gates


class MergeStep(StrEnum):
    """The steps of an automatic merge; the last three are final."""

    CHECKS = "checks"  # waiting for the PR's GitHub checks
    SOAKING = "soaking"  # every gate passed; waiting soak_minutes, a person can stop it
    MERGING = "merging"  # the merge request is on its way to GitHub
    MERGED = "merged"
    STOPPED = "stopped"  # a person stopped it
    REFUSED = "refused"  # a gate failed (or GitHub refused the merge)


FINAL_STEPS = frozenset({MergeStep.MERGED, MergeStep.STOPPED, MergeStep.REFUSED})
# Where a person can still stop it.
STOPPABLE_STEPS = frozenset({MergeStep.CHECKS, MergeStep.SOAKING})

# Decision actions the scheduler records (the decisions table is its memory across restarts).
MERGED_ACTION = "auto_merge"
STOPPED_ACTION = "stop_auto_merge"
REFUSED_ACTION = "auto_merge_refused"
PAUSED_ACTION = "pause_auto_merge"
RESUMED_ACTION = "resume_auto_merge"
OUTCOME_ACTIONS = (MERGED_ACTION, STOPPED_ACTION, REFUSED_ACTION)


@dataclass(frozen=True)
class MergePlan:
    """One fix PR's automatic merge: its step, every gate's result, and when it merges.

    ``due_at`` (epoch seconds) is the end of the soak; ``note`` is the last word once the
    plan is final (who stopped it, why it was refused, the merge commit).
    """

    attempt_id: int
    error_id: int
    service: str
    pr_number: int
    step: MergeStep
    gates: Gates
    due_at: float | None = None
    note: str = ""

    @property
    def stoppable(self) -> bool:
        return self.step in STOPPABLE_STEPS

    def line(self, now: float | None = None) -> str:
        """The plan in one line: ``auto-merge in 30 min: 8 lines, tests pass, ...``."""
        summary = self.gates.summary()
        if self.step is MergeStep.SOAKING and self.due_at is not None:
            left = max(0.0, self.due_at - (time.time() if now is None else now))
            return f"auto-merge in {_duration(left)}: {summary}"
        if self.step is MergeStep.CHECKS:
            return f"auto-merge waits for the checks: {summary}"
        if self.step is MergeStep.MERGING:
            return f"auto-merging PR #{self.pr_number}: {summary}"
        if self.step is MergeStep.MERGED:
            return f"auto-merged PR #{self.pr_number} ({self.note}): {summary}"
        if self.step is MergeStep.STOPPED:
            return f"auto-merge stopped by {self.note}"
        return f"not auto-merged: {self.note}"


def _duration(seconds: float) -> str:
    if seconds >= 90:
        return f"{round(seconds / 60)} min"
    return f"{max(1, round(seconds))} s"
