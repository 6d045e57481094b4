"""Opening pull requests on GitHub (or GitHub Enterprise) for approved fixes, reading their
checks, and squash-merging the ones auto-merge lets through (``merge_pull_request``).

Opening a PR is idempotent: the engine may retry after a crash, a timeout or a lost
answer, so an existing PR for the branch is looked up first and returned instead of a
second one being opened. Everything that ends up in the PR body comes from production logs
or from the model's output, so it is treated as hostile: it is placed in code blocks (no
links, images, HTML or task lists render there) and ``@`` mentions are defused so a log
line cannot ping people or teams.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from console.fix.diffstat import FileStat
from console.fix.testrun import TestResult

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
TITLE_LIMIT = 256
BODY_LIMIT = 60_000  # GitHub rejects bodies above 65 536 characters
_REPO_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_NAME = r"[A-Za-z0-9_.-]+?"
_SCP_REMOTE = re.compile(
    rf"^(?:[^@/\s]+@)?[A-Za-z0-9.-]+:/?(?P<owner>{_OWNER})/(?P<name>{_NAME})(?:\.git)?/?$"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class GitHubError(RuntimeError):
    """GitHub refused or could not be reached; the message says what to fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(GitHubError):
    """GitHub's rate limit (403/429) held longer than the caller waits; ``retry_in`` is
    how many seconds GitHub said (Retry-After, X-RateLimit-Reset) until it lifts."""

    def __init__(self, message: str, status: int | None, retry_in: float) -> None:
        super().__init__(message, status)
        self.retry_in = retry_in


@dataclass(frozen=True)
class PullRequest:
    """A pull request for an attempt branch; ``created`` is False when it already existed.

    ``warnings`` lists problems that did not prevent the PR (e.g. labels not applied).
    """

    number: int
    url: str
    created: bool
    state: str = "open"
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------
# Token and repository discovery


def resolve_token(
    config_token: str | None,
    *,
    host: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The token to use: the configured one, else ``GITHUB_TOKEN``, else ``gh auth token``.

    The ``gh`` CLI is the common place developers already have a token, so no new
    secret has to be written to the config file.
    """
    if config_token and config_token.strip():
        return config_token.strip()
    environ = os.environ if env is None else env
    from_env = environ.get("GITHUB_TOKEN", "").strip()
    if from_env:
        return from_env
    gh = shutil.which("gh", path=environ.get("PATH"))
    if gh is None:
        return None
    args = [gh, "auth", "token"]
    if host and host not in ("github.com", "api.github.com"):
        args += ["--hostname", host]
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            env={**environ, "GH_PROMPT_DISABLED": "1"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not ask gh for a token: %s", exc)
        return None
    token = done.stdout.strip()
    return token if done.returncode == 0 and token else None


def repo_from_remote_url(url: str) -> str | None:
    """``owner/name`` from a git remote URL (github.com or an Enterprise host), else None.

    Lets a service's ``github_repo`` default to what its git remote already says.
    """
    url = (url or "").strip()
    if not url:
        return None
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh", "ssh+git"):
            return None
        if not parts.hostname:
            return None
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) != 2:
            return None
        owner, name = segments
    else:
        match = _SCP_REMOTE.match(url)
        if match is None:
            return None
        owner, name = match.group("owner"), match.group("name")
    name = name.removesuffix(".git")
    if not re.fullmatch(_OWNER, owner) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return None
    if name in (".", ".."):
        return None
    return f"{owner}/{name}"


def compare_page(url: str, base_branch: str, branch: str) -> str | None:
    """GitHub's page for opening a pull request from ``branch`` into ``base_branch``,
    when the remote ``url`` is on github.com; None for any other host, where the page's
    address is not known."""
    url = (url or "").strip()
    host = urlsplit(url).hostname if "://" in url else url.partition(":")[0].rpartition("@")[2]
    repo = repo_from_remote_url(url)
    if repo is None or (host or "").lower() not in ("github.com", "www.github.com"):
        return None
    return f"https://github.com/{repo}/compare/{quote(base_branch)}...{quote(branch)}?expand=1"


# ---------------------------------------------------------------------------------------
# PR title and body


def defuse(text: str) -> str:
    """Make untrusted text inert on GitHub: no mentions, no bidi tricks, no control bytes."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n"))
    # A zero-width space after "@" stops @user / @org/team from notifying anyone.
    return text.replace("@", "@\u200b")


def _code_block(text: str, *, limit: int) -> str:
    text = defuse(text)
    if len(text) > limit:
        text = text[:limit] + "\n… (truncated)"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def pr_title(error_type: str, message: str) -> str:
    """A one-line title naming the error, safe to show and within GitHub's limit."""
    first_line = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    title = defuse(f"Fix {error_type or 'error'}: {first_line}".strip().rstrip(":"))
    title = " ".join(title.split())
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def pr_body(
    *,
    error_type: str,
    message: str,
    severity: str,
    count: int,
    hosts: Sequence[str],
    first_seen: str,
    last_seen: str,
    route: str | None = None,
    service: str | None = None,
    fingerprint: str | None = None,
    summary: str = "",
    test: TestResult | None = None,
    stat: Sequence[FileStat] = (),
) -> str:
    """The PR description a reviewer needs: what failed in production, what was changed
    and whether the service's tests passed. All data values sit inside code blocks."""
    details = [
        f"type:        {error_type}",
        f"message:     {message}",
        f"route:       {route or '-'}",
        f"severity:    {severity}",
        f"occurrences: {count}",
        f"hosts:       {', '.join(hosts) or '-'}",
        f"first seen:  {first_seen}",
        f"last seen:   {last_seen}",
    ]
    if service:
        details.insert(0, f"service:     {service}")
    if fingerprint:
        details.append(f"fingerprint: {fingerprint}")
    sections = [
        "Automated fix for an error seen in production, approved for review.",
        "### Error\n\n" + _code_block("\n".join(details), limit=8_000),
        "### What was changed\n\n" + _code_block(summary.strip() or "(no summary)", limit=20_000),
    ]
    if test is None:
        sections.append("### Tests\n\nNot run.")
    else:
        if test.timed_out:
            verdict = f"timed out after {test.duration_s:.1f}s"
        elif test.passed:
            verdict = f"passed in {test.duration_s:.1f}s"
        else:
            verdict = f"failed with exit code {test.exit_code} after {test.duration_s:.1f}s"
        tail = "\n".join(test.output_tail.splitlines()[-60:])
        sections.append(
            f"### Tests\n\n{verdict}\n\n" + _code_block(tail or "(no output)", limit=8_000)
        )
    if stat:
        lines = [
            f"{'binary' if s.binary else f'+{s.added} -{s.removed}':>14}  "
            + (f"{s.old_path} => {s.path}" if s.old_path else s.path)
            for s in stat[:300]
        ]
        if len(stat) > 300:
            lines.append(f"… and {len(stat) - 300} more files")
        total_add = sum(s.added for s in stat)
        total_del = sum(s.removed for s in stat)
        lines.append(f"{len(stat)} files changed, +{total_add} -{total_del}")
        sections.append("### Diff stat\n\n" + _code_block("\n".join(lines), limit=12_000))
    body = "\n\n".join(sections) + "\n"
    return body[:BODY_LIMIT]  # sections are bounded above; this is only a backstop


# ---------------------------------------------------------------------------------------
# REST calls


@dataclass(frozen=True)
class _Context:
    repo: str
    head: str
    base: str


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "levautofix",
    }


def _client(api_url: str, token: str, timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api_url.rstrip("/"),
        headers=_headers(token),
        timeout=timeout_s,
        follow_redirects=True,
    )


def _check_repo_name(repo_full_name: str) -> None:
    if not _REPO_NAME.fullmatch(repo_full_name or "") or ".." in repo_full_name:
        raise GitHubError(f"{repo_full_name!r} is not an owner/name GitHub repository")


def _checked(token: str | None, repo_full_name: str) -> str:
    """The token, once it and the repository name are usable; else the error saying why."""
    if not token:
        raise GitHubError(
            "no GitHub token: set github.token in the config, export GITHUB_TOKEN, "
            "or log in with `gh auth login`"
        )
    _check_repo_name(repo_full_name)
    return token


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    data = _json(response)
    if isinstance(data, dict):
        text = str(data.get("message") or "").strip()
        errors = data.get("errors")
        details: list[str] = []
        if isinstance(errors, list):
            for err in errors:
                if isinstance(err, dict):
                    details.append(
                        str(err.get("message") or f"{err.get('field')}: {err.get('code')}")
                    )
                elif isinstance(err, str):
                    details.append(err)
        if details:
            text = f"{text} ({'; '.join(details)})" if text else "; ".join(details)
        if text:
            return text[:500]
    snippet = response.text.strip()[:200]
    return snippet or response.reason_phrase or "no message"


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds to wait when the response is a rate limit, else None."""
    status = response.status_code
    headers = response.headers
    retry_after = headers.get("retry-after")
    remaining = headers.get("x-ratelimit-remaining")
    limited = status == 429 or (
        status == 403
        and (
            retry_after is not None
            or remaining == "0"
            or "rate limit" in _message(response).lower()
        )
    )
    if not limited:
        return None
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - time.time() + 1.0)
        except ValueError:
            pass
    return 60.0  # GitHub's advice for secondary limits without a header


def _explain(response: httpx.Response, ctx: _Context, action: str) -> GitHubError:
    status = response.status_code
    message = _message(response)
    if status == 401:
        text = (
            f"GitHub rejected the token while trying to {action} (401: {message}); "
            "check github.token, GITHUB_TOKEN or `gh auth status`"
        )
    elif status == 403:
        text = (
            f"GitHub refused to {action} on {ctx.repo} (403: {message}); the token needs "
            "permission to write pull requests (and issues, for labels) on this repository"
        )
    elif status == 404:
        text = (
            f"{ctx.repo} was not found on GitHub while trying to {action} (404: {message}); "
            "check the repository name, or the token cannot see this repository"
        )
    elif status == 422:
        text = (
            f"GitHub did not accept the request to {action} "
            f"({ctx.head} -> {ctx.base} on {ctx.repo}): {message}"
        )
    elif status >= 500:
        text = f"GitHub had a server error while trying to {action} ({status}: {message})"
    else:
        text = f"unexpected answer from GitHub while trying to {action} ({status}: {message})"
    return GitHubError(text, status)


async def _request(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    ctx: _Context,
    action: str,
    *,
    max_retries: int,
    max_wait_s: float,
    **kwargs: Any,
) -> httpx.Response:
    """One REST call; waits out rate limits a bounded number of times."""
    for attempt in range(max_retries + 1):
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise GitHubError(f"GitHub did not answer in time while trying to {action}") from exc
        except httpx.HTTPError as exc:
            raise GitHubError(
                f"cannot reach GitHub at {client.base_url} to {action}: {exc}"
            ) from exc
        wait = _rate_limit_wait(response)
        if wait is None:
            return response
        if attempt == max_retries or wait > max_wait_s:
            resume = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
            raise RateLimited(
                f"GitHub rate limit reached while trying to {action}; "
                f"it resets in {wait:.0f}s (around {resume})",
                response.status_code,
                wait,
            )
        log.warning("GitHub rate limit while trying to %s; retrying in %.1fs", action, wait)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _as_pr(data: Any, created: bool, warnings: tuple[str, ...] = ()) -> PullRequest:
    if not isinstance(data, dict) or not isinstance(data.get("number"), int):
        raise GitHubError("unexpected answer from GitHub: no pull request number in it")
    url = data.get("html_url") or data.get("url") or ""
    state = "merged" if data.get("merged_at") else str(data.get("state") or "open")
    return PullRequest(int(data["number"]), str(url), created, state, warnings)


async def _find_existing(
    client: httpx.AsyncClient, ctx: _Context, **retry: Any
) -> dict[str, Any] | None:
    owner, name = ctx.repo.split("/")
    response = await _request(
        client,
        "GET",
        f"/repos/{owner}/{name}/pulls",
        ctx,
        "look up existing pull requests",
        params={"head": f"{owner}:{ctx.head}", "state": "all", "per_page": "100"},
        **retry,
    )
    if response.status_code != 200:
        raise _explain(response, ctx, "look up existing pull requests")
    data = _json(response)
    if not isinstance(data, list):
        raise GitHubError("unexpected answer from GitHub: pull request list is not a list")
    candidates = [
        pr
        for pr in data
        if isinstance(pr, dict) and (pr.get("head") or {}).get("ref", ctx.head) == ctx.head
    ]
    # An open PR wins over closed ones from earlier attempts.
    candidates.sort(key=lambda pr: (pr.get("state") != "open", -int(pr.get("number") or 0)))
    return candidates[0] if candidates else None


async def open_pull_request(
    *,
    api_url: str,
    token: str | None,
    repo_full_name: str,
    head_branch: str,
    base_branch: str,
    title: str,
    body: str,
    draft: bool = False,
    labels: Sequence[str] = (),
    timeout_s: float = 30.0,
    max_retries: int = 3,
    max_wait_s: float = 120.0,
) -> PullRequest:
    """Open (or find) the PR for an attempt branch; safe to call again after any failure.

    An existing PR for the branch, open or closed, is returned with ``created=False`` so
    a retry never produces a duplicate. Labels are best effort: failing to apply them is
    reported in ``warnings``, because the PR itself is what matters.
    """
    token = _checked(token, repo_full_name)
    if not head_branch or not base_branch:
        raise GitHubError("head and base branch are both required to open a pull request")
    ctx = _Context(repo_full_name, head_branch, base_branch)
    owner, name = repo_full_name.split("/")
    retry: dict[str, Any] = {"max_retries": max_retries, "max_wait_s": max_wait_s}
    title = " ".join(defuse(title).split())[:TITLE_LIMIT] or f"Fix on {head_branch}"
    async with _client(api_url, token, timeout_s) as client:
        existing = await _find_existing(client, ctx, **retry)
        if existing is not None:
            return _as_pr(existing, created=False)
        payload = {
            "title": title,
            "head": head_branch,
            "base": base_branch,
            "body": body[:BODY_LIMIT],
            "draft": draft,
        }
        response = await _request(
            client,
            "POST",
            f"/repos/{owner}/{name}/pulls",
            ctx,
            "open a pull request",
            json=payload,
            **retry,
        )
        if response.status_code == 422 and "already exists" in _message(response).lower():
            existing = await _find_existing(client, ctx, **retry)
            if existing is not None:
                return _as_pr(existing, created=False)
        if response.status_code != 201:
            raise _explain(response, ctx, "open a pull request")
        pr = _as_pr(_json(response), created=True)
        warnings = await _apply_labels(client, ctx, pr.number, labels, **retry)
        return PullRequest(pr.number, pr.url, True, pr.state, warnings)


async def _apply_labels(
    client: httpx.AsyncClient, ctx: _Context, number: int, labels: Sequence[str], **retry: Any
) -> tuple[str, ...]:
    wanted = [label for label in labels if label and label.strip()]
    if not wanted:
        return ()
    owner, name = ctx.repo.split("/")
    action = f"label pull request #{number}"
    try:
        response = await _request(
            client,
            "POST",
            f"/repos/{owner}/{name}/issues/{number}/labels",
            ctx,
            action,
            json={"labels": wanted},
            **retry,
        )
    except GitHubError as exc:
        log.warning("%s", exc)
        return (str(exc),)
    if response.status_code != 200:
        problem = str(_explain(response, ctx, action))
        log.warning("%s", problem)
        return (problem,)
    return ()


# ---------------------------------------------------------------------------------------
# Following a pull request after it was opened


@dataclass(frozen=True)
class PullState:
    """What GitHub says about a pull request now; ``state`` is open, merged or closed
    (closed without being merged). ``etag`` is sent back next time as If-None-Match."""

    number: int
    state: str
    etag: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None
    merge_sha: str | None = None
    merged_by: str | None = None


def _text_at(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _pull_state(data: Any, etag: str | None) -> PullState:
    if not isinstance(data, dict) or not isinstance(data.get("number"), int):
        raise GitHubError("unexpected answer from GitHub: no pull request number in it")
    merged = bool(data.get("merged")) or bool(data.get("merged_at"))
    state = "merged" if merged else ("closed" if data.get("state") == "closed" else "open")
    by = data.get("merged_by")
    return PullState(
        number=int(data["number"]),
        state=state,
        etag=etag,
        merged_at=_text_at(data, "merged_at"),
        closed_at=_text_at(data, "closed_at"),
        merge_sha=_text_at(data, "merge_commit_sha") if merged else None,
        merged_by=str(by["login"]) if isinstance(by, dict) and by.get("login") else None,
    )


async def poll_pull_request(
    *,
    api_url: str,
    token: str | None,
    repo_full_name: str,
    number: int,
    etag: str | None = None,
    timeout_s: float = 30.0,
) -> PullState | None:
    """A PR's state, or None when it has not changed since the answer ``etag`` came with.

    The ETag goes out as If-None-Match, and GitHub answers an unchanged PR with 304, which
    does not count against the rate limit, so polling often costs little. A rate limit is
    raised at once as :class:`RateLimited` (the poller decides how long to wait).
    """
    token = _checked(token, repo_full_name)
    ctx = _Context(repo_full_name, f"#{number}", "")
    owner, name = repo_full_name.split("/")
    action = f"read pull request #{number}"
    async with _client(api_url, token, timeout_s) as client:
        response = await _request(
            client,
            "GET",
            f"/repos/{owner}/{name}/pulls/{number}",
            ctx,
            action,
            max_retries=0,
            max_wait_s=0.0,
            headers={"If-None-Match": etag} if etag else {},
        )
    if response.status_code == 304:
        return None
    if response.status_code != 200:
        raise _explain(response, ctx, action)
    return _pull_state(_json(response), response.headers.get("etag"))


# ---------------------------------------------------------------------------------------
# What ``autofix check`` asks


@dataclass(frozen=True)
class RepoAccess:
    """What the token may do on a repository, as GitHub answers ``GET /repos/{o}/{r}``.

    ``push`` is the token owner's right to push, which opening a PR from a branch of the
    same repository needs as well; ``default_branch`` lets the check name a wrong base.
    """

    repo: str
    push: bool
    default_branch: str


async def repo_access(
    *, api_url: str, token: str, repo_full_name: str, timeout_s: float = 15.0
) -> RepoAccess:
    """Ask GitHub what the token may do on ``repo_full_name``; GitHubError says why not
    (a rejected token, a repository it cannot see, GitHub unreachable)."""
    _check_repo_name(repo_full_name)
    ctx = _Context(repo_full_name, "", "")
    action = "read the repository"
    async with _client(api_url, token, timeout_s) as client:
        response = await _request(
            client, "GET", f"/repos/{repo_full_name}", ctx, action, max_retries=0, max_wait_s=0
        )
    if response.status_code != 200:
        raise _explain(response, ctx, action)
    data = _json(response)
    if not isinstance(data, dict):
        raise GitHubError(f"unexpected answer from GitHub while trying to {action}: not an object")
    permissions = data.get("permissions")
    push = isinstance(permissions, dict) and permissions.get("push") is True
    return RepoAccess(repo_full_name, push, str(data.get("default_branch") or ""))


# ---------------------------------------------------------------------------------------
# Checks and merging (auto-merge)

# Check-run conclusions that do not hold a merge back, as GitHub's own branch protection
# reads them.
_GREEN_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})


@dataclass(frozen=True)
class CheckSummary:
    """What a commit's checks say, from the check-runs and the combined status APIs.

    ``sha`` is the commit they are about (the PR head when read by branch), so a merge can
    insist on exactly that commit. Each name is a check run's name or a status's context.
    """

    sha: str
    passed: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        """``failure`` when any check failed, else ``pending`` while any runs (or none has
        reported yet), else ``success``."""
        if self.failed:
            return "failure"
        if self.pending or not self.passed:
            return "pending"
        return "success"


@dataclass(frozen=True)
class Merged:
    """A pull request GitHub merged: the merge commit on the base branch."""

    number: int
    sha: str
    message: str


def _check_runs(data: Any) -> list[tuple[str, str]]:
    runs = data.get("check_runs") if isinstance(data, dict) else None
    if not isinstance(runs, list):
        raise GitHubError("unexpected answer from GitHub: no check_runs list in it")
    found: list[tuple[str, str]] = []
    for run in runs:
        if not isinstance(run, dict):
            continue
        name = str(run.get("name") or "check run")
        if run.get("status") != "completed":
            found.append((name, "pending"))
        elif run.get("conclusion") in _GREEN_CONCLUSIONS:
            found.append((name, "passed"))
        else:
            found.append((name, "failed"))
    return found


def _statuses(data: Any) -> list[tuple[str, str]]:
    statuses = data.get("statuses") if isinstance(data, dict) else None
    if not isinstance(statuses, list):
        raise GitHubError("unexpected answer from GitHub: no statuses list in the status")
    words = {"success": "passed", "pending": "pending"}
    return [
        (str(s.get("context") or "status"), words.get(str(s.get("state")), "failed"))
        for s in statuses
        if isinstance(s, dict)
    ]


async def read_checks(
    *,
    api_url: str,
    token: str | None,
    repo_full_name: str,
    ref: str,
    timeout_s: float = 30.0,
    max_retries: int = 3,
    max_wait_s: float = 120.0,
) -> CheckSummary:
    """The checks of ``ref`` (a PR's head branch or commit): its check runs and its
    commit statuses together, since a repository's CI may report through either."""
    token = _checked(token, repo_full_name)
    ctx = _Context(repo_full_name, ref, "")
    owner, name = repo_full_name.split("/")
    retry: dict[str, Any] = {"max_retries": max_retries, "max_wait_s": max_wait_s}
    commit = f"/repos/{owner}/{name}/commits/{quote(ref, safe='')}"
    async with _client(api_url, token, timeout_s) as client:

        async def read(endpoint: str, what: str, **params: str) -> Any:
            action = f"read the {what} of {ref}"
            response = await _request(
                client, "GET", f"{commit}/{endpoint}", ctx, action, params=params, **retry
            )
            if response.status_code != 200:
                raise _explain(response, ctx, action)
            return _json(response)

        runs = await read("check-runs", "check runs", per_page="100", filter="latest")
        status = await read("status", "status")
    return summarize_checks(runs, status, ref)


def summarize_checks(runs: Any, status: Any, ref: str) -> CheckSummary:
    """The answers of the check-runs and combined status endpoints for ``ref`` as one
    summary; an answer of another shape is a :class:`GitHubError`, never a green check."""
    found = _check_runs(runs) + _statuses(status)
    sha = status.get("sha") if isinstance(status, dict) else None
    return CheckSummary(
        sha=sha if isinstance(sha, str) and sha else ref,
        passed=tuple(n for n, word in found if word == "passed"),
        pending=tuple(n for n, word in found if word == "pending"),
        failed=tuple(n for n, word in found if word == "failed"),
    )


async def merge_pull_request(
    *,
    api_url: str,
    token: str | None,
    repo_full_name: str,
    number: int,
    sha: str,
    title: str,
    message: str = "",
    timeout_s: float = 30.0,
    max_retries: int = 3,
    max_wait_s: float = 120.0,
) -> Merged:
    """Squash-merge PR ``number`` through GitHub's merge endpoint, only while its head is
    still ``sha`` (the commit whose checks passed): the base branch is never pushed to
    from here, so branch protection and required reviews still apply."""
    token = _checked(token, repo_full_name)
    ctx = _Context(repo_full_name, f"#{number}", "")
    owner, name = repo_full_name.split("/")
    action = f"merge pull request #{number}"
    payload = {
        "merge_method": "squash",
        "sha": sha,
        "commit_title": " ".join(defuse(title).split())[:TITLE_LIMIT],
        "commit_message": defuse(message)[:BODY_LIMIT],
    }
    async with _client(api_url, token, timeout_s) as client:
        response = await _request(
            client,
            "PUT",
            f"/repos/{owner}/{name}/pulls/{number}/merge",
            ctx,
            action,
            json=payload,
            max_retries=max_retries,
            max_wait_s=max_wait_s,
        )
    if response.status_code == 405:
        raise GitHubError(
            f"GitHub will not merge pull request #{number} on {repo_full_name} "
            f"(405: {_message(response)}): a required review or check, a conflict, or "
            "squash merging turned off for the repository; nothing was merged",
            405,
        )
    if response.status_code == 409:
        raise GitHubError(
            f"pull request #{number} on {repo_full_name} changed while it waited "
            f"(409: {_message(response)}): its head is no longer {sha[:12]}, the commit whose "
            "checks passed; nothing was merged",
            409,
        )
    if response.status_code != 200:
        raise _explain(response, ctx, action)
    data = _json(response)
    if not isinstance(data, dict) or not data.get("merged") or not data.get("sha"):
        raise GitHubError(f"unexpected answer from GitHub to {action}: no merge commit in it")
    return Merged(number, str(data["sha"]), str(data.get("message") or ""))
