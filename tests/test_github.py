"""Publishing an approved fix: real git remote, real HTTP to a loopback GitHub stand-in."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.fix.diffstat import FileStat
from console.fix.github import (
    GitHubError,
    compare_page,
    open_pull_request,
    pr_body,
    pr_title,
    repo_from_remote_url,
    resolve_token,
)
from console.fix.publish import commit_all, push
from console.fix.testrun import TestResult
from console.fix.worktree import (
    create_worktree,
    diff,
    remove_worktree,
    snapshot_main,
    verify_main_untouched,
)
from tests.github_api import GitHubStandIn
from tests.service_repo import git

FP = "00ff00ff00ff00ff"
BRANCH = f"hotfix/auto-{FP}"
TOKEN = "ghp_test-token"


# Every test here runs git without the developer's own config.
pytestmark = pytest.mark.usefixtures("isolated_git_config")


@pytest.fixture
def clone(tmp_path: Path, remote: Path) -> Path:
    work = tmp_path / "service"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "main")
    (work / "index.js").write_text("const items = [];\nmodule.exports = items[0].id;\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "initial")
    git(work, "push", "-q", "origin", "main")
    (work / "scratch.txt").write_text("developer's uncommitted notes\n")
    return work


@pytest.fixture
def github(remote: Path):
    with GitHubStandIn(token=TOKEN, repos={"octo/service": remote}) as stand_in:
        yield stand_in


def pr_args(github: GitHubStandIn, **overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "api_url": github.url,
        "token": TOKEN,
        "repo_full_name": "octo/service",
        "head_branch": BRANCH,
        "base_branch": "main",
        "title": "Fix TypeError: Cannot read properties of undefined",
        "body": "body",
        "labels": ("autofix",),
    }
    args.update(overrides)
    return args


async def test_approved_fix_is_pushed_and_opened_once(
    clone: Path, remote: Path, github: GitHubStandIn
) -> None:
    before = await snapshot_main(clone)
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "index.js").write_text("const items = [];\nmodule.exports = items[0]?.id;\n")
    (wt.path / "index.test.js").write_text("require('./index');\n")
    change = await diff(wt)
    sha = await commit_all(wt, "Guard against an empty item list")
    await push(wt, "origin", wt.branch)

    first = await open_pull_request(
        **pr_args(
            github,
            body=pr_body(
                error_type="TypeError",
                message="Cannot read properties of undefined",
                severity="high",
                count=3,
                hosts=["web-1"],
                first_seen="2024-05-01T10:00:00Z",
                last_seen="2024-05-01T11:00:00Z",
                stat=change.stat,
            ),
        )
    )
    again = await open_pull_request(**pr_args(github))

    remote_heads = git(clone, "ls-remote", "origin", f"refs/heads/{wt.branch}")
    assert remote_heads == f"{sha}\trefs/heads/{wt.branch}"
    assert first.created and first.number == 1 and first.warnings == ()
    assert first.url.endswith("/octo/service/pull/1")
    assert (again.number, again.created) == (1, False)
    posts = github.posts("/pulls")
    assert len(posts) == 1
    assert posts[0].body["head"] == BRANCH and posts[0].body["base"] == "main"
    assert posts[0].body["title"] == "Fix TypeError: Cannot read properties of undefined"
    assert "index.test.js" in posts[0].body["body"]
    assert posts[0].headers["accept"] == "application/vnd.github+json"
    assert posts[0].headers["x-github-api-version"] == "2022-11-28"
    lookup = github.requests[0]
    assert (lookup.method, lookup.query["head"], lookup.query["state"]) == (
        "GET",
        f"octo:{BRANCH}",
        "all",
    )
    assert github.pulls["octo/service"][0]["labels"] == [{"name": "autofix"}]

    assert await verify_main_untouched(clone, before) == []
    assert (clone / "scratch.txt").read_text() == "developer's uncommitted notes\n"

    await remove_worktree(clone, wt, delete_branch=False)
    assert not wt.path.exists()
    assert git(clone, "branch", "--list", wt.branch) != ""
    await remove_worktree(clone, wt, delete_branch=True)
    assert git(clone, "branch", "--list", wt.branch) == ""
    assert git(clone, "ls-remote", "origin", wt.branch) != "", "the PR branch stays on the remote"
    assert await verify_main_untouched(clone, before) == []


async def test_pr_for_a_branch_never_pushed_is_a_clear_error(github: GitHubStandIn) -> None:
    with pytest.raises(GitHubError, match=r"Validation Failed \(head: invalid\)") as caught:
        await open_pull_request(**pr_args(github))
    assert caught.value.status == 422


async def test_pr_created_meanwhile_is_found_after_already_exists(
    clone: Path, github: GitHubStandIn
) -> None:
    git(clone, "push", "-q", "origin", f"main:refs/heads/{BRANCH}")
    first = await open_pull_request(**pr_args(github))
    github.stale_list_next()

    second = await open_pull_request(**pr_args(github))

    assert (second.number, second.created) == (first.number, False)
    assert len(github.pulls["octo/service"]) == 1
    assert len(github.posts("/pulls")) == 2  # the second one was refused with 422


async def test_wrong_token_is_reported_as_such_and_nothing_is_posted(
    github: GitHubStandIn,
) -> None:
    with pytest.raises(GitHubError, match=r"rejected the token.*GITHUB_TOKEN") as caught:
        await open_pull_request(**pr_args(github, token="ghp_revoked"))
    assert caught.value.status == 401
    assert github.posts("/pulls") == []


async def test_missing_token_fails_before_any_request(github: GitHubStandIn) -> None:
    with pytest.raises(GitHubError, match="no GitHub token"):
        await open_pull_request(**pr_args(github, token=None))
    assert github.requests == []


async def test_unknown_repository_is_a_clear_404(github: GitHubStandIn) -> None:
    with pytest.raises(GitHubError, match="octo/missing was not found") as caught:
        await open_pull_request(**pr_args(github, repo_full_name="octo/missing"))
    assert caught.value.status == 404


async def test_forbidden_names_the_missing_permission(github: GitHubStandIn) -> None:
    github.fail_next(403, method="GET")
    with pytest.raises(GitHubError, match="needs permission to write pull requests"):
        await open_pull_request(**pr_args(github))


async def test_rate_limit_is_waited_out_and_retried(clone: Path, github: GitHubStandIn) -> None:
    git(clone, "push", "-q", "origin", f"main:refs/heads/{BRANCH}")
    github.rate_limit_next(status=429, retry_after=0, method="POST")

    pr = await open_pull_request(**pr_args(github))

    assert pr.created
    assert len(github.posts("/pulls")) == 2
    assert len(github.pulls["octo/service"]) == 1


async def test_primary_rate_limit_uses_the_reset_time(clone: Path, github: GitHubStandIn) -> None:
    git(clone, "push", "-q", "origin", f"main:refs/heads/{BRANCH}")
    github.rate_limit_next(status=403, reset_in=0, method="GET")

    pr = await open_pull_request(**pr_args(github))

    assert pr.created
    assert [r.method for r in github.requests[:2]] == ["GET", "GET"]


async def test_rate_limit_beyond_the_allowed_wait_is_an_error(github: GitHubStandIn) -> None:
    github.rate_limit_next(status=403, reset_in=3600)
    with pytest.raises(GitHubError, match=r"rate limit reached.*resets in"):
        await open_pull_request(**pr_args(github, max_wait_s=5))
    assert len(github.requests) == 1


async def test_server_error_is_reported_and_a_retry_opens_exactly_one_pr(
    clone: Path, github: GitHubStandIn
) -> None:
    git(clone, "push", "-q", "origin", f"main:refs/heads/{BRANCH}")
    github.fail_next(500, method="POST", path_contains="/pulls")
    with pytest.raises(GitHubError, match="server error") as caught:
        await open_pull_request(**pr_args(github))
    assert caught.value.status == 500

    pr = await open_pull_request(**pr_args(github))
    assert pr.created and len(github.pulls["octo/service"]) == 1


async def test_label_failure_is_a_warning_not_a_failure(clone: Path, github: GitHubStandIn) -> None:
    git(clone, "push", "-q", "origin", f"main:refs/heads/{BRANCH}")
    github.fail_next(403, path_contains="/labels")

    pr = await open_pull_request(**pr_args(github, labels=("autofix", "bug")))

    assert pr.created and pr.number == 1
    assert len(pr.warnings) == 1 and "label pull request #1" in pr.warnings[0]
    assert github.pulls["octo/service"][0]["labels"] == []


async def test_unreachable_api_is_a_clear_error() -> None:
    with pytest.raises(GitHubError, match=re.escape("cannot reach GitHub at http://127.0.0.1:9")):
        await open_pull_request(
            api_url="http://127.0.0.1:9",
            token=TOKEN,
            repo_full_name="octo/service",
            head_branch=BRANCH,
            base_branch="main",
            title="t",
            body="b",
        )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git@github.com:octo/service.git", "octo/service"),
        ("https://github.com/octo/service", "octo/service"),
        ("https://github.com/octo/service.git", "octo/service"),
        ("https://token@github.com/octo/service.git/", "octo/service"),
        ("ssh://git@ghe.example.com/octo/service", "octo/service"),
        ("ssh://git@ghe.example.com:2222/octo/my.service.git", "octo/my.service"),
        ("git@ghe.example.com:octo/service", "octo/service"),
        ("/srv/git/service.git", None),
        ("file:///srv/octo/service.git", None),
        ("https://github.com/octo", None),
        ("https://github.com/octo/service/tree/main", None),
        ("", None),
    ],
)
def test_repo_is_derived_from_common_remote_urls(url: str, expected: str | None) -> None:
    assert repo_from_remote_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git@github.com:octo/service.git", "https://github.com/octo/service/compare/main...fix/a?expand=1"),
        ("https://token@github.com/octo/service", "https://github.com/octo/service/compare/main...fix/a?expand=1"),
        ("ssh://git@github.com/octo/service.git", "https://github.com/octo/service/compare/main...fix/a?expand=1"),
        ("git@ghe.example.com:octo/service", None),
        ("https://github.com.evil.test/octo/service", None),
        ("/srv/git/service.git", None),
        ("", None),
    ],
)  # fmt: skip
def test_compare_page_is_known_only_for_github_com_remotes(url: str, expected: str | None) -> None:
    assert compare_page(url, "main", "fix/a") == expected


@given(
    owner=st.from_regex(r"[A-Za-z0-9]{1,12}(-[A-Za-z0-9]{1,8})?", fullmatch=True),
    branch=st.text(st.characters(blacklist_categories=("Cs",))),
)
def test_compare_page_keeps_a_hostile_branch_name_inside_the_compare_path(
    owner: str, branch: str
) -> None:
    page = compare_page(f"git@github.com:{owner}/svc.git", "main", branch)
    assert page is not None
    prefix = f"https://github.com/{owner}/svc/compare/main..."
    assert page.startswith(prefix) and page.endswith("?expand=1")
    encoded = page[len(prefix) : -len("?expand=1")]
    assert not set(encoded) & set("?# \n\t") and unquote(encoded) == branch


def _outside_code_blocks(markdown: str) -> str:
    outside: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        match = re.match(r"^(`{3,})", line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            outside.append(line)
    assert fence is None, "a code block was left open"
    return "\n".join(outside)


def test_pr_body_keeps_log_content_inert() -> None:
    hostile = "boom @octo-org/security [click](https://evil.example) <img src=x>\n````\n# Heading"
    body = pr_body(
        error_type="TypeError`` @admin",
        message=hostile,
        route="/api/items/:id",
        severity="high",
        count=12,
        hosts=["web-1", "@web-2"],
        first_seen="2024-05-01T10:00:00Z",
        last_seen="2024-05-02T10:00:00Z",
        summary="Added a guard. See https://evil.example and ping @maintainer",
        test=TestResult(0, True, False, 4.2, "Tests: 12 passed\n@jest done"),
        stat=[FileStat("src/items.js", 3, 1), FileStat("logo.png", 0, 0, binary=True)],
    )

    outside = _outside_code_blocks(body)
    for untrusted in ("evil.example", "<img", "Heading", "@", "maintainer", "jest"):
        assert untrusted not in outside
    assert re.search(r"@(?!\u200b)", body) is None, "every @ is defused"
    assert "@\u200bocto-org/security" in body
    assert "count" not in outside and "occurrences: 12" in body
    assert "passed in 4.2s" in outside
    assert "+3 -1  src/items.js" in body and "binary  logo.png" in body


def test_pr_body_without_tests_or_changes_says_so() -> None:
    body = pr_body(
        error_type="Error",
        message="m",
        severity="low",
        count=1,
        hosts=[],
        first_seen="a",
        last_seen="b",
    )
    assert "### Tests\n\nNot run." in body and "Diff stat" not in body
    _outside_code_blocks(body)


def test_pr_title_is_one_defused_line_within_githubs_limit() -> None:
    title = pr_title("RangeError", "bad @user\nsecond line " + "x" * 400)
    assert "\n" not in title and "second line" not in title
    assert "@\u200buser" in title
    assert pr_title("RangeError", "x" * 400).endswith("…")
    assert len(pr_title("RangeError", "x" * 400)) == 256


def test_token_comes_from_config_then_environment(tmp_path: Path) -> None:
    no_gh = {"PATH": str(tmp_path), "GITHUB_TOKEN": "from-env"}
    assert resolve_token(" from-config ", env=no_gh) == "from-config"
    assert resolve_token(None, env=no_gh) == "from-env"
    assert resolve_token("", env={"PATH": str(tmp_path)}) is None
