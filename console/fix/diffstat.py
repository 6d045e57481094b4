"""The per-file line counts of a change: read from git's numstat, kept as JSON.

The engine takes the stat from git once (:func:`parse_numstat`) and hands the list on as
is: the store keeps it as a JSON list (:func:`encode_stat` / :func:`decode_stat`), and the
diff view, the Telegram card, the PR body and ``autofix fix`` read the same structure.
Rows written before the stat was structured hold ``path +a -r`` lines; :func:`decode_stat`
still reads those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

# The text form console versions before the JSON one stored, one file a line.
_LEGACY_LINE = re.compile(r"(.*) \+(\d+) -(\d+)( \(binary\))?")


@dataclass(frozen=True)
class FileStat:
    """Per-file line counts of a diff; ``added``/``removed`` are 0 for binary files."""

    path: str
    added: int
    removed: int
    binary: bool = False
    old_path: str | None = None

    def line(self) -> str:
        """One line for a person: ``path +a -r``, a rename as ``old => new``."""
        name = f"{self.old_path} => {self.path}" if self.old_path else self.path
        return f"{name} (binary)" if self.binary else f"{name} +{self.added} -{self.removed}"


def encode_stat(stat: Iterable[FileStat]) -> str:
    """The store's form of a stat: a JSON list of objects, one a file, in diff order."""
    return json.dumps([asdict(s) for s in stat], ensure_ascii=False, separators=(",", ":"))


def decode_stat(stored: str | None) -> tuple[FileStat, ...]:
    """A stored stat back into file stats: the JSON list, or an older row's text lines.

    An entry that is not a file stat (a row edited by hand, a newer version's shape) is
    left out rather than breaking the view that reads it.
    """
    if not stored or not stored.strip():
        return ()
    try:
        items = json.loads(stored)
    except ValueError:
        return _decode_legacy(stored)
    if not isinstance(items, list):
        return _decode_legacy(stored)
    return tuple(s for s in map(_from_json, items) if s is not None)


def _from_json(item: Any) -> FileStat | None:
    if not isinstance(item, dict):
        return None
    path, old_path, binary = item.get("path"), item.get("old_path"), item.get("binary", False)
    added, removed = _count(item.get("added")), _count(item.get("removed"))
    if not isinstance(path, str) or not path or not isinstance(binary, bool):
        return None
    if added is None or removed is None or not isinstance(old_path, str | None):
        return None
    return FileStat(path, added, removed, binary, old_path or None)


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None


def _decode_legacy(stored: str) -> tuple[FileStat, ...]:
    stats = []
    for line in stored.split("\n"):  # the older console joined lines with \n only
        match = _LEGACY_LINE.fullmatch(line.rstrip())
        if match:
            path, added, removed, binary = match.groups()
            stats.append(FileStat(path, int(added), int(removed), binary=bool(binary)))
    return tuple(stats)


def parse_numstat(raw: bytes) -> list[FileStat]:
    """``git diff --numstat -z`` output as file stats; renames keep their old path."""
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
