"""A service's ``[services.auto_merge]`` table: when an opened fix PR merges itself.

It is off unless ``enabled = true``. Every other key is a gate the fix must pass (see
:mod:`console.automerge.gates`) or says how the merge waits (``soak_minutes``), how many a
day it may make (``daily_limit``) and what happens when a merged fix does not hold
(``revert_on_regression``). Validated with the rest of the console config, once, at load.
"""

from __future__ import annotations

from agent.configschema import (
    boolean,
    config_table,
    integer,
    many,
    number,
    one_of,
    setting,
    text,
)
from console.fix.verdict import RISKS

DEFAULT_NEVER_PATHS: tuple[str, ...] = (
    ".github/**",
    "**/migrations/**",
    "package*.json",
    ".env*",
    "**/auth/**",
)


@config_table
class AutoMergePolicy:
    """The gates an auto-fix must pass before its PR is squash-merged without a person."""

    enabled: bool = setting(
        default=False,
        read=boolean(),
        doc="merge this service's fix PRs that pass every gate below, after the soak",
    )
    max_changed_lines: int = setting(
        default=20,
        read=integer(minimum=1),
        doc="at most this many lines added plus removed, and no binary file",
    )
    only_files_in_stack: bool = setting(
        default=True,
        read=boolean(),
        doc="the diff touches only files named by the error's in-app stack frames, plus tests",
    )
    require_tests: bool = setting(
        default=True,
        read=boolean(),
        doc="the caged test run passed and the diff changes a test file",
    )
    require_checks: bool = setting(
        default=True,
        read=boolean(),
        doc="the PR's own GitHub checks are green (check-runs and commit statuses)",
    )
    max_risk: str = setting(
        default="low",
        read=one_of(RISKS),
        doc="the highest risk the attempt's verdict may give (`low`, `medium`, `high`)",
    )
    never_paths: tuple[str, ...] = setting(
        default=DEFAULT_NEVER_PATHS,
        read=many(text(), "glob patterns"),
        doc="a diff touching any of these globs is never merged automatically (matched as "
        "`sensitive_paths` are)",
    )
    soak_minutes: float = setting(
        default=30.0,
        read=number(minimum=0),
        doc="how long to wait after the checks pass before merging; a person can stop it "
        "meanwhile (`x` in the console, Stop on Telegram)",
    )
    daily_limit: int = setting(
        default=3,
        read=integer(minimum=1),
        doc="automatic merges for this service per UTC day",
    )
    revert_on_regression: bool = setting(
        default=False,
        read=boolean(),
        doc="when an automatically merged fix's error regresses, open its revert PR by itself "
        "(as `auto-merge`); either way the regression pauses auto-merge for the service until "
        "a person resumes it (`x` in the console, Resume on Telegram)",
    )
