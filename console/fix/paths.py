"""Which changed paths are sensitive: the glob matcher behind ``sensitive_paths``.

Kept apart from the git plumbing so the views and the Telegram bot can flag a diff
without importing anything that runs git.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from console.fix.diffstat import FileStat

# Directories that hold a service's tests, by the conventions of its test runners.
TEST_DIRS = ("test", "tests", "__tests__", "spec")
# File names test runners pick up outside those directories: ``users.test.ts``,
# ``users.spec.js``, ``test_users.py``, ``users_test.go``.
_TEST_NAME = re.compile(r"(?:.+[._-](?:test|spec)s?\.[^/]+|test_[^/]+\.py)")


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


def is_test_path(path: str) -> bool:
    """Whether a repository path is a test: under a test directory at any depth, or named
    as test runners name test files."""
    parts = path.split("/")
    return any(part in TEST_DIRS for part in parts[:-1]) or bool(_TEST_NAME.fullmatch(parts[-1]))


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
