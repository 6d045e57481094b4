"""Following a PR on GitHub: ETags and 304s, merges and closes, rate limits (real HTTP to
the loopback GitHub stand-in)."""

from __future__ import annotations

import time

import pytest

from console.fix.github import RateLimited, open_pull_request, poll_pull_request
from tests.github_api import GitHubStandIn

TOKEN = "ghp_poll-test"
REPO = "octo/service"


@pytest.fixture
def github():
    with GitHubStandIn(token=TOKEN, repos={REPO: None}) as stand_in:
        yield stand_in


async def opened(github: GitHubStandIn, branch: str) -> int:
    pr = await open_pull_request(
        api_url=github.url,
        token=TOKEN,
        repo_full_name=REPO,
        head_branch=branch,
        base_branch="main",
        title="Fix",
        body="body",
    )
    return pr.number


async def poll(github: GitHubStandIn, number: int, etag: str | None = None):
    return await poll_pull_request(
        api_url=github.url, token=TOKEN, repo_full_name=REPO, number=number, etag=etag
    )


async def test_an_unchanged_pr_is_answered_304_to_its_etag_and_a_merge_changes_the_tag(
    github: GitHubStandIn,
) -> None:
    number = await opened(github, "hotfix/a")
    first = await poll(github, number)
    assert first is not None and first.state == "open" and first.etag
    assert await poll(github, number, first.etag) is None, "unchanged: 304"
    assert github.reads(number)[-1].headers["if-none-match"] == first.etag

    sha = github.merge(REPO, number, by="octocat")
    merged = await poll(github, number, first.etag)
    assert merged is not None and merged.state == "merged"
    assert (merged.merge_sha, merged.merged_by) == (sha, "octocat")
    assert merged.merged_at and merged.etag and merged.etag != first.etag


async def test_a_pr_closed_without_merging_reads_closed(github: GitHubStandIn) -> None:
    number = await opened(github, "hotfix/b")
    github.close(REPO, number)
    state = await poll(github, number)
    assert state is not None and state.state == "closed"
    assert state.closed_at and state.merge_sha is None and state.merged_at is None


@pytest.mark.parametrize(("status", "retry_after", "reset_in"), [(429, 7, None), (403, None, 90)])
async def test_a_rate_limit_is_raised_at_once_with_when_it_lifts(
    github: GitHubStandIn, status: int, retry_after: float | None, reset_in: float | None
) -> None:
    number = await opened(github, "hotfix/c")
    github.rate_limit_next(status=status, retry_after=retry_after, reset_in=reset_in, method="GET")
    started = time.monotonic()
    with pytest.raises(RateLimited, match="rate limit") as raised:
        await poll(github, number)
    assert time.monotonic() - started < 5, "polling never sleeps on a rate limit itself"
    expected = retry_after if retry_after is not None else reset_in
    assert expected is not None and expected - 5 <= raised.value.retry_in <= expected + 2
    assert raised.value.status == status
