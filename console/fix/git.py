"""Running git for the fix pipeline: one command line, one environment, one error type.

Every git call runs without a terminal (own session, ``GIT_TERMINAL_PROMPT=0``), so a
credential or passphrase prompt fails fast with git's message instead of hanging the UI.
Every git call also runs with hooks and the file-system monitor disabled (:func:`git_argv`):
the worktree holds code nobody has reviewed, and git must never execute anything from the
repository on the console's behalf. Failures surface as :class:`GitError` carrying the
command, exit code and git's stderr.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from console.children import end, spawn

A = TypeVar("A")
B = TypeVar("B")

# Config that would make git execute something: hooks (which a planted file in the shared
# .git/hooks would otherwise run on the next `worktree add`), an fsmonitor command, and
# the ext:: transport. Given on the command line, they win over every config file.
_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "protocol.ext.allow=never",
)
_LOCAL_TIMEOUT_S = 120.0
NETWORK_TIMEOUT_S = 300.0
# Environment variables that would point git at a different repository than the one we pass.
_REPO_OVERRIDES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
# stderr fragments meaning "could not reach the remote at all" (as opposed to a refusal).
_UNREACHABLE = (
    "could not resolve host",
    "could not resolve hostname",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "network is unreachable",
    "no route to host",
    "failed to connect to",
    "temporary failure in name resolution",
    "name or service not known",
    "connection reset by peer",
)


class GitError(RuntimeError):
    """A git command failed; the message names the command and quotes git's own words."""

    def __init__(self, command: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr.strip()
        shown = " ".join(self.command)
        status = "timed out" if returncode is None else f"exited with {returncode}"
        detail = f": {self.stderr}" if self.stderr else ""
        super().__init__(f"`{shown}` {status}{detail}")


class NotARepositoryError(GitError):
    """The configured repository path is missing or is not inside a git work tree."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(["git", "-C", str(path), "rev-parse"], 128, detail)
        self.path = path
        # Replace the generic text: the operator needs the path, not the probe command.
        self.args = (f"{path} is not a git repository: {detail}",)


@dataclass(frozen=True)
class GitOutput:
    stdout: bytes
    stderr: str
    returncode: int


def git_argv(*args: str) -> list[str]:
    """The command line of one git call, with everything that would execute code turned off.

    The one place git command lines are made; the demo's workspace uses it too.
    """
    command = ["git"]
    for option in _SAFE_CONFIG:
        command += ["-c", option]
    return [*command, *args]


def git_env() -> dict[str, str]:
    """The environment of every git call: the console's, minus repository overrides, with
    prompts off and a fixed locale (git's messages are parsed)."""
    env = {k: v for k, v in os.environ.items() if k not in _REPO_OVERRIDES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GCM_INTERACTIVE"] = "never"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["LC_ALL"] = "C"
    return env


async def run_git(
    cwd: Path,
    *args: str,
    check: bool = True,
    stdin: bytes | None = None,
    timeout: float = _LOCAL_TIMEOUT_S,
    env: dict[str, str] | None = None,
    error: type[GitError] = GitError,
) -> GitOutput:
    command = git_argv(*args)
    try:
        proc = await spawn(
            *command,
            cwd=str(cwd),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**git_env(), **(env or {})},
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if not Path(cwd).is_dir():
            raise NotARepositoryError(Path(cwd), "directory does not exist") from exc
        raise GitError(command, 127, "git is not installed or not on PATH") from exc
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin)
    except TimeoutError:
        await end(proc, group=True)
        raise error(command, None, f"no answer after {timeout:.0f}s") from None
    except asyncio.CancelledError:
        await end(proc, group=True)
        raise
    result = GitOutput(out, err.decode("utf-8", "replace"), proc.returncode or 0)
    if check and result.returncode != 0:
        raise error(command, result.returncode, result.stderr)
    return result


async def together(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Run two independent git steps at once (each is mostly waiting on the disk or the
    remote); a failure is raised only once both have ended, so no git call is left
    running behind the caller's back."""
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(a, BaseException):
        raise a
    if isinstance(b, BaseException):
        raise b
    return a, b


def stdout_text(out: GitOutput) -> str:
    return out.stdout.decode("utf-8", "replace").strip()


async def toplevel(repo: Path) -> Path:
    """The work tree root of ``repo``; a clear error when it is not a repository."""
    repo = Path(repo).expanduser()
    if not repo.is_dir():
        raise NotARepositoryError(repo, "directory does not exist")
    out = await run_git(repo, "rev-parse", "--show-toplevel", check=False)
    if out.returncode != 0:
        detail = out.stderr.strip().removeprefix("fatal: ") or "git rev-parse failed"
        raise NotARepositoryError(repo, detail)
    top = stdout_text(out)
    if not top:
        raise NotARepositoryError(repo, "it is a bare repository, not a checkout")
    return Path(top)


async def check_ref_name(cwd: Path, what: str, name: str) -> None:
    if not name or name.startswith("-"):
        raise ValueError(f"{what} {name!r} is not a valid git name")
    out = await run_git(cwd, "check-ref-format", "--branch", name, check=False)
    if out.returncode != 0:
        raise ValueError(f"{what} {name!r} is not a valid git name")


async def check_remote(cwd: Path, remote: str) -> None:
    if not remote or remote.startswith("-"):
        raise ValueError(f"remote {remote!r} is not a valid remote name")
    out = await run_git(cwd, "remote", check=False)
    remotes = stdout_text(out).splitlines()
    if remote not in remotes:
        known = ", ".join(remotes) or "none"
        raise ValueError(f"remote {remote!r} is not configured in this repository (known: {known})")


async def resolve_commit(cwd: Path, ref: str) -> str | None:
    out = await run_git(cwd, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    return stdout_text(out) if out.returncode == 0 else None


def same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def is_unreachable(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in _UNREACHABLE)
