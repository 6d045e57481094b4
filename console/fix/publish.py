"""Publishing a reviewed attempt: commit its worktree, push its branch, open the PR.

Commit and push refuse to run git in a worktree whose ``.git`` file was tampered with
(:func:`console.fix.worktree.check_gitfile`), and a refused push keeps git's own reason.
With no GitHub token or no GitHub repository for the remote, the branch is still pushed
and :class:`Published` says why no pull request was opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from console.config import GitHubConfig, ServiceConfig
from console.fix.diffstat import FileStat
from console.fix.git import (
    NETWORK_TIMEOUT_S,
    GitError,
    check_ref_name,
    check_remote,
    is_unreachable,
    resolve_commit,
    run_git,
    stdout_text,
)
from console.fix.github import (
    open_pull_request,
    pr_body,
    pr_title,
    repo_from_remote_url,
    resolve_token,
)
from console.fix.testrun import TestResult
from console.fix.worktree import Worktree, check_gitfile, remote_url
from console.models import ErrorRow

FALLBACK_AUTHOR_NAME = "LevAutoFix"
FALLBACK_AUTHOR_EMAIL = "autofix@localhost"


class PushError(GitError):
    """``git push`` failed; ``reason`` is a short classification of git's stderr."""

    def __init__(self, command: Sequence[str], returncode: int | None, stderr: str) -> None:
        super().__init__(command, returncode, stderr)
        self.reason = _classify_push_failure(self.stderr)
        self.args = (f"push failed ({self.reason}): {self.stderr or 'no output from git'}",)


class NothingToCommitError(GitError):
    """The worktree holds no change relative to its base, so there is nothing to propose."""


async def author_env(wt: Worktree) -> dict[str, str]:
    """The commit identity: the repository's own, else ``LevAutoFix <autofix@localhost>``."""
    env: dict[str, str] = {}
    name = await run_git(wt.path, "config", "--get", "user.name", check=False)
    email = await run_git(wt.path, "config", "--get", "user.email", check=False)
    if name.returncode != 0 or not stdout_text(name):
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = FALLBACK_AUTHOR_NAME
    if email.returncode != 0 or not stdout_text(email):
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = FALLBACK_AUTHOR_EMAIL
    return env


async def commit_all(wt: Worktree, message: str) -> str:
    """Commit everything in the worktree and return the new HEAD sha.

    The author is the repository's configured identity (so the PR is attributed to the
    developer), falling back to ``LevAutoFix <autofix@localhost>``. The message is kept
    verbatim apart from whitespace, so lines starting with ``#`` survive. When nothing is
    left to commit but the branch already has commits beyond its base, their HEAD is
    returned; with no change at all, :class:`NothingToCommitError` is raised.
    """
    if not message.strip():
        raise ValueError("commit message is empty")
    await check_gitfile(wt)
    await run_git(wt.path, "add", "--all", "--", ".")
    staged = await run_git(wt.path, "diff", "--cached", "--quiet", check=False)
    if staged.returncode == 0:
        head = await resolve_commit(wt.path, "HEAD")
        if head and head != wt.base_sha:
            return head
        raise NothingToCommitError(
            ["git", "commit"], 1, f"no changes in {wt.path} relative to {wt.base_sha[:12]}"
        )
    await run_git(
        wt.path,
        "commit",
        "--quiet",
        "--cleanup=whitespace",
        "--file=-",
        stdin=message.encode("utf-8"),
        env=await author_env(wt),
    )
    head = await resolve_commit(wt.path, "HEAD")
    assert head is not None
    return head


async def push(wt: Worktree, remote: str, branch: str, *, force: bool = False) -> None:
    """Publish the attempt branch; git's own reason is kept when the remote refuses.

    ``force`` replaces a branch left on the remote by an earlier attempt, but only if
    the remote still holds what we last saw there (``--force-with-lease``).
    """
    await check_gitfile(wt)
    await check_remote(wt.path, remote)
    await check_ref_name(wt.path, "branch", branch)
    args = ["push", "--quiet"]
    if force:
        args.append(f"--force-with-lease=refs/heads/{branch}")
    args += ["--", remote, f"refs/heads/{branch}:refs/heads/{branch}"]
    await run_git(wt.path, *args, timeout=NETWORK_TIMEOUT_S, error=PushError)


def _classify_push_failure(stderr: str) -> str:
    lowered = stderr.lower()
    if "non-fast-forward" in lowered or "fetch first" in lowered or "stale info" in lowered:
        return "rejected: the remote branch has commits this one does not (non-fast-forward)"
    if "hook declined" in lowered or "pre-receive hook" in lowered:
        return "rejected by a hook on the remote"
    if "protected branch" in lowered:
        return "rejected: protected branch"
    if (
        "authentication failed" in lowered
        or "permission denied" in lowered
        or "could not read username" in lowered
        or "403" in lowered
    ):
        return "authentication or permission failure"
    if is_unreachable(stderr):
        return "remote unreachable"
    if "no answer after" in lowered:
        return "timed out"
    return "git reported an error"


@dataclass(frozen=True)
class Published:
    """What publishing did: the branch is pushed; ``url`` and ``number`` name the pull
    request when one was opened or found, and ``note`` says which, for the operator."""

    note: str
    url: str | None = None
    number: int | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublishPlan:
    """What publishing a service's attempt will do, known before anything is pushed, so
    the confirm dialog says exactly that: push the branch, and open a pull request only
    when there is both a token and a GitHub repository for the remote."""

    remote: str
    base_branch: str
    url: str | None  # the remote's fetch URL
    repo_name: str | None  # owner/name on GitHub
    token: str | None

    @property
    def opens_pr(self) -> bool:
        return self.missing is None

    @property
    def missing(self) -> str | None:
        """Why no pull request will be opened, or None when one will."""
        if self.token is None:
            return "a GitHub token"
        if self.repo_name is None:
            return "a GitHub repository for the remote"
        return None


async def plan_publish(service: ServiceConfig, github: GitHubConfig) -> PublishPlan:
    """Find the remote's URL, the GitHub repository and the token publishing will use."""
    token = await asyncio.to_thread(resolve_token, github.token)
    url = await remote_url(service.repo, service.remote)
    repo_name = service.github_repo or (repo_from_remote_url(url) if url else None)
    return PublishPlan(service.remote, service.base_branch, url, repo_name, token)


async def publish_attempt(
    wt: Worktree,
    error: ErrorRow,
    service: ServiceConfig,
    github: GitHubConfig,
    *,
    summary: str,
    last_test: TestResult | None,
    stat: Sequence[FileStat],
) -> Published:
    """Commit what is left in the worktree, push the branch (replacing one an earlier
    attempt left), then open the pull request or find the one already open for it."""
    title = pr_title(error.error_type, error.message)
    message = (
        f"{title}\n\nAutomated fix for {service.name} error {error.fingerprint} "
        f"({error.count} occurrence(s), first seen {error.first_seen})."
    )
    with contextlib.suppress(NothingToCommitError):
        await commit_all(wt, message)
    await push(wt, service.remote, wt.branch, force=True)
    plan = await plan_publish(service, github)
    if plan.repo_name is None or plan.token is None:
        return Published(
            f"pushed branch {wt.branch} to {service.remote} ({plan.url}); no pull request "
            f"opened because {plan.missing} is not configured"
        )
    token, repo_name = plan.token, plan.repo_name
    body = pr_body(
        error_type=error.error_type,
        message=error.message,
        severity=error.severity,
        count=error.count,
        hosts=sorted(error.hosts),
        first_seen=error.first_seen,
        last_seen=error.last_seen,
        route=error.route,
        service=service.name,
        fingerprint=error.fingerprint,
        summary=summary,
        test=last_test,
        stat=list(stat),
    )
    pr = await open_pull_request(
        api_url=github.api_url,
        token=token,
        repo_full_name=repo_name,
        head_branch=wt.branch,
        base_branch=service.base_branch,
        title=title,
        body=body,
        draft=github.draft,
        labels=github.labels,
    )
    verb = "opened" if pr.created else "found existing"
    return Published(
        f"{verb} pull request #{pr.number}: {pr.url}", pr.url, pr.number, tuple(pr.warnings)
    )
