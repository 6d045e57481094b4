"""Publishing a reviewed attempt: one commit, a push, and the pull request when GitHub is
configured (otherwise the pushed branch alone, and the note says why)."""

from __future__ import annotations

import contextlib

from console.config import ConsoleConfig, ServiceConfig
from console.events import Notify
from console.github import open_pull_request, pr_body, pr_title, repo_from_remote_url, resolve_token
from console.models import AttemptRow, ErrorRow
from console.store import Store
from console.testrun import TestResult
from console.worktree import NothingToCommitError, Worktree, commit_all, diff, push, remote_url


async def push_and_open_pr(
    config: ConsoleConfig,
    store: Store,
    wt: Worktree,
    attempt: AttemptRow,
    error: ErrorRow,
    service: ServiceConfig,
    notify: Notify,
) -> tuple[str | None, int | None, str]:
    """Commit Claude's edits, push the branch and open (or find) the pull request.

    Returns the PR's URL and number (None without GitHub) and the note a person reads.
    Git, GitHub and OS errors are raised for the engine's ``publish`` to report.
    """
    title = pr_title(error.error_type, error.message)
    message = (
        f"{title}\n\nAutomated fix for {service.name} error {error.fingerprint} "
        f"({error.count} occurrence(s), first seen {error.first_seen})."
    )
    with contextlib.suppress(NothingToCommitError):
        await commit_all(wt, message)
    await push(wt, service.remote, wt.branch, force=True)
    token = resolve_token(config.github.token)
    url = await remote_url(service.repo, service.remote)
    repo_name = service.github_repo or (repo_from_remote_url(url) if url else None)
    if token is None or repo_name is None:
        missing = "a GitHub token" if token is None else "a GitHub repository for the remote"
        return (
            None,
            None,
            f"pushed branch {wt.branch} to {service.remote} ({url}); no pull request "
            f"opened because {missing} is not configured",
        )
    tests = await store.test_results(attempt.id)
    last_test = tests[-1] if tests else None
    change = await diff(wt)
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
        summary=attempt.claude_summary or "",
        test=(
            TestResult(
                exit_code=last_test.exit_code,
                passed=last_test.exit_code == 0,
                timed_out=last_test.timed_out,
                duration_s=last_test.duration_ms / 1000,
                output_tail=last_test.output_tail,
            )
            if last_test
            else None
        ),
        stat=change.stat,
    )
    pr = await open_pull_request(
        api_url=config.github.api_url,
        token=token,
        repo_full_name=repo_name,
        head_branch=wt.branch,
        base_branch=service.base_branch,
        title=title,
        body=body,
        draft=config.github.draft,
        labels=config.github.labels,
    )
    await store.record_pr(attempt.id, wt.branch, pr.url, pr.number)
    for warning in pr.warnings:
        notify("warning", warning, error_id=error.id, attempt_id=attempt.id)
    verb = "opened" if pr.created else "found existing"
    return pr.url, pr.number, f"{verb} pull request #{pr.number}: {pr.url}"
