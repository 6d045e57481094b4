"""A real git repository of the sample Node.js service, with a bare ``origin`` beside it.

Shared by the engine and system tests: the service has a real bug (an unknown user id
throws a TypeError in ``lib/users.js``) and real ``node --test`` tests.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import SERVICE_DIR

SERVICE = SERVICE_DIR
BUGGY_LINE = "  const user = findUser(id);\n  return { id: user.id"
FIXED_LINE = "  const user = findUser(id);\n  if (!user) return null;\n  return { id: user.id"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


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
