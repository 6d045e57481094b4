"""Auto-merge's gates: each one refuses what its policy key forbids and says why, and the
whole policy passes only when every gate does."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.configschema import ConfigError
from console.automerge import gates
from console.automerge.policy import AutoMergePolicy
from console.config import parse_config
from console.fix.diffstat import FileStat
from console.fix.github import CheckSummary
from console.fix.paths import is_test_path
from console.fix.verdict import RISKS

POLICY = AutoMergePolicy(enabled=True)
GREEN = CheckSummary("abc", passed=("build", "ci/lint"))
FIX = (FileStat("src/users.js", 3, 1), FileStat("test/users.test.js", 4, 0))


def candidate(**changes: object) -> gates.Candidate:
    base = gates.Candidate(
        stat=FIX,
        stack_files=("src/users.js", "src/server.js"),
        tests_passed=True,
        risk="low",
        checks=GREEN,
        merged_today=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_small_tested_low_risk_fix_with_green_checks_passes_every_gate() -> None:
    result = gates.evaluate(POLICY, candidate())
    assert result.passed and not result.failed
    assert result.summary().startswith("8 lines, only stack files, tests pass, checks green")


@pytest.mark.parametrize(
    ("changes", "gate", "reason"),
    [
        ({"stat": (FileStat("src/users.js", 30, 1), FIX[1])}, "lines", "35 lines, above"),
        ({"stat": (*FIX, FileStat("test/fixture.png", 0, 0, binary=True))}, "lines", "binary file"),
        ({"stat": (*FIX, FileStat("src/billing.js", 1, 0))}, "stack", "src/billing.js not in"),
        ({"stack_files": ()}, "stack", "the stack names no file"),
        ({"tests_passed": False}, "tests", "tests fail"),
        ({"tests_passed": None}, "tests", "no test run"),
        ({"stat": FIX[:1]}, "tests", "no test file changed"),
        ({"checks": CheckSummary("abc", ("lint",), (), ("build",))}, "checks", "failed: build"),
        ({"risk": "medium"}, "risk", "risk medium, above max_risk low"),
        ({"risk": None}, "risk", "no verdict risk"),
        (
            {
                "stat": (*FIX, FileStat("src/auth/session.js", 1, 0)),
                "stack_files": ("src/users.js", "src/auth/session.js"),
            },
            "paths",
            "touches src/auth/session.js (never_paths)",
        ),
        ({"merged_today": 3}, "daily", "daily limit reached: 3 of 3 today"),
        ({"paused": "regressed after an automatic merge"}, "paused", "paused: regressed"),
    ],
)
def test_each_gate_refuses_what_its_key_forbids_and_says_why(
    changes: dict[str, object], gate: str, reason: str
) -> None:
    result = gates.evaluate(POLICY, candidate(**changes))
    assert not result.passed
    assert [r.name for r in result.failed] == [gate]
    assert reason in result.refusal()


def test_running_checks_hold_the_merge_without_failing_it() -> None:
    running = CheckSummary("abc", passed=("lint",), pending=("build",))
    result = gates.evaluate(POLICY, candidate(checks=running))
    assert result.pending and not result.passed and not result.failed
    assert "checks running: 1 of 2" in result.summary()
    assert gates.evaluate(POLICY, candidate(checks=CheckSummary("abc"))).pending


def test_gates_a_policy_turns_off_pass_whatever_they_would_see() -> None:
    lax = dataclasses.replace(
        POLICY, only_files_in_stack=False, require_tests=False, require_checks=False
    )
    result = gates.evaluate(
        lax,
        candidate(stack_files=(), tests_passed=False, checks=None, stat=FIX[:1]),
    )
    assert result.passed, result.refusal()


_PATH = st.lists(
    st.sampled_from(["src", "lib", "test", "auth", "migrations", "a.js", "b.test.js", ".env"]),
    min_size=1,
    max_size=4,
).map("/".join)
_STAT = st.lists(
    st.builds(
        FileStat,
        path=_PATH,
        added=st.integers(0, 40),
        removed=st.integers(0, 40),
        binary=st.booleans(),
    ),
    max_size=5,
)


@given(stat=_STAT, maximum=st.integers(1, 100))
def test_changed_lines_passes_exactly_when_the_count_is_within_the_limit(
    stat: list[FileStat], maximum: int
) -> None:
    result = gates.changed_lines(stat, maximum)
    lines = sum(s.added + s.removed for s in stat)
    assert result.passed == (bool(stat) and not any(s.binary for s in stat) and lines <= maximum)
    assert result.reason


@given(stat=_STAT, stack=st.lists(_PATH, max_size=4))
def test_files_in_stack_passes_exactly_when_every_file_is_a_frame_or_a_test(
    stat: list[FileStat], stack: list[str]
) -> None:
    result = gates.files_in_stack(stat, stack, required=True)
    ok = bool(stack) and all(s.path in stack or is_test_path(s.path) for s in stat)
    assert result.passed == ok
    if not ok and stack:
        assert "not in the stack" in result.reason


@given(verdict=st.one_of(st.sampled_from(RISKS), st.text(max_size=6), st.none()))
def test_risk_passes_up_to_max_risk_and_never_without_a_verdict(verdict: str | None) -> None:
    for limit in RISKS:
        result = gates.risk(verdict, limit)
        expected = verdict in RISKS and RISKS.index(verdict) <= RISKS.index(limit)
        assert result.passed == expected


@given(merged=st.integers(0, 10), limit=st.integers(1, 10))
def test_daily_limit_counts_the_merges_already_made_today(merged: int, limit: int) -> None:
    assert gates.daily_limit(merged, limit).passed == (merged < limit)


@given(
    stat=_STAT,
    stack=st.lists(_PATH, max_size=3),
    tests_passed=st.one_of(st.none(), st.booleans()),
    verdict=st.sampled_from([*RISKS, None]),
    merged=st.integers(0, 4),
)
def test_a_policy_passes_only_when_every_gate_passes_and_shows_every_reason(
    stat: list[FileStat],
    stack: list[str],
    tests_passed: bool | None,
    verdict: str | None,
    merged: int,
) -> None:
    found = gates.Candidate(tuple(stat), tuple(stack), tests_passed, verdict, GREEN, merged)
    result = gates.evaluate(POLICY, found)
    assert result.passed == all(r.passed for r in result.results)
    assert result.passed == (not result.failed and not result.pending)
    for r in result.results:
        assert r.reason in result.summary()
    assert len({r.name for r in result.results}) == len(result.results)


def _service(**auto_merge: object) -> dict[str, object]:
    return {"services": [{"name": "api", "repo": "/srv/api", "auto_merge": auto_merge}]}


def test_auto_merge_is_off_unless_a_service_turns_it_on() -> None:
    config = parse_config({"services": [{"name": "api", "repo": "/srv/api"}]})
    assert config.services[0].auto_merge == AutoMergePolicy()
    assert not config.services[0].auto_merge.enabled


@pytest.mark.parametrize(
    ("auto_merge", "key"),
    [
        ({"max_risk": "lowest"}, "services[0].auto_merge.max_risk"),
        ({"max_changed_lines": 0}, "services[0].auto_merge.max_changed_lines"),
        ({"soak_minutes": -1}, "services[0].auto_merge.soak_minutes"),
        ({"daily_limit": "3"}, "services[0].auto_merge.daily_limit"),
        ({"never_paths": ".github/**"}, "services[0].auto_merge.never_paths"),
        ({"revert_on_regresion": True}, "services[0].auto_merge.revert_on_regresion"),
    ],
)
def test_a_bad_auto_merge_key_is_refused_by_name(auto_merge: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_service(**auto_merge))
    assert str(caught.value).startswith(f"{key}:")


def test_auto_merge_needs_a_service_that_opens_pull_requests() -> None:
    document = _service(enabled=True)
    document["services"][0]["stop_at"] = "diff"  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"^services\[0\]\.auto_merge\.enabled: .*stop_at"):
        parse_config(document)
