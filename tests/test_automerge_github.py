"""Auto-merge's GitHub calls against the loopback stand-in: a PR's checks (check runs and
commit statuses together) and the squash merge through the merge endpoint, into a real bare
repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.fix.github import (
    CheckSummary,
    GitHubError,
    Merged,
    merge_pull_request,
    open_pull_request,
    read_checks,
    summarize_checks,
)
from tests.github_api import GitHubStandIn
from tests.service_repo import git

TOKEN = "ghp_test-token"
BRANCH = "hotfix/auto-0011223344556677"

pytestmark = pytest.mark.usefixtures("isolated_git_config")


@pytest.fixture
def github(remote: Path):
    with GitHubStandIn(token=TOKEN, repos={"octo/service": remote}) as stand_in:
        yield stand_in


@pytest.fixture
def pushed(clone: Path) -> Path:
    """The fix branch pushed on top of main, as publishing leaves it."""
    git(clone, "checkout", "-q", "-b", BRANCH)
    (clone / "src" / "app.js").write_text("module.exports = 2;\n")
    git(clone, "commit", "-q", "-am", "fix")
    git(clone, "push", "-q", "origin", BRANCH)
    return clone


async def _open_pr(github: GitHubStandIn) -> int:
    pr = await open_pull_request(
        api_url=github.url,
        token=TOKEN,
        repo_full_name="octo/service",
        head_branch=BRANCH,
        base_branch="main",
        title="Fix TypeError",
        body="body",
    )
    return pr.number


async def _merge(github: GitHubStandIn, number: int, sha: str, message: str = "") -> Merged:
    return await merge_pull_request(
        api_url=github.url,
        token=TOKEN,
        repo_full_name="octo/service",
        number=number,
        sha=sha,
        title=f"Fix TypeError (#{number})",
        message=message,
    )


async def _checks(github: GitHubStandIn) -> CheckSummary:
    return await read_checks(
        api_url=github.url, token=TOKEN, repo_full_name="octo/service", ref=BRANCH
    )


async def test_checks_read_both_check_runs_and_statuses_of_the_branch_head(
    pushed: Path, github: GitHubStandIn
) -> None:
    head = git(pushed, "rev-parse", "HEAD").strip()
    assert (await _checks(github)).state == "pending"  # nothing reported yet
    github.report_check(BRANCH, "build", status="in_progress")
    github.report_status(BRANCH, "ci/lint", "success")
    running = await _checks(github)
    assert (running.state, running.pending, running.passed) == ("pending", ("build",), ("ci/lint",))
    github.report_check(BRANCH, "build", conclusion="success")
    green = await _checks(github)
    assert green.state == "success" and green.sha == head
    github.report_status(BRANCH, "ci/deploy-preview", "error")
    red = await _checks(github)
    assert (red.state, red.failed) == ("failure", ("ci/deploy-preview",))
    paths = {r.path for r in github.requests if r.method == "GET"}
    commit = f"/repos/octo/service/commits/{BRANCH.replace('/', '%2F')}"
    assert {f"{commit}/check-runs", f"{commit}/status"} <= paths


async def test_squash_merge_puts_one_commit_with_the_fix_tree_on_the_base(
    pushed: Path, remote: Path, github: GitHubStandIn
) -> None:
    number = await _open_pr(github)
    head = git(pushed, "rev-parse", "HEAD").strip()
    before = git(pushed, "rev-parse", "origin/main").strip()
    merged = await _merge(github, number, head, "auto-merged: 2 lines, tests pass")
    put = next(r for r in github.requests if r.method == "PUT")
    assert put.path == f"/repos/octo/service/pulls/{number}/merge"
    assert put.body["merge_method"] == "squash" and put.body["sha"] == head
    tip = git(remote, "rev-parse", "refs/heads/main").strip()
    assert merged.sha == tip
    assert git(remote, "rev-parse", f"{tip}^").strip() == before  # one commit, on the old tip
    assert git(remote, "rev-parse", f"{tip}^{{tree}}") == git(
        remote, "rev-parse", f"{head}^{{tree}}"
    )
    assert github.pulls["octo/service"][0]["merged"] is True


async def test_a_pr_whose_head_moved_during_the_wait_is_not_merged(
    pushed: Path, remote: Path, github: GitHubStandIn
) -> None:
    number = await _open_pr(github)
    checked = git(pushed, "rev-parse", "HEAD").strip()
    (pushed / "src" / "app.js").write_text("module.exports = 3;\n")
    git(pushed, "commit", "-q", "-am", "someone else's push")
    git(pushed, "push", "-q", "origin", BRANCH)
    before = git(remote, "rev-parse", "refs/heads/main")
    with pytest.raises(GitHubError) as caught:
        await _merge(github, number, checked)
    assert caught.value.status == 409
    assert "changed while it waited" in str(caught.value) and "nothing was merged" in str(
        caught.value
    )
    assert git(remote, "rev-parse", "refs/heads/main") == before


async def test_a_pr_github_will_not_merge_says_why_and_merges_nothing(
    pushed: Path, remote: Path, github: GitHubStandIn
) -> None:
    number = await _open_pr(github)
    github.unmergeable[number] = "At least 1 approving review is required by reviewers"
    before = git(remote, "rev-parse", "refs/heads/main")
    with pytest.raises(GitHubError) as caught:
        await _merge(github, number, git(pushed, "rev-parse", "HEAD").strip())
    assert caught.value.status == 405
    assert "approving review is required" in str(caught.value)
    assert git(remote, "rev-parse", "refs/heads/main") == before


_RUN = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), st.none(), st.integers()),
        "status": st.sampled_from(["queued", "in_progress", "completed", "waiting", None, 3]),
        "conclusion": st.sampled_from(
            ["success", "failure", "neutral", "skipped", "cancelled", "timed_out", None, []]
        ),
    },
)
_STATUS = st.fixed_dictionaries(
    {},
    optional={
        "context": st.one_of(st.text(max_size=10), st.none()),
        "state": st.sampled_from(["success", "pending", "failure", "error", None, "weird"]),
    },
)


@given(
    runs=st.lists(st.one_of(_RUN, st.integers(), st.text(max_size=3)), max_size=6),
    statuses=st.lists(st.one_of(_STATUS, st.none()), max_size=6),
)
def test_checks_are_green_only_when_every_reported_check_succeeded(
    runs: list[object], statuses: list[object]
) -> None:
    summary = summarize_checks({"check_runs": runs}, {"statuses": statuses, "sha": "abc"}, "b")
    run_dicts = [r for r in runs if isinstance(r, dict)]
    status_dicts = [s for s in statuses if isinstance(s, dict)]
    all_green = all(
        r.get("status") == "completed" and r.get("conclusion") in ("success", "neutral", "skipped")
        for r in run_dicts
    ) and all(s.get("state") == "success" for s in status_dicts)
    reported = len(run_dicts) + len(status_dicts)
    assert (summary.state == "success") == (all_green and reported > 0)
    assert len(summary.passed) + len(summary.pending) + len(summary.failed) == reported
    assert summary.sha == "abc"


@given(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.fixed_dictionaries({})))
def test_an_answer_of_another_shape_is_an_error_never_a_green_check(answer: object) -> None:
    with pytest.raises(GitHubError):
        summarize_checks(answer, {"statuses": []}, "b")
