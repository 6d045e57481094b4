"""Reverting a merged fix that did not hold: a branch off the fresh base with the merge
reverted, pushed, and a pull request opened for it through the API.

The console never pushes to the base branch itself: the revert is a PR like the fix was,
and a person (or the repository's own rules) merges it. Opening it again finds the PR
already open for its branch instead of a second one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from console.config import GitHubConfig, ServiceConfig
from console.fix.git import GitError, run_git, stdout_text
from console.fix.github import GitHubError, defuse, open_pull_request, pr_title
from console.fix.publish import author_env, plan_publish, push
from console.fix.worktree import checkout_base, remove_worktree
from console.models import ErrorRow, PullRequestRow


@dataclass(frozen=True)
class Reverted:
    """The revert's pull request (``created`` False: it was already open)."""

    branch: str
    url: str
    number: int
    created: bool


def revert_branch(error: ErrorRow, pr: PullRequestRow) -> str:
    return f"revert/auto-{error.fingerprint}-pr{pr.number}"


async def open_revert(
    error: ErrorRow, pr: PullRequestRow, service: ServiceConfig, github: GitHubConfig, why: str
) -> Reverted:
    """Revert ``pr``'s merge commit on a new branch from the base, push it, open its PR.

    ``why`` (the regression, as the console recorded it) goes into the PR body as data.
    """
    if pr.merge_sha is None:
        raise GitHubError(f"pull request #{pr.number} has no merge commit to revert")
    plan = await plan_publish(service, github)
    if plan.repo_name is None or plan.token is None:
        raise GitHubError(f"cannot open a revert pull request: {plan.missing} is not configured")
    branch = revert_branch(error, pr)
    wt = await checkout_base(
        service.repo,
        branch,
        branch,
        base_branch=service.base_branch,
        remote=service.remote,
    )
    try:
        parents = stdout_text(
            await run_git(wt.path, "rev-list", "--parents", "-n", "1", pr.merge_sha)
        ).split()
        mainline = ["-m", "1"] if len(parents) > 2 else []
        await run_git(
            wt.path, "revert", "--no-edit", *mainline, pr.merge_sha, env=await author_env(wt)
        )
        await push(wt, service.remote, branch, force=True)
    finally:
        # A leftover worktree is replaced by the next revert's checkout.
        with contextlib.suppress(GitError, OSError, ValueError):
            await remove_worktree(wt.repo, wt, delete_branch=False)
    title = pr_title(error.error_type, error.message).replace("Fix ", "Revert fix for ", 1)
    body = (
        f"Reverts #{pr.number} (merge commit {pr.merge_sha[:12]}): the error it fixed "
        "occurred again on the merged code.\n\n### What the console saw\n\n"
        f"```text\n{defuse(why)[:4000]}\n```\n"
    )
    opened = await open_pull_request(
        api_url=github.api_url,
        token=plan.token,
        repo_full_name=plan.repo_name,
        head_branch=branch,
        base_branch=service.base_branch,
        title=title,
        body=body,
        draft=False,
        labels=github.labels,
    )
    return Reverted(branch, opened.url, opened.number, opened.created)
