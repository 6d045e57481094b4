"""``autofix check``: every part the config names, tried for real, one line each."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from console.config import ConsoleConfig


async def run_check(config: ConsoleConfig) -> int:
    """``autofix check``: one ``ok``/``warn``/``FAIL`` line per part the config names
    (hosts, repositories, GitHub, Claude Code, the test cage, Telegram); 1 if any failed."""
    from console.fix.claude_state import discover
    from console.fix.git import GitError
    from console.fix.github import repo_from_remote_url, resolve_token
    from console.fix.worktree import check_repo
    from console.link import ProbeError, probe

    failures = 0

    def line(ok: bool | None, text: str) -> None:
        nonlocal failures
        word = "ok  " if ok else ("warn" if ok is None else "FAIL")
        failures += ok is False
        print(f"{word} {text}", flush=True)

    line(True, f"config: {len(config.hosts)} host(s), {len(config.services)} service(s)")
    for host in config.hosts:
        where = "local agent" if host.local else f"{host.user or ''}@{host.target}:{host.port}"
        try:
            hello = await probe(host)
        except ProbeError as exc:
            line(False, f"host {host.name} ({where}): {exc}")
        else:
            line(
                True,
                f"host {host.name} ({where}): agent {hello.agent_version} on {hello.host!r}, "
                f"host key known, last seq {hello.last_seq}",
            )
    token = resolve_token(config.github.token)
    for service in config.services:
        try:
            url = await check_repo(
                service.repo, base_branch=service.base_branch, remote=service.remote
            )
        except (GitError, ValueError) as exc:  # ValueError: no such remote
            line(False, f"service {service.name}: {exc}")
            continue
        repo = service.repo
        line(True, f"service {service.name}: {repo} on {service.base_branch}, remote {url}")
        github_repo = service.github_repo or repo_from_remote_url(url)
        if github_repo is None:
            line(
                None,
                f"service {service.name}: no GitHub repository; approvals push the branch only",
            )
        elif token is None:
            line(
                False,
                f"service {service.name}: no GitHub token (github.token, GITHUB_TOKEN or "
                "`gh auth token`) to open PRs",
            )
        else:
            ok, text = await check_github(config, token, github_repo, service.base_branch)
            line(ok, f"service {service.name}: {text}")
    claude = shutil.which(config.claude.command)
    if claude is None:
        line(
            False,
            f"claude: {config.claude.command!r} not found; install Claude Code "
            "(npm i -g @anthropic-ai/claude-code) and log in",
        )
    else:
        proc = await asyncio.create_subprocess_exec(
            claude, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        line(proc.returncode == 0, f"claude: {claude} ({out.decode().strip()[:80]})")
        login = discover(config.claude.command, config.claude.extra_env)
        if login.kind == "not_logged_in":
            # A warning: a login kept where this check cannot see it still works.
            line(None, f"claude: {login.text.removeprefix('Claude: ')}")
    line(*await check_sandbox())
    from console.telegram.probe import check_telegram

    telegram = await check_telegram(config.telegram)
    line(telegram.ok, telegram.text)
    return 1 if failures else 0


async def check_github(
    config: ConsoleConfig, token: str, repo: str, base_branch: str
) -> tuple[bool, str]:
    """Whether the token may push to ``repo`` and open PRs on it, asked of GitHub itself:
    a token that is set but expired, too narrow or for another account fails here, not at
    the first approval."""
    from console.fix.github import GitHubError, repo_access

    try:
        access = await repo_access(api_url=config.github.api_url, token=token, repo_full_name=repo)
    except GitHubError as exc:
        return False, str(exc)
    if not access.push:
        return False, (
            f"the GitHub token cannot push to {repo} (permissions.push is false); it needs "
            '"Contents: write" and "Pull requests: write" on that repository'
        )
    return True, f"the GitHub token can push to {repo} and open PRs into {base_branch}"


async def check_sandbox() -> tuple[bool, str]:
    """Whether bubblewrap can build the cage that an unreviewed fix's tests run in, tried
    for real on a scratch directory: without it every attempt fails at its test step."""
    import tempfile

    from console.fix.sandbox.cage import CageUnavailable, cage_for, check_cage

    with tempfile.TemporaryDirectory(prefix="autofix-check-") as scratch:
        try:
            cage = cage_for(Path(scratch))
            await check_cage(cage)
        except CageUnavailable as exc:
            return False, f"sandbox: {exc}"
    return (
        True,
        f"sandbox: {cage.bwrap} builds the test cage (no network, writes only in the worktree)",
    )
