"""Git worktrees for fix attempts: isolated from the developer's own checkout.

A fix attempt never runs in the main checkout. Each attempt gets a linked worktree under
``<repo>/.worktrees/hotfix/auto-<fingerprint>`` on branch ``hotfix/auto-<fingerprint>``,
started from the freshly fetched remote base branch. The engine snapshots the main checkout
before an attempt and verifies afterwards that HEAD, branch, working tree and the git
directory's config, hooks and attributes are unchanged. Git itself is run through
:mod:`console.fix.git`; committing and pushing live in :mod:`console.fix.publish`.

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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from console.fix.diffstat import FileStat, parse_numstat
from console.fix.git import (
    NETWORK_TIMEOUT_S,
    GitError,
    check_ref_name,
    check_remote,
    is_unreachable,
    resolve_commit,
    run_git,
    same_path,
    stdout_text,
    together,
    toplevel,
)

WORKTREES_DIR = ".worktrees"
BRANCH_PREFIX = "hotfix/auto-"
READY_DIR = "ready"  # the spare checkout of the base, inside WORKTREES_DIR
_RACY_SECONDS = 1.1  # past the timestamp granularity git compares files to its index with

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
# Files of the shared git directory whose change means something could run or be hidden
# on the developer's next git command; hooks/ is covered recursively.
_GIT_DIR_FILES = ("config", "config.worktree", "info/attributes")


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
class DiffResult:
    """The whole change an attempt made, relative to the worktree's base commit."""

    text: str
    stat: list[FileStat] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Main checkout snapshot


def _status_items(raw: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    """``git status --porcelain=v1 -z`` entries, each with the source path of a rename or copy."""
    fields = raw.split(b"\0")
    i = 0
    while i < len(fields):
        item = fields[i]
        i += 1
        if not item:
            continue
        source = None
        if (b"R" in item[:2] or b"C" in item[:2]) and i < len(fields):
            source = fields[i]
            i += 1
        yield item, source


def _parse_status(raw: bytes) -> tuple[str, ...]:
    entries: list[str] = []
    for item, source in _status_items(raw):
        text = item.decode("utf-8", "replace")
        if source is not None:
            text = f"{text} <- {source.decode('utf-8', 'replace')}"
        entries.append(text)
    return tuple(e for e in entries if not _inside_worktrees_dir(e[3:]))


def _untracked(raw: bytes) -> list[bytes]:
    """The untracked paths of a status (what ``ls-files --others --exclude-standard`` lists)."""
    paths = [item[3:] for item, _ in _status_items(raw) if item.startswith(b"?? ")]
    return [p for p in paths if not _inside_worktrees_dir(os.fsdecode(p))]


def _inside_worktrees_dir(path: str) -> bool:
    return path == WORKTREES_DIR or path.startswith(WORKTREES_DIR + "/")


async def snapshot_main(repo: Path) -> MainSnapshot:
    """Record the main checkout so :func:`verify_main_untouched` can prove an attempt
    left it alone (the attempt runs elsewhere, but a bug or a tool could still reach it).

    The reads are independent and run at once: on a large checkout they are most of the
    time between an approval and Claude's start.
    """
    top = await toplevel(repo)
    diff_flags = ("--binary", "--no-ext-diff", "--no-textconv", "--no-color")
    outs, git_files = await together(
        asyncio.gather(
            run_git(top, "rev-parse", "--verify", "-q", "HEAD", check=False),
            run_git(top, "symbolic-ref", "-q", "--short", "HEAD", check=False),
            run_git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all"),
            run_git(top, "diff", *diff_flags),
            run_git(top, "diff", "--cached", *diff_flags),
        ),
        _git_dir_files(top),
    )
    head_out, branch_out, status_out, unstaged, staged = outs
    head = stdout_text(head_out) if head_out.returncode == 0 else None
    branch = stdout_text(branch_out) if branch_out.returncode == 0 else None
    status = _parse_status(status_out.stdout)

    digest = hashlib.sha256()
    digest.update(b"unstaged\0" + unstaged.stdout + b"\0staged\0" + staged.stdout)
    digest.update(b"\0untracked\0")
    for path in sorted(_untracked(status_out.stdout)):
        digest.update(path + b"\0" + _file_digest(top / os.fsdecode(path)) + b"\0")
    return MainSnapshot(head, branch, status, digest.hexdigest(), git_files)


async def _git_dir_files(top: Path) -> tuple[tuple[str, str], ...]:
    """Digest of each file in the shared git directory that decides what git runs."""
    out = await run_git(top, "rev-parse", "--git-common-dir")
    common = Path(stdout_text(out))
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


async def _ensure_excluded(top: Path) -> None:
    out = await run_git(top, "rev-parse", "--git-path", "info/exclude")
    exclude = Path(stdout_text(out))
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


async def _worktree_branches(top: Path) -> dict[Path, str | None]:
    """Registered worktrees mapped to the branch each has checked out."""
    out = await run_git(top, "worktree", "list", "--porcelain")
    result: dict[Path, str | None] = {}
    current: Path | None = None
    for line in stdout_text(out).splitlines():
        if line.startswith("worktree "):
            current = Path(line[len("worktree ") :])
            result[current] = None
        elif line.startswith("branch ") and current is not None:
            result[current] = line[len("branch ") :].removeprefix("refs/heads/")
    return result


async def _fetch_base(top: Path, remote: str, base_branch: str) -> tuple[str, str, str | None]:
    """Fetch the base and return (sha, ref used, warning)."""
    tracking = f"refs/remotes/{remote}/{base_branch}"
    refspec = f"+refs/heads/{base_branch}:{tracking}"
    fetch = await run_git(
        top, "fetch", "--no-tags", "--", remote, refspec, check=False, timeout=NETWORK_TIMEOUT_S
    )
    if fetch.returncode == 0:
        sha = await resolve_commit(top, tracking)
        if sha is None:
            raise GitError(["git", "rev-parse", tracking], 128, "fetched base is missing")
        return sha, f"{remote}/{base_branch}", None
    command = ["git", "fetch", "--no-tags", "--", remote, refspec]
    if not is_unreachable(fetch.stderr):
        raise GitError(command, fetch.returncode, fetch.stderr)
    for ref, label in ((tracking, f"{remote}/{base_branch}"), (f"refs/heads/{base_branch}", None)):
        sha = await resolve_commit(top, ref)
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


async def create_worktree(
    repo: Path,
    fingerprint: str,
    *,
    base_branch: str,
    remote: str,
    reuse: bool = False,
    use_ready: bool = False,
) -> Worktree:
    """Give a fix attempt its own checkout of the freshly fetched base branch.

    The main checkout is never switched or modified; only refs, the worktree list and
    ``info/exclude`` of the shared repository change. ``reuse=True`` continues an
    existing worktree of the same fingerprint instead of starting over. ``use_ready=True``
    turns the spare checkout :func:`prepare_ready` keeps into the attempt's worktree when
    it is an exact, clean checkout (a rename and a branch instead of writing every file);
    otherwise the worktree is checked out as usual. Callers serialise calls per repository.
    """
    branch = branch_for(fingerprint)
    top = await toplevel(repo)
    await together(check_ref_name(top, "base branch", base_branch), check_remote(top, remote))
    path = top / WORKTREES_DIR / branch
    ready = _ready_path(top)
    # Independent reads at once: the worktree list, the fetch, the state of the spare.
    (registered, spare), (base_sha, base_ref, warning) = await together(
        together(_registered_worktrees(top), _ready_commit(top, ready) if use_ready else _none()),
        _fetch_base(top, remote, base_branch),
    )
    for wt_path, wt_branch in registered.items():
        if wt_branch == branch and not same_path(wt_path, path):
            raise GitError(
                ["git", "worktree", "add", str(path)],
                128,
                f"branch {branch} is checked out at {wt_path}; refusing to take it over",
            )
    at_path = next((p for p in registered if same_path(p, path)), None)

    if reuse and at_path is not None and registered[at_path] == branch:
        merge_base = await run_git(top, "merge-base", branch, base_sha, check=False)
        start = stdout_text(merge_base) if merge_base.returncode == 0 else base_sha
        note = "continuing the worktree of an earlier attempt"
        return Worktree(
            path, branch, start, top, base_ref, f"{warning}; {note}" if warning else note
        )

    leftover = path.exists() or path.is_symlink()
    if at_path is not None:
        await run_git(top, "worktree", "remove", "--force", "--force", str(at_path))
    if path.exists() or path.is_symlink():
        _remove_tree(top, path)
    if at_path is not None or leftover:
        await run_git(top, "worktree", "prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    if spare is not None and not any(same_path(p, ready) for p in registered):
        spare = None
    if not (spare and await _adopt_ready(top, ready, spare, path, branch, base_sha)):
        await run_git(top, "worktree", "add", "--no-track", "-B", branch, str(path), base_sha)
    return Worktree(path, branch, base_sha, top, base_ref, warning)


async def checkout_base(
    repo: Path, branch: str, name: str, *, base_branch: str, remote: str
) -> Worktree:
    """A new worktree at ``.worktrees/<name>`` on ``branch``, made from the freshly
    fetched base (a revert of a merged fix starts there, not from an attempt's branch)."""
    top = await toplevel(repo)
    await together(check_ref_name(top, "branch", branch), check_remote(top, remote))
    path = top / WORKTREES_DIR / name
    registered, (base_sha, base_ref, warning) = await together(
        _registered_worktrees(top), _fetch_base(top, remote, base_branch)
    )
    at_path = next((p for p in registered if same_path(p, path)), None)
    if at_path is not None:
        await run_git(top, "worktree", "remove", "--force", "--force", str(at_path))
    if path.exists() or path.is_symlink():
        _remove_tree(top, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    await run_git(top, "worktree", "add", "--no-track", "-B", branch, str(path), base_sha)
    return Worktree(path, branch, base_sha, top, base_ref, warning)


async def _none() -> None:
    return None


async def _registered_worktrees(top: Path) -> dict[Path, str | None]:
    await _ensure_excluded(top)
    await run_git(top, "worktree", "prune")
    return await _worktree_branches(top)


# ---------------------------------------------------------------------------------------
# The spare checkout


def _ready_path(top: Path) -> Path:
    return top / WORKTREES_DIR / READY_DIR


async def _ready_commit(top: Path, ready: Path) -> str | None:
    """The commit the spare checkout holds, or None unless it is a registered, untampered,
    detached checkout with nothing changed, added or ignored in it."""
    try:
        await check_gitfile(Worktree(ready, "", "", top))
    except GitError:
        return None
    head, status = await together(
        run_git(ready, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD", check=False),
        run_git(ready, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored"),
    )
    sha, _, name = stdout_text(head).partition("\n")
    if head.returncode != 0 or name != "HEAD" or status.stdout:  # on a branch, or not exact
        return None
    return sha


async def _adopt_ready(
    top: Path, ready: Path, at: str, path: Path, branch: str, base_sha: str
) -> bool:
    """Make the spare checkout (a clean one at ``at``) the attempt's worktree at
    ``base_sha``; False (and the spare gone) when it cannot be, so the caller checks the
    worktree out as usual."""
    if at != base_sha:  # the base moved since the spare was made: only the files that differ
        moved = await run_git(ready, "checkout", "--quiet", "--detach", base_sha, check=False)
        if moved.returncode != 0:
            await discard_ready(top)
            return False
    # The branch first, as `checkout -B` would make it at the same commit but without
    # re-reading every file: the ref is shared and HEAD belongs to the worktree's own entry,
    # which the move keeps.
    ref = f"refs/heads/{branch}"
    await together(
        run_git(top, "update-ref", "-m", "autofix: attempt", ref, base_sha),
        run_git(ready, "symbolic-ref", "HEAD", ref),
    )
    renamed = await run_git(top, "worktree", "move", str(ready), str(path), check=False)
    if renamed.returncode != 0:  # e.g. git will not move a checkout holding submodules
        await discard_ready(top)
        return False
    return True


async def prepare_ready(repo: Path, *, base_branch: str, remote: str) -> None:
    """Fetch the base and keep a spare checkout of it at ``.worktrees/ready``, so the next
    attempt starts with a rename instead of a checkout (see ``use_ready``)."""
    top = await toplevel(repo)
    await check_ref_name(top, "base branch", base_branch)
    await check_remote(top, remote)
    await _ensure_excluded(top)
    base_sha, _, _ = await _fetch_base(top, remote, base_branch)
    ready = _ready_path(top)
    at = await _ready_commit(top, ready)
    if at == base_sha:
        return
    if at is not None:
        moved = await run_git(ready, "checkout", "--quiet", "--detach", base_sha, check=False)
        if moved.returncode == 0:
            await _refresh_index(ready)
            return
    await discard_ready(top)
    ready.parent.mkdir(parents=True, exist_ok=True)
    try:
        await run_git(top, "worktree", "add", "--detach", str(ready), base_sha)
        await _refresh_index(ready)
    except BaseException:  # a checkout cut short (the console stopping) is not left behind
        with contextlib.suppress(GitError, OSError, ValueError):
            await discard_ready(top)
        raise


async def _refresh_index(path: Path) -> None:
    """Rewrite the index once its files are older than it: a checkout leaves them as new as
    the index, and git re-reads every such file on each status until the index is rewritten."""
    await asyncio.sleep(_RACY_SECONDS)
    await run_git(path, "update-index", "-q", "--refresh", check=False)


async def discard_ready(repo: Path) -> None:
    """Remove the spare checkout, if there is one (the console is stopping, or it is stale)."""
    top = await toplevel(repo)
    ready = _ready_path(top)
    registered = await _worktree_branches(top)
    if ready.exists() or ready.is_symlink() or any(same_path(p, ready) for p in registered):
        await remove_worktree(top, Worktree(ready, "", "", top), delete_branch=False)


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
    ``Worktree`` value cannot make this delete the main checkout. A worktree git will not
    remove (its ``.git`` file was rewritten) is deleted as a directory and pruned.
    """
    top = await toplevel(repo)
    root = (top / WORKTREES_DIR).resolve()
    target = Path(wt.path).parent.resolve() / Path(wt.path).name
    if root not in target.parents:
        raise ValueError(f"refusing to remove {wt.path}: it is not inside {root}")
    registered = await _worktree_branches(top)
    if any(same_path(p, target) for p in registered):
        await run_git(top, "worktree", "remove", "--force", "--force", str(target), check=False)
    if target.exists() or target.is_symlink():
        _remove_tree(top, target)
    await run_git(top, "worktree", "prune")
    if delete_branch:
        if not wt.branch.startswith(BRANCH_PREFIX):
            raise ValueError(f"refusing to delete branch {wt.branch!r}: not an attempt branch")
        if await resolve_commit(top, f"refs/heads/{wt.branch}") is not None:
            await run_git(top, "branch", "-D", "--", wt.branch)


# ---------------------------------------------------------------------------------------
# Inspecting and publishing the change


async def check_gitfile(wt: Worktree) -> None:
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
        common = Path(stdout_text(await run_git(wt.repo, "rev-parse", "--git-common-dir")))
        common = common if common.is_absolute() else wt.repo / common
        try:
            back = (entry / "gitdir").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            back = ""
        if (
            not pointer.startswith("gitdir: ")
            or not same_path(entry.parent, common / "worktrees")
            or not back
            or not same_path(Path(back), gitfile)
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
    await run_git(wt.path, "add", "--intent-to-add", "--all", "--", ".")


async def diff(wt: Worktree) -> DiffResult:
    """The attempt's full change against its base: edits, new files, deletions, commits."""
    await check_gitfile(wt)
    await _mark_new_files(wt)
    flags = ("--no-color", "--no-ext-diff", "--find-renames")
    text = await run_git(wt.path, "diff", *flags, wt.base_sha, "--")
    numstat = await run_git(wt.path, "diff", *flags, "--numstat", "-z", wt.base_sha, "--")
    stat = parse_numstat(numstat.stdout)
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
    await check_gitfile(wt)
    with tempfile.TemporaryDirectory(prefix="autofix-index-") as tmp:
        index = Path(tmp) / "index"
        own = await run_git(wt.path, "rev-parse", "--path-format=absolute", "--git-path", "index")
        own_index = Path(stdout_text(own))
        if own_index.is_file():  # reuses its stat data: no rehash of unchanged files
            shutil.copyfile(own_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        await run_git(wt.path, "add", "--all", "--", ".", env=env)
        return stdout_text(await run_git(wt.path, "write-tree", env=env))


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
        out = await run_git(
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
            await run_git(
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


async def open_worktree(
    repo: Path, path: Path, branch: str, *, base_branch: str, remote: str
) -> Worktree:
    """Rebuild the handle of an attempt's worktree from what the store kept (after a restart).

    The base is the merge base with the remote base branch, which is where the attempt's
    branch started unless the branch was rebased by hand.
    """
    top = await toplevel(repo)
    wt_path = Path(path)
    if not wt_path.is_dir():
        raise GitError(["worktree", str(wt_path)], 1, f"worktree {wt_path} no longer exists")
    await check_gitfile(Worktree(wt_path, branch, "", top))
    base = await run_git(
        wt_path, "merge-base", "HEAD", f"refs/remotes/{remote}/{base_branch}", check=False
    )
    if base.returncode != 0:
        base = await run_git(wt_path, "merge-base", "HEAD", f"refs/heads/{base_branch}")
    return Worktree(
        path=wt_path,
        branch=branch,
        base_sha=stdout_text(base),
        repo=top,
        base_ref=f"{remote}/{base_branch}",
    )


async def remote_url(repo: Path, remote: str) -> str | None:
    """The fetch URL of a remote, to find the GitHub repository a PR goes to."""
    out = await run_git(Path(repo), "remote", "get-url", remote, check=False)
    return (stdout_text(out) or None) if out.returncode == 0 else None


async def check_repo(repo: Path, *, base_branch: str, remote: str) -> str:
    """What ``autofix check`` verifies for a service: a repo, its remote, its base branch.

    Returns the remote's URL; raises GitError naming what is missing.
    """
    top = await toplevel(repo)
    await check_remote(top, remote)
    url = await remote_url(top, remote)
    for ref in (f"refs/remotes/{remote}/{base_branch}", f"refs/heads/{base_branch}"):
        found = await run_git(top, "rev-parse", "--verify", "--quiet", ref, check=False)
        if found.returncode == 0:
            return url or remote
    raise GitError(
        ["git", "rev-parse", "--verify", base_branch],
        1,
        f"branch {base_branch!r} exists neither locally nor as {remote}/{base_branch} in {top}",
    )
