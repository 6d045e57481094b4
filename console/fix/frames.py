"""Where a stack line points in the repository: the frame's file and line, mapped onto the
worktree, and through a source map back to the original source when the file is built.

The prompt's source excerpts and any check of which files the stack names use these
positions, so a service that runs compiled TypeScript is read at its ``src/*.ts`` lines.
A frame that ``node --enable-source-maps`` already mapped names the ``.ts`` file itself and
is used as it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from console.fix.sourcemaps import SourceMaps

STACK_LINES = 60

_FRAME = re.compile(
    r"(?:\(|\bat\s+|@)(?:file://)?(?P<path>[^\s()]+?):(?P<line>\d+)(?::(?P<column>\d+))?\)?\s*$"
)
_NOT_APP = ("node_modules/", "node:", "internal/", "<anonymous>", "native")


@dataclass(frozen=True)
class FramePosition:
    """A stack frame located in the repository.

    ``path`` and ``line`` are what to read (the original source when a map gave it);
    ``generated`` is the built file's ``path:line:column`` the stack named, when mapped.
    """

    path: str
    line: int
    column: int | None = None
    generated: str | None = None


def parse_frame(line: str) -> tuple[str, int] | None:
    """The file path and line number of an in-app stack line, or None for library frames."""
    position = frame_position(line)
    return None if position is None else (position[0], position[1])


def frame_position(line: str) -> tuple[str, int, int | None] | None:
    """Path, line and (when printed) column of an in-app stack line, or None."""
    match = _FRAME.search(line.strip())
    if match is None:
        return None
    path = match.group("path")
    if any(marker in path for marker in _NOT_APP) or "/" not in path:
        return None
    column = match.group("column")
    return path, int(match.group("line")), int(column) if column else None


def map_to_repo(path: str, repo: Path, app_root: str | None) -> Path | None:
    """The repository file a deployed path refers to, by the longest path suffix that exists.

    Deploy prefixes (``/srv/app/releases/<ts>/``, ``/app/``) differ per host, so the match
    is on the tail of the path. The result is always inside the repository after resolving
    symlinks; anything else is treated as not found rather than read.
    """
    parts = [p for p in PurePosixPath(path).parts if p != "/"]
    if not parts or any(p in ("..", ".", "") or "\\" in p for p in parts):
        return None
    root = repo.resolve()
    bases = [root]
    if app_root:
        app_base = (root / app_root).resolve()
        if app_base.is_relative_to(root):
            bases.insert(0, app_base)
    for size in range(len(parts), 0, -1):
        for base in bases:
            candidate = base.joinpath(*parts[-size:])
            try:
                resolved = candidate.resolve(strict=True)
            except (OSError, RuntimeError, ValueError):  # ValueError: a NUL in the path
                continue
            if resolved.is_relative_to(root) and resolved.is_file():
                return resolved.relative_to(root)
    return None


def locate_frames(
    stack: Sequence[str], repo: Path, app_root: str | None, maps: SourceMaps | None = None
) -> list[FramePosition]:
    """The in-app frames of a stack that name repository files, top first, each through
    its file's source map when it has one. One ``SourceMaps`` can be shared between calls
    on the same checkout so each map is read once."""
    maps = maps or SourceMaps(repo, lambda p: map_to_repo(p, repo, None))
    found: list[FramePosition] = []
    for raw in stack[:STACK_LINES]:
        position = frame_position(raw)
        if position is None:
            continue
        path, line, column = position
        located = map_to_repo(path, repo, app_root)
        if located is None:
            continue
        original = maps.original(located, line, column)
        if original is None:
            found.append(FramePosition(located.as_posix(), line, column))
        else:
            where = f"{located.as_posix()}:{line}" + (f":{column}" if column else "")
            found.append(
                FramePosition(original.path, original.line, original.column, generated=where)
            )
    return found


def stack_files(
    stack: Sequence[str],
    repo: Path,
    app_root: str | None,
    in_app: Sequence[bool | None] = (),
) -> list[str]:
    """The repository files the stack's in-app frames name (original sources where mapped),
    in order of first appearance: what "only files in the stack" checks compare against.

    ``in_app`` is the agent's flag per stack line (see ``ErrorRow.in_app``); when it covers
    the stack, only the lines it marks as app frames count.
    """
    if len(in_app) == len(stack) and stack:
        stack = [line for line, app in zip(stack, in_app, strict=True) if app]
    files: list[str] = []
    for frame in locate_frames(stack, repo, app_root):
        if frame.path not in files:
            files.append(frame.path)
    return files
