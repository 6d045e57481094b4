"""The per-file line counts of a change, as git's numstat reports them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileStat:
    """Per-file line counts of a diff; ``added``/``removed`` are 0 for binary files."""

    path: str
    added: int
    removed: int
    binary: bool = False
    old_path: str | None = None


def parse_numstat(raw: bytes) -> list[FileStat]:
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
