"""Git worktrees for fix attempts: isolated from the developer's own checkout.

A fix attempt never runs in the main checkout. Each attempt gets a linked worktree under
``<repo>/.worktrees/hotfix/auto-<fingerprint>`` on branch ``hotfix/auto-<fingerprint>``,
started from the freshly fetched remote base branch. The engine snapshots the main checkout
before an attempt and verifies afterwards that HEAD, branch, working tree and the git
directory's config, hooks and attributes are unchanged.

Every git call runs without a terminal (own session, ``GIT_TERMINAL_PROMPT=0``), so a
credential or passphrase prompt fails fast with git's message instead of hanging the UI.
Every git call also runs with hooks and the file-system monitor disabled (:func:`git_argv`):
the worktree holds code nobody has reviewed, and git must never execute anything from the
repository on the console's behalf. Failures surface as :class:`GitError` carrying the
command, exit code and git's stderr.

Decisions worth knowing:

* A failed fetch is an error, except when the remote is *unreachable* (network-level
  failure) and a local copy of the base exists: then the attempt starts from the last
  fetched ``<remote>/<base>`` (or, failing that, the local ``<base>`` branch) and
  :attr:`Worktree.warning` says so. Authentication failures and a missing remote branch are
  not papered over, because the push at the end would fail the same way.
* A retry starts from a clean base: a worktree or branch left by an earlier, interrupted
  attempt is discarded and recreated, unless ``reuse=True`` asks to continue it.
* ``.worktrees/`` is hidden from the main checkout through ``.git/info/exclude``; the
  project's ``.gitignore`` is never edited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

WORKTREES_DIR = ".worktrees"
BRANCH_PREFIX = "hotfix/auto-"
FALLBACK_AUTHOR_NAME = "LevAutoFix"
FALLBACK_AUTHOR_EMAIL = "autofix@localhost"

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
# Config that would make git execute something: hooks (which a planted file in the shared
# .git/hooks would otherwise run on the next `worktree add`), an fsmonitor command, and
# the ext:: transport. Given on the command line, they win over every config file.
_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "protocol.ext.allow=never",
)
# Files of the shared git directory whose change means something could run or be hidden
# on the developer's next git command; hooks/ is covered recursively.
_GIT_DIR_FILES = ("config", "config.worktree", "info/attributes")
_LOCAL_TIMEOUT_S = 120.0
_NETWORK_TIMEOUT_S = 300.0
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


class PushError(GitError):
    """``git push`` failed; ``reason`` is a short classification of git's stderr."""

    def __init__(self, command: Sequence[str], returncode: int | None, stderr: str) -> None:
        super().__init__(command, returncode, stderr)
        self.reason = _classify_push_failure(self.stderr)
        self.args = (f"push failed ({self.reason}): {self.stderr or 'no output from git'}",)


class NothingToCommitError(GitError):
    """The worktree holds no change relative to its base, so there is nothing to propose."""


@dataclass(frozen=True)
class MainSnapshot:
    """What the main checkout looked like before an attempt.

    ``status`` holds the ``git status --porcelain=v1`` entries; ``content_digest`` covers the
    content of staged and unstaged changes and of untracked files, which status alone
    does not (a file already modified can be modified again without changing status).
    ``git_files`` maps the git directory's config, attributes and every file under
    ``hooks/`` to a digest of its mode and content.
    """

    head: str | None
    branch: str | None
    status: tuple[str, ...]
    content_digest: str
    git_files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Worktree:
    """A linked worktree for one fix attempt.

    ``base_sha`` is the commit the branch started from; diffs are taken against it.
    ``base_ref`` names where it came from and ``warning`` is set when that was not the
    freshly fetched remote base (unreachable remote) or when an existing attempt was reused.
    """

    path: Path
    branch: str
    base_sha: str
    repo: Path
    base_ref: str = ""
    warning: str | None = None


@dataclass(frozen=True)
class FileStat:
    """Per-file line counts of a diff; ``added``/``removed`` are 0 for binary files."""

    path: str
    added: int
    removed: int
    binary: bool = False
    old_path: str | None = None


@dataclass(frozen=True)
class DiffResult:
    """The whole change an attempt made, relative to the worktree's base commit."""

    text: str
    stat: list[FileStat] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _GitOutput:
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


async def _git(
    cwd: Path,
    *args: str,
    check: bool = True,
    stdin: bytes | None = None,
    timeout: float = _LOCAL_TIMEOUT_S,
    env: dict[str, str] | None = None,
    error: type[GitError] = GitError,
) -> _GitOutput:
    command = git_argv(*args)
    try:
        proc = await asyncio.create_subprocess_exec(
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
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise error(command, None, f"no answer after {timeout:.0f}s") from None
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    result = _GitOutput(out, err.decode("utf-8", "replace"), proc.returncode or 0)
    if check and result.returncode != 0:
        raise error(command, result.returncode, result.stderr)
    return result


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _text(out: _GitOutput) -> str:
    return out.stdout.decode("utf-8", "replace").strip()


async def _toplevel(repo: Path) -> Path:
    """The work tree root of ``repo``; a clear error when it is not a repository."""
    repo = Path(repo).expanduser()
    if not repo.is_dir():
        raise NotARepositoryError(repo, "directory does not exist")
    out = await _git(repo, "rev-parse", "--show-toplevel", check=False)
    if out.returncode != 0:
        detail = out.stderr.strip().removeprefix("fatal: ") or "git rev-parse failed"
        raise NotARepositoryError(repo, detail)
    top = _text(out)
    if not top:
        raise NotARepositoryError(repo, "it is a bare repository, not a checkout")
    return Path(top)


# ---------------------------------------------------------------------------------------
# Main checkout snapshot


def _parse_status(raw: bytes) -> tuple[str, ...]:
    entries: list[str] = []
    fields = raw.split(b"\0")
    i = 0
    while i < len(fields):
        item = fields[i].decode("utf-8", "replace")
        i += 1
        if not item:
            continue
        code = item[:2]
        if ("R" in code or "C" in code) and i < len(fields):
            item = f"{item} <- {fields[i].decode('utf-8', 'replace')}"
            i += 1
        entries.append(item)
    return tuple(e for e in entries if not _inside_worktrees_dir(e[3:]))


def _inside_worktrees_dir(path: str) -> bool:
    return path == WORKTREES_DIR or path.startswith(WORKTREES_DIR + "/")


async def snapshot_main(repo: Path) -> MainSnapshot:
    """Record the main checkout so :func:`verify_main_untouched` can prove an attempt
    left it alone (the attempt runs elsewhere, but a bug or a tool could still reach it)."""
    top = await _toplevel(repo)
    head_out = await _git(top, "rev-parse", "--verify", "-q", "HEAD", check=False)
    head = _text(head_out) if head_out.returncode == 0 else None
    branch_out = await _git(top, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    branch = _text(branch_out) if branch_out.returncode == 0 else None
    status_out = await _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    status = _parse_status(status_out.stdout)

    digest = hashlib.sha256()
    diff_flags = ("--binary", "--no-ext-diff", "--no-textconv", "--no-color")
    unstaged = await _git(top, "diff", *diff_flags)
    staged = await _git(top, "diff", "--cached", *diff_flags)
    digest.update(b"unstaged\0" + unstaged.stdout + b"\0staged\0" + staged.stdout)
    untracked_out = await _git(top, "ls-files", "--others", "--exclude-standard", "-z")
    untracked = [
        p for p in untracked_out.stdout.split(b"\0") if p and not _inside_worktrees_dir(p.decode())
    ]
    digest.update(b"\0untracked\0")
    for path in sorted(untracked):
        digest.update(path + b"\0" + _file_digest(top / os.fsdecode(path)) + b"\0")
    return MainSnapshot(head, branch, status, digest.hexdigest(), await _git_dir_files(top))


async def _git_dir_files(top: Path) -> tuple[tuple[str, str], ...]:
    """Digest of each file in the shared git directory that decides what git runs."""
    out = await _git(top, "rev-parse", "--git-common-dir")
    common = Path(_text(out))
    if not common.is_absolute():
        common = top / common
    found: list[tuple[str, str]] = []
    for name in _GIT_DIR_FILES:
        path = common / name
        # An empty config file says nothing; Claude Code's sandbox leaves empty ones behind
        # as mount points for its read-only binds.
        if path.is_symlink() or (path.exists() and (not path.is_file() or path.stat().st_size)):
            found.append((name, _entry_digest(path)))
    hooks = common / "hooks"
    if hooks.is_dir() or hooks.is_symlink():
        found.append(("hooks", _entry_digest(hooks)))
        for dirpath, dirnames, filenames in os.walk(hooks):
            for name in sorted(dirnames + filenames):
                path = Path(dirpath, name)
                found.append((path.relative_to(common).as_posix(), _entry_digest(path)))
    return tuple(sorted(found))


def _entry_digest(path: Path) -> str:
    """Type, mode and content of a file (an executable bit is what makes a hook run)."""
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return f"unreadable:{exc.strerror}"
    if path.is_dir() and not path.is_symlink():
        return f"dir:{mode:o}"
    return f"{mode:o}:{_file_digest(path).decode()}"


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    try:
        if path.is_symlink():
            h.update(b"link:" + os.fsencode(os.readlink(path)))
        else:
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    except OSError as exc:
        h.update(f"unreadable:{exc.strerror}".encode())
    return h.hexdigest().encode()


async def verify_main_untouched(repo: Path, before: MainSnapshot) -> list[str]:
    """Differences between the main checkout now and ``before``; empty means untouched.

    Each entry is a sentence for the operator, so the engine can show it as is.
    """
    now = await snapshot_main(repo)
    problems: list[str] = []
    if now.head != before.head:
        problems.append(f"HEAD moved from {before.head} to {now.head}")
    if now.branch != before.branch:
        problems.append(f"branch changed from {before.branch} to {now.branch}")
    if now.status != before.status:
        gone = sorted(set(before.status) - set(now.status))
        new = sorted(set(now.status) - set(before.status))
        parts = [f"+ {e!r}" for e in new] + [f"- {e!r}" for e in gone]
        problems.append("working tree status changed: " + ", ".join(parts))
    if now.content_digest != before.content_digest and now.status == before.status:
        problems.append("file contents changed (status is the same, the content is not)")
    old, new_files = dict(before.git_files), dict(now.git_files)
    changed = sorted(
        name for name in old.keys() | new_files.keys() if old.get(name) != new_files.get(name)
    )
    if changed:
        problems.append("git directory changed: " + ", ".join(f".git/{n}" for n in changed))
    return problems


# ---------------------------------------------------------------------------------------
# Worktree lifecycle


def branch_for(fingerprint: str) -> str:
    """The branch name of an attempt; validates the fingerprint first (it ends up in paths)."""
    return BRANCH_PREFIX + _check_fingerprint(fingerprint)


def _check_fingerprint(fingerprint: str) -> str:
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint.lower()):
        raise ValueError(f"fingerprint must be 16 hexadecimal characters, got {fingerprint!r}")
    return fingerprint.lower()


async def _check_ref_name(cwd: Path, what: str, name: str) -> None:
    if not name or name.startswith("-"):
        raise ValueError(f"{what} {name!r} is not a valid git name")
    out = await _git(cwd, "check-ref-format", "--branch", name, check=False)
    if out.returncode != 0:
        raise ValueError(f"{what} {name!r} is not a valid git name")


async def _check_remote(cwd: Path, remote: str) -> None:
    if not remote or remote.startswith("-"):
        raise ValueError(f"remote {remote!r} is not a valid remote name")
    out = await _git(cwd, "remote", check=False)
    remotes = _text(out).splitlines()
    if remote not in remotes:
        known = ", ".join(remotes) or "none"
        raise ValueError(f"remote {remote!r} is not configured in this repository (known: {known})")


async def _ensure_excluded(top: Path) -> None:
    out = await _git(top, "rev-parse", "--git-path", "info/exclude")
    exclude = Path(_text(out))
    if not exclude.is_absolute():
        exclude = top / exclude
    line = f"/{WORKTREES_DIR}/"
    existing = exclude.read_text(encoding="utf-8", errors="replace") if exclude.exists() else ""
    if line in existing.splitlines():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    with exclude.open("a", encoding="utf-8") as fh:
        fh.write(f"{prefix}# fix attempts run in linked worktrees here\n{line}\n")


async def _rev(cwd: Path, ref: str) -> str | None:
    out = await _git(cwd, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    return _text(out) if out.returncode == 0 else None


async def _worktree_branches(top: Path) -> dict[Path, str | None]:
    """Registered worktrees mapped to the branch each has checked out."""
    out = await _git(top, "worktree", "list", "--porcelain")
    result: dict[Path, str | None] = {}
    current: Path | None = None
    for line in _text(out).splitlines():
        if line.startswith("worktree "):
            current = Path(line[len("worktree ") :])
            result[current] = None
        elif line.startswith("branch ") and current is not None:
            result[current] = line[len("branch ") :].removeprefix("refs/heads/")
    return result


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


async def _fetch_base(top: Path, remote: str, base_branch: str) -> tuple[str, str, str | None]:
    """Fetch the base and return (sha, ref used, warning)."""
    tracking = f"refs/remotes/{remote}/{base_branch}"
    refspec = f"+refs/heads/{base_branch}:{tracking}"
    fetch = await _git(
        top, "fetch", "--no-tags", "--", remote, refspec, check=False, timeout=_NETWORK_TIMEOUT_S
    )
    if fetch.returncode == 0:
        sha = await _rev(top, tracking)
        if sha is None:
            raise GitError(["git", "rev-parse", tracking], 128, "fetched base is missing")
        return sha, f"{remote}/{base_branch}", None
    command = ["git", "fetch", "--no-tags", "--", remote, refspec]
    if not _is_unreachable(fetch.stderr):
        raise GitError(command, fetch.returncode, fetch.stderr)
    for ref, label in ((tracking, f"{remote}/{base_branch}"), (f"refs/heads/{base_branch}", None)):
        sha = await _rev(top, ref)
        if sha is not None:
            name = label or base_branch
            reason = fetch.stderr.strip().splitlines()[-1] if fetch.stderr.strip() else "no output"
            warning = (
                f"remote {remote!r} is unreachable ({reason}); "
                f"starting from the local copy {name} at {sha[:12]}, which may be out of date"
            )
            return sha, name, warning
    raise GitError(
        command,
        fetch.returncode,
        fetch.stderr.strip() + f"\n(no local copy of {base_branch!r} to fall back on)",
    )


def _is_unreachable(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in _UNREACHABLE)


async def create_worktree(
    repo: Path,
    fingerprint: str,
    *,
    base_branch: str,
    remote: str,
    reuse: bool = False,
) -> Worktree:
    """Give a fix attempt its own checkout of the freshly fetched base branch.

    The main checkout is never switched or modified; only refs, the worktree list and
    ``info/exclude`` of the shared repository change. ``reuse=True`` continues an
    existing worktree of the same fingerprint instead of starting over.
    """
    branch = branch_for(fingerprint)
    top = await _toplevel(repo)
    await _check_ref_name(top, "base branch", base_branch)
    await _check_remote(top, remote)
    path = top / WORKTREES_DIR / branch
    await _ensure_excluded(top)
    await _git(top, "worktree", "prune")

    registered = await _worktree_branches(top)
    for wt_path, wt_branch in registered.items():
        if wt_branch == branch and not _same_path(wt_path, path):
            raise GitError(
                ["git", "worktree", "add", str(path)],
                128,
                f"branch {branch} is checked out at {wt_path}; refusing to take it over",
            )
    at_path = next((p for p in registered if _same_path(p, path)), None)

    if reuse and at_path is not None and registered[at_path] == branch:
        base_sha, base_ref, warning = await _fetch_base(top, remote, base_branch)
        merge_base = await _git(top, "merge-base", branch, base_sha, check=False)
        start = _text(merge_base) if merge_base.returncode == 0 else base_sha
        note = "continuing the worktree of an earlier attempt"
        return Worktree(
            path, branch, start, top, base_ref, f"{warning}; {note}" if warning else note
        )

    base_sha, base_ref, warning = await _fetch_base(top, remote, base_branch)
    if at_path is not None:
        await _git(top, "worktree", "remove", "--force", "--force", str(at_path))
    if path.exists() or path.is_symlink():
        _remove_tree(top, path)
    await _git(top, "worktree", "prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    await _git(top, "worktree", "add", "--no-track", "-B", branch, str(path), base_sha)
    return Worktree(path, branch, base_sha, top, base_ref, warning)


def _remove_tree(top: Path, path: Path) -> None:
    """Delete a leftover directory, but only inside ``.worktrees/`` of this repository."""
    root = (top / WORKTREES_DIR).resolve()
    target = path.parent.resolve() / path.name
    if root not in target.parents:
        raise ValueError(f"refusing to delete {path}: it is not inside {root}")
    if target.is_symlink() or target.is_file():
        target.unlink()
    else:
        shutil.rmtree(target)


async def remove_worktree(repo: Path, wt: Worktree, *, delete_branch: bool) -> None:
    """Discard an attempt's worktree (uncommitted work included) and optionally its branch.

    Only paths inside ``.worktrees/`` are ever removed, so a corrupted or hostile
    ``Worktree`` value cannot make this delete the main checkout.
    """
    top = await _toplevel(repo)
    root = (top / WORKTREES_DIR).resolve()
    target = Path(wt.path).parent.resolve() / Path(wt.path).name
    if root not in target.parents:
        raise ValueError(f"refusing to remove {wt.path}: it is not inside {root}")
    registered = await _worktree_branches(top)
    if any(_same_path(p, target) for p in registered):
        await _git(top, "worktree", "remove", "--force", "--force", str(target))
    if target.exists() or target.is_symlink():
        _remove_tree(top, target)
    await _git(top, "worktree", "prune")
    if delete_branch:
        if not wt.branch.startswith(BRANCH_PREFIX):
            raise ValueError(f"refusing to delete branch {wt.branch!r}: not an attempt branch")
        if await _rev(top, f"refs/heads/{wt.branch}") is not None:
            await _git(top, "branch", "-D", "--", wt.branch)


# ---------------------------------------------------------------------------------------
# Inspecting and publishing the change


async def _check_gitfile(wt: Worktree) -> None:
    """Refuse to run git in a worktree whose ``.git`` file no longer leads to its own entry
    in the repository's git directory.

    Whatever can write the worktree could otherwise point it at a repository of its own,
    whose config (filters, fsmonitor, ssh command) git would obey on the console's next
    diff or commit.
    """
    gitfile = wt.path / ".git"
    problem = None
    if gitfile.is_symlink() or not gitfile.is_file():
        problem = "is not a file"
    else:
        pointer = gitfile.read_text(encoding="utf-8", errors="replace").strip()
        entry = Path(pointer.removeprefix("gitdir: "))
        common = Path(_text(await _git(wt.repo, "rev-parse", "--git-common-dir")))
        common = common if common.is_absolute() else wt.repo / common
        try:
            back = (entry / "gitdir").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            back = ""
        if (
            not pointer.startswith("gitdir: ")
            or not _same_path(entry.parent, common / "worktrees")
            or not back
            or not _same_path(Path(back), gitfile)
        ):
            problem = f"points at {pointer[:200]!r}, not at this worktree's entry in {common}"
    if problem:
        raise GitError(
            ["git", "-C", str(wt.path)],
            128,
            f"{gitfile} {problem}; refusing to run git in a worktree that was tampered with",
        )


async def _mark_new_files(wt: Worktree) -> None:
    """Record untracked files as intent-to-add so diffs show what was written, not just
    what was edited (new files are often the whole fix)."""
    await _git(wt.path, "add", "--intent-to-add", "--all", "--", ".")


async def diff(wt: Worktree) -> DiffResult:
    """The attempt's full change against its base: edits, new files, deletions, commits."""
    await _check_gitfile(wt)
    await _mark_new_files(wt)
    flags = ("--no-color", "--no-ext-diff", "--find-renames")
    text = await _git(wt.path, "diff", *flags, wt.base_sha, "--")
    numstat = await _git(wt.path, "diff", *flags, "--numstat", "-z", wt.base_sha, "--")
    stat = _parse_numstat(numstat.stdout)
    return DiffResult(
        text=text.stdout.decode("utf-8", "replace"),
        stat=stat,
        files=[s.path for s in stat],
    )


@dataclass(frozen=True)
class TestWrites:
    """What a test run changed in the worktree, all of it undone before the diff is taken.

    ``created`` were removed; ``changed`` (modified or deleted by the tests) were put back
    as Claude left them. Neither is ever part of the diff nor of a commit.
    """

    __test__ = False  # not a pytest test class despite the name

    created: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        return self.created + self.changed


_UNDO_ROUNDS = 3


async def snapshot_files(wt: Worktree) -> str:
    """The worktree's files as they are now (tracked and untracked, not ignored), as a git
    tree, so :func:`undo_test_writes` can tell what a later test run wrote.

    Built in a private index, so the worktree's own index and files are not touched.
    """
    await _check_gitfile(wt)
    with tempfile.TemporaryDirectory(prefix="autofix-index-") as tmp:
        index = Path(tmp) / "index"
        own = await _git(wt.path, "rev-parse", "--path-format=absolute", "--git-path", "index")
        own_index = Path(_text(own))
        if own_index.is_file():  # reuses its stat data: no rehash of unchanged files
            shutil.copyfile(own_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        await _git(wt.path, "add", "--all", "--", ".", env=env)
        return _text(await _git(wt.path, "write-tree", env=env))


def _remove_written(root: Path, path: str) -> None:
    """Delete a path a test run created, never following a link out of the worktree."""
    target = root / path
    parent = target.parent.resolve()
    if parent != root and root not in parent.parents:
        return
    if target.is_dir() and not target.is_symlink():  # a nested repository (gitlink)
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)


async def undo_test_writes(wt: Worktree, before: str) -> TestWrites:
    """Put the worktree back to the tree ``before`` and say what the test run had written.

    New files go; modified and deleted ones come back. A restored ``.gitignore`` can make
    a file that was hidden visible again, so this repeats until nothing differs.
    """
    created: list[str] = []
    changed: list[str] = []
    root = wt.path.resolve()
    for _ in range(_UNDO_ROUNDS):
        now = await snapshot_files(wt)
        if now == before:
            return TestWrites(tuple(created), tuple(changed))
        out = await _git(
            wt.path, "diff-tree", "-r", "-z", "--no-renames", "--name-status", before, now
        )
        fields = [f.decode("utf-8", "surrogateescape") for f in out.stdout.split(b"\0") if f]
        restore: list[str] = []
        for status, path in zip(fields[::2], fields[1::2], strict=True):
            if status == "A":
                _remove_written(root, path)
                if path not in created:
                    created.append(path)
            else:
                restore.append(path)
                if path not in changed:
                    changed.append(path)
        if restore:
            await _git(
                wt.path,
                "restore",
                f"--source={before}",
                "--worktree",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                stdin=b"".join(os.fsencode(p) + b"\0" for p in restore),
                env={"GIT_LITERAL_PATHSPECS": "1"},
            )
    raise GitError(
        ["git", "restore", f"--source={before}"],
        1,
        f"the worktree {wt.path} still differs from the tree before the test run",
    )


def _parse_numstat(raw: bytes) -> list[FileStat]:
    stats: list[FileStat] = []
    fields = raw.split(b"\0")
    i = 0
    while i < len(fields):
        head = fields[i].decode("utf-8", "replace")
        i += 1
        if not head:
            continue
        added, removed, path = head.split("\t", 2)
        old_path: str | None = None
        if path == "" and i + 1 < len(fields):  # rename: paths follow as two fields
            old_path = fields[i].decode("utf-8", "replace")
            path = fields[i + 1].decode("utf-8", "replace")
            i += 2
        binary = added == "-" and removed == "-"
        stats.append(
            FileStat(
                path=path,
                added=0 if binary else int(added),
                removed=0 if binary else int(removed),
                binary=binary,
                old_path=old_path,
            )
        )
    return stats


def touched_sensitive(stat: Iterable[FileStat], patterns: Iterable[str]) -> list[str]:
    """Changed paths matching any sensitive glob, so such fixes always need a person.

    Patterns follow .gitignore conventions: one without a slash (``.env*``,
    ``package-lock.json``) matches a file name at any depth; one with a slash is anchored
    at the repository root; ``**`` spans directories.
    """
    compiled = [_glob_regex(p) for p in patterns if p and p.strip()]
    hits: list[str] = []
    for entry in stat:
        for path in (entry.path, entry.old_path):
            if path and path not in hits and any(rx.fullmatch(path) for rx in compiled):
                hits.append(path)
    return hits


def _glob_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip()
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    out: list[str] = [] if anchored else ["(?:.*/)?"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    # A directory pattern such as "migrations" also covers everything inside it.
    return re.compile("".join(out) + "(?:/.*)?")


async def _author_env(wt: Worktree) -> dict[str, str]:
    env: dict[str, str] = {}
    name = await _git(wt.path, "config", "--get", "user.name", check=False)
    email = await _git(wt.path, "config", "--get", "user.email", check=False)
    if name.returncode != 0 or not _text(name):
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = FALLBACK_AUTHOR_NAME
    if email.returncode != 0 or not _text(email):
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
    await _check_gitfile(wt)
    await _git(wt.path, "add", "--all", "--", ".")
    staged = await _git(wt.path, "diff", "--cached", "--quiet", check=False)
    if staged.returncode == 0:
        head = await _rev(wt.path, "HEAD")
        if head and head != wt.base_sha:
            return head
        raise NothingToCommitError(
            ["git", "commit"], 1, f"no changes in {wt.path} relative to {wt.base_sha[:12]}"
        )
    await _git(
        wt.path,
        "commit",
        "--quiet",
        "--cleanup=whitespace",
        "--file=-",
        stdin=message.encode("utf-8"),
        env=await _author_env(wt),
    )
    head = await _rev(wt.path, "HEAD")
    assert head is not None
    return head


async def push(wt: Worktree, remote: str, branch: str, *, force: bool = False) -> None:
    """Publish the attempt branch; git's own reason is kept when the remote refuses.

    ``force`` replaces a branch left on the remote by an earlier attempt, but only if
    the remote still holds what we last saw there (``--force-with-lease``).
    """
    await _check_gitfile(wt)
    await _check_remote(wt.path, remote)
    await _check_ref_name(wt.path, "branch", branch)
    args = ["push", "--quiet"]
    if force:
        args.append(f"--force-with-lease=refs/heads/{branch}")
    args += ["--", remote, f"refs/heads/{branch}:refs/heads/{branch}"]
    await _git(wt.path, *args, timeout=_NETWORK_TIMEOUT_S, error=PushError)


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
    if _is_unreachable(stderr):
        return "remote unreachable"
    if "no answer after" in lowered:
        return "timed out"
    return "git reported an error"


async def open_worktree(
    repo: Path, path: Path, branch: str, *, base_branch: str, remote: str
) -> Worktree:
    """Rebuild the handle of an attempt's worktree from what the store kept (after a restart).

    The base is the merge base with the remote base branch, which is where the attempt's
    branch started unless the branch was rebased by hand.
    """
    top = await _toplevel(repo)
    wt_path = Path(path)
    if not wt_path.is_dir():
        raise GitError(["worktree", str(wt_path)], 1, f"worktree {wt_path} no longer exists")
    await _check_gitfile(Worktree(wt_path, branch, "", top))
    base = await _git(
        wt_path, "merge-base", "HEAD", f"refs/remotes/{remote}/{base_branch}", check=False
    )
    if base.returncode != 0:
        base = await _git(wt_path, "merge-base", "HEAD", f"refs/heads/{base_branch}")
    return Worktree(
        path=wt_path,
        branch=branch,
        base_sha=_text(base),
        repo=top,
        base_ref=f"{remote}/{base_branch}",
    )


async def remote_url(repo: Path, remote: str) -> str | None:
    """The fetch URL of a remote, to find the GitHub repository a PR goes to."""
    out = await _git(Path(repo), "remote", "get-url", remote, check=False)
    return (_text(out) or None) if out.returncode == 0 else None


async def check_repo(repo: Path, *, base_branch: str, remote: str) -> str:
    """What ``autofix check`` verifies for a service: a repo, its remote, its base branch.

    Returns the remote's URL; raises GitError naming what is missing.
    """
    top = await _toplevel(repo)
    await _check_remote(top, remote)
    url = await remote_url(top, remote)
    for ref in (f"refs/remotes/{remote}/{base_branch}", f"refs/heads/{base_branch}"):
        found = await _git(top, "rev-parse", "--verify", "--quiet", ref, check=False)
        if found.returncode == 0:
            return url or remote
    raise GitError(
        ["git", "rev-parse", "--verify", base_branch],
        1,
        f"branch {base_branch!r} exists neither locally nor as {remote}/{base_branch} in {top}",
    )
