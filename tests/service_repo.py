"""A real git repository of the sample Node.js service, with a bare ``origin`` beside it.

Shared by the engine and system tests: the service has a real bug (an unknown user id
throws a TypeError in ``lib/users.js``) and real ``node --test`` tests.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SERVICE_DIR, require_tool

SERVICE = SERVICE_DIR
BUGGY_LINE = "  const user = findUser(id);\n  return { id: user.id"
FIXED_LINE = "  const user = findUser(id);\n  if (!user) return null;\n  return { id: user.id"


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity; a failure fails the test with git's own words."""
    done = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def isolate_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own git config out of the tests (and git required)."""
    require_tool("git")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def make_service_repo(root: Path) -> tuple[Path, Path]:
    """Clone-like layout: ``root/pa`` (main checked out) pushed to ``root/origin.git``."""
    bare = root / "origin.git"
    repo = root / "pa"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    shutil.copytree(SERVICE, repo, ignore=shutil.ignore_patterns("node_modules", "*.log"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Dev")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "sample service")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    (repo / "NOTES.txt").write_text("the developer's uncommitted notes\n")
    return repo, bare
