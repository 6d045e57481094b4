"""The spare checkout an attempt starts from, against real git: a bare remote and a clone."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from console.fix.ready import ReadyWorktrees
from console.fix.worktree import (
    create_worktree,
    discard_ready,
    prepare_ready,
    snapshot_main,
    verify_main_untouched,
)
from tests.service_repo import git

FP = "0123456789abcdef"

pytestmark = pytest.mark.usefixtures("isolated_git_config")


def spare(clone: Path) -> Path:
    return clone / ".worktrees" / "ready"


def registered(clone: Path) -> list[str]:
    lines = git(clone, "worktree", "list", "--porcelain").splitlines()
    return sorted(line.removeprefix("worktree ") for line in lines if line.startswith("worktree "))


def push_from_a_colleague(tmp_path: Path, remote: Path, name: str) -> str:
    other = tmp_path / f"colleague-{name}"
    if not other.exists():
        git(tmp_path, "clone", "-q", str(remote), str(other))
    git(other, "pull", "-q", "origin", "main")
    (other / name).write_text("pushed by a colleague\n")
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", name)
    git(other, "push", "-q", "origin", "main")
    return git(other, "rev-parse", "HEAD")


async def test_an_attempt_takes_the_spare_at_the_fresh_base_on_its_own_branch(
    clone: Path, remote: Path
) -> None:
    await prepare_ready(clone, base_branch="main", remote="origin")
    inode = os.stat(spare(clone)).st_ino
    before = await snapshot_main(clone)

    wt = await create_worktree(clone, FP, base_branch="main", remote="origin", use_ready=True)

    assert os.stat(wt.path).st_ino == inode, "the spare was renamed, not checked out again"
    assert not spare(clone).exists()
    assert wt.base_sha == git(remote, "rev-parse", "main") == git(wt.path, "rev-parse", "HEAD")
    assert git(wt.path, "symbolic-ref", "--short", "HEAD") == f"hotfix/auto-{FP}"
    assert git(wt.path, "status", "--porcelain", "--ignored") == ""
    assert (wt.path / "src" / "app.js").read_text() == "module.exports = 1;\n"
    assert registered(clone) == sorted([str(clone), str(wt.path)])
    assert await verify_main_untouched(clone, before) == []


async def test_a_base_pushed_after_the_spare_was_made_is_where_the_attempt_starts(
    tmp_path: Path, clone: Path, remote: Path
) -> None:
    await prepare_ready(clone, base_branch="main", remote="origin")
    inode = os.stat(spare(clone)).st_ino
    head = push_from_a_colleague(tmp_path, remote, "upstream.txt")

    wt = await create_worktree(clone, FP, base_branch="main", remote="origin", use_ready=True)

    assert os.stat(wt.path).st_ino == inode
    assert wt.base_sha == head == git(wt.path, "rev-parse", "HEAD")
    assert (wt.path / "upstream.txt").exists()
    assert git(wt.path, "status", "--porcelain", "--ignored") == ""


async def test_refreshing_the_spare_follows_the_base_and_keeps_one_spare(
    tmp_path: Path, clone: Path, remote: Path
) -> None:
    await prepare_ready(clone, base_branch="main", remote="origin")
    head = push_from_a_colleague(tmp_path, remote, "later.txt")

    await prepare_ready(clone, base_branch="main", remote="origin")

    assert git(spare(clone), "rev-parse", "HEAD") == head
    assert (spare(clone) / "later.txt").exists()
    assert registered(clone) == sorted([str(clone), str(spare(clone))])
    assert git(clone, "status", "--porcelain") == "", "the main checkout does not see it"


def add_a_file(ready: Path) -> None:
    (ready / "stray.js").write_text("left by someone\n")


def edit_a_file(ready: Path) -> None:
    (ready / "src" / "app.js").write_text("edited by someone\n")


def add_an_ignored_file(ready: Path) -> None:
    (ready / "node_modules").mkdir()
    (ready / "node_modules" / "x.js").write_text("ignored but there\n")


def switch_to_a_branch(ready: Path) -> None:
    git(ready, "switch", "-q", "-c", "someones-branch")


def point_the_git_file_elsewhere(ready: Path) -> None:
    (ready / ".git").write_text(f"gitdir: {ready.parent}\n")


@pytest.mark.parametrize(
    "touch",
    [
        add_a_file,
        edit_a_file,
        add_an_ignored_file,
        switch_to_a_branch,
        point_the_git_file_elsewhere,
    ],
)
async def test_a_spare_that_is_not_an_exact_checkout_is_never_used_and_is_replaced(
    clone: Path, touch
) -> None:
    await prepare_ready(clone, base_branch="main", remote="origin")
    inode = os.stat(spare(clone)).st_ino
    touch(spare(clone))

    wt = await create_worktree(clone, FP, base_branch="main", remote="origin", use_ready=True)

    assert os.stat(wt.path).st_ino != inode
    assert git(wt.path, "status", "--porcelain", "--ignored") == ""
    assert (wt.path / "src" / "app.js").read_text() == "module.exports = 1;\n"
    assert git(wt.path, "symbolic-ref", "--short", "HEAD") == f"hotfix/auto-{FP}"

    await prepare_ready(clone, base_branch="main", remote="origin")
    assert git(spare(clone), "status", "--porcelain", "--ignored") == ""
    assert git(spare(clone), "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"
    assert registered(clone) == sorted([str(clone), str(wt.path), str(spare(clone))])


async def test_without_use_ready_the_spare_is_left_alone(clone: Path) -> None:
    await prepare_ready(clone, base_branch="main", remote="origin")
    inode = os.stat(spare(clone)).st_ino

    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")

    assert os.stat(wt.path).st_ino != inode
    assert os.stat(spare(clone)).st_ino == inode


async def test_discarding_the_spare_removes_it_and_its_registration(clone: Path) -> None:
    await discard_ready(clone)  # none yet: nothing to do
    await prepare_ready(clone, base_branch="main", remote="origin")

    await discard_ready(clone)

    assert not spare(clone).exists()
    assert registered(clone) == [str(clone)]


async def test_the_pool_hands_out_the_spare_and_leaves_nothing_behind_when_closed(
    clone: Path,
) -> None:
    pool = ReadyWorktrees(enabled=True)
    pool.refill(clone, base_branch="main", remote="origin")
    await pool.settled()
    inode = os.stat(spare(clone)).st_ino

    wt = await pool.create(clone, FP, base_branch="main", remote="origin")
    pool.refill(clone, base_branch="main", remote="origin")
    await pool.settled()

    assert os.stat(wt.path).st_ino == inode
    assert spare(clone).is_dir() and os.stat(spare(clone)).st_ino != inode
    await pool.close()
    assert not spare(clone).exists()
    assert registered(clone) == sorted([str(clone), str(wt.path)])
    pool.refill(clone, base_branch="main", remote="origin")
    await pool.settled()
    assert not spare(clone).exists(), "a closed pool prepares no spare"


async def test_closing_while_the_spare_is_being_written_leaves_no_worktree(
    clone: Path,
) -> None:
    pool = ReadyWorktrees(enabled=True)
    pool.refill(clone, base_branch="main", remote="origin")
    await asyncio.sleep(0)  # the refill has started

    await pool.close()

    assert not spare(clone).exists()
    assert registered(clone) == [str(clone)]


async def test_a_disabled_pool_checks_out_every_attempt_and_keeps_no_spare(clone: Path) -> None:
    pool = ReadyWorktrees(enabled=False)
    pool.refill(clone, base_branch="main", remote="origin")
    await pool.settled()

    wt = await pool.create(clone, FP, base_branch="main", remote="origin")

    assert not spare(clone).exists()
    assert git(wt.path, "symbolic-ref", "--short", "HEAD") == f"hotfix/auto-{FP}"
    await pool.close()
    assert registered(clone) == sorted([str(clone), str(wt.path)])


async def test_a_repository_that_cannot_have_a_spare_is_named_and_attempts_still_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ReadyWorktrees(enabled=True)
    pool.refill(tmp_path / "missing", base_branch="main", remote="origin")
    await pool.settled()
    assert "no spare worktree for" in caplog.text and "missing" in caplog.text
    await pool.close()
