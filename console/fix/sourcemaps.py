"""Source maps: from a frame in compiled JavaScript (``dist/*.js``) back to the original source.

Most Node services run compiled TypeScript or a bundle, so their stack frames point at
generated files whose lines mean little to a reader and nothing to a fix. The build that
made them (a service's ``setup_command`` or ``build_command``) leaves source maps beside
them, or inline as a ``data:`` URL, named by the file's last ``//# sourceMappingURL=``
comment. This module reads those maps (Source Map revision 3, index maps with
``sections`` too) and answers: which original file, line and column made this generated
position.

The mappings are decoded here, with the standard Base64 VLQ scheme, rather than by a PyPI
library: the parsers published there (``sourcemap``, ``python-sourcemaps``,
``libsourcemap``, ``jssourcemap``) have had no release since 2015-2018, and the decoder is
a few dozen lines of a frozen format.

Everything here reads files of a worktree whose content came from a build: a map that is
missing, too large, not JSON or malformed is "no map" (the frame is used as it is), and
no path outside the repository is ever read.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import posixpath
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_MAP_BYTES = 32_000_000
MAX_GENERATED_BYTES = 32_000_000

_B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}
# The last such comment in a file names its map (`//# ...` or the older `//@ ...`; CSS's
# `/*# ... */` form too, for completeness).
_MAP_COMMENT = re.compile(r"(?://|/\*)[#@]\s*sourceMappingURL=(?P<url>[^\s'\"*]+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*")


class SourceMapError(ValueError):
    """A source map that cannot be read: the message says what is wrong with it."""


@dataclass(frozen=True)
class Segment:
    """One decoded mapping: a generated column and, when it has one, where it came from.

    Columns and lines are 0-based, as in the format.
    """

    column: int
    source: int | None = None
    line: int = 0
    source_column: int = 0
    name: int | None = None


@dataclass(frozen=True)
class SourceMap:
    """A decoded map: per generated line, its segments sorted by column."""

    sources: tuple[str, ...]
    names: tuple[str, ...]
    lines: tuple[tuple[Segment, ...], ...]

    def lookup(self, line: int, column: int | None) -> Segment | None:
        """The segment covering a 1-based generated ``line`` and ``column``.

        V8 prints 1-based columns; without one (a frame that gave only a line) the first
        mapped segment of the line stands for it. A column left of the first segment
        takes that first one, so an indented statement still maps.
        """
        if not 1 <= line <= len(self.lines):
            return None
        mapped = [s for s in self.lines[line - 1] if s.source is not None]
        if not mapped:
            return None
        if column is None:
            return mapped[0]
        at = bisect.bisect_right([s.column for s in mapped], column - 1)
        return mapped[max(0, at - 1)]


@dataclass(frozen=True)
class OriginalPosition:
    """Where a generated position came from: a repository file, 1-based line and column."""

    path: str
    line: int
    column: int
    name: str | None = None


def decode_vlq(text: str) -> list[int]:
    """The signed integers of one Base64 VLQ field run (``"AAgBC"`` -> ``[0, 0, 16, 1]``)."""
    values: list[int] = []
    value = shift = 0
    for char in text:
        digit = _B64.get(char)
        if digit is None:
            raise SourceMapError(f"invalid base64 VLQ character {char!r}")
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            if shift > 60:
                raise SourceMapError("VLQ value too large")
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        value = shift = 0
    if shift:
        raise SourceMapError("VLQ value cut off")
    return values


def decode_mappings(mappings: str, sources: int, names: int) -> list[list[Segment]]:
    """The ``mappings`` string as segments per generated line.

    Every field but the generated column is relative to the previous segment of the whole
    map; the generated column restarts on each line. Indexes out of range are errors.
    """
    lines: list[list[Segment]] = []
    source = line = column = name = 0
    for text in mappings.split(";"):
        segments: list[Segment] = []
        generated = 0
        for field in text.split(","):
            if not field:
                continue
            values = decode_vlq(field)
            if len(values) not in (1, 4, 5):
                raise SourceMapError(f"a segment has {len(values)} fields")
            generated += values[0]
            if generated < 0:
                raise SourceMapError("negative generated column")
            if len(values) == 1:
                segments.append(Segment(generated))
                continue
            source += values[1]
            line += values[2]
            column += values[3]
            if not 0 <= source < sources or line < 0 or column < 0:
                raise SourceMapError("a segment points outside the map's sources")
            named: int | None = None
            if len(values) == 5:
                name += values[4]
                if not 0 <= name < names:
                    raise SourceMapError("a segment names outside the map's names")
                named = name
            segments.append(Segment(generated, source, line, column, named))
        segments.sort(key=lambda s: s.column)
        lines.append(segments)
    return lines


def parse_source_map(text: str, base: str = "") -> SourceMap:
    """A revision 3 map (plain or indexed) from its JSON text.

    ``base`` is the map's directory relative to the repository (posix), which its
    ``sources`` (after ``sourceRoot``) are relative to; the sources kept are joined to it.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SourceMapError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SourceMapError("not a JSON object")
    if doc.get("version") != 3:
        raise SourceMapError(f"version {doc.get('version')!r} is not 3")
    if "sections" in doc:
        return _indexed(doc, base)
    return _plain(doc, base)


def _plain(doc: dict[str, Any], base: str) -> SourceMap:
    sources = doc.get("sources")
    names = doc.get("names", [])
    mappings = doc.get("mappings")
    if not isinstance(sources, list) or not isinstance(mappings, str):
        raise SourceMapError("`sources` must be a list and `mappings` a string")
    if not isinstance(names, list):
        raise SourceMapError("`names` must be a list")
    root = doc.get("sourceRoot") or ""
    if not isinstance(root, str):
        raise SourceMapError("`sourceRoot` must be a string")
    joined = tuple(_join_source(base, root, s if isinstance(s, str) else "") for s in sources)
    lines = decode_mappings(mappings, len(sources), len(names))
    return SourceMap(
        joined,
        tuple(n if isinstance(n, str) else "" for n in names),
        tuple(tuple(line) for line in lines),
    )


def _indexed(doc: dict[str, Any], base: str) -> SourceMap:
    """An index map: each section's map placed at its offset, one map for the whole file."""
    sections = doc.get("sections")
    if not isinstance(sections, list):
        raise SourceMapError("`sections` must be a list")
    sources: list[str] = []
    names: list[str] = []
    lines: list[list[Segment]] = []
    for section in sections:
        offset = section.get("offset") if isinstance(section, dict) else None
        inner = section.get("map") if isinstance(section, dict) else None
        if not isinstance(offset, dict) or not isinstance(inner, dict):
            raise SourceMapError("a section needs `offset` and `map` (`url` sections are not read)")
        row, col = offset.get("line"), offset.get("column")
        if not isinstance(row, int) or not isinstance(col, int) or row < 0 or col < 0:
            raise SourceMapError("a section's offset needs non-negative `line` and `column`")
        part = _plain(inner, base)
        s0, n0 = len(sources), len(names)
        sources += part.sources
        names += part.names
        while len(lines) < row + len(part.lines):
            lines.append([])
        for i, segments in enumerate(part.lines):
            shift = col if i == 0 else 0
            target = lines[row + i]
            target += [
                Segment(
                    s.column + shift,
                    None if s.source is None else s.source + s0,
                    s.line,
                    s.source_column,
                    None if s.name is None else s.name + n0,
                )
                for s in segments
            ]
            target.sort(key=lambda s: s.column)
    return SourceMap(tuple(sources), tuple(names), tuple(tuple(line) for line in lines))


def _join_source(base: str, root: str, source: str) -> str:
    """A source's path as the map names it: after ``sourceRoot``, relative to the map.

    Bundler URLs (``webpack://app/./src/x.ts``, ``file:///srv/app/src/x.ts``) lose their
    scheme and host; what is left is matched onto the repository later.
    """
    source = _SCHEME.sub("", source)
    if source.startswith("/"):
        return source
    root = _SCHEME.sub("", root)
    if root and not root.endswith("/"):
        root += "/"
    joined = root + source
    if joined.startswith("/"):
        return joined
    return posixpath.normpath(f"{base}/{joined}" if base else joined)


def map_url(generated: str) -> str | None:
    """The URL in the last ``sourceMappingURL`` comment of a generated file, if any."""
    urls = [match.group("url") for match in _MAP_COMMENT.finditer(generated)]
    return urls[-1] if urls else None


def data_url_text(url: str) -> str | None:
    """The text of a ``data:`` URL (base64 or percent-encoded), None when it is not one."""
    if not url.startswith("data:") or "," not in url:
        return None
    meta, payload = url[5:].split(",", 1)
    try:
        if meta.endswith(";base64"):
            return base64.b64decode(payload, validate=False).decode("utf-8", "replace")
        return urllib.parse.unquote(payload)
    except ValueError:
        return None


class SourceMaps:
    """The source maps of one repository checkout, each read at most once.

    ``locate`` maps a path the map names (relative to the repository, or absolute as a
    bundler wrote it) onto a repository file, or None; it is the same suffix matching the
    stack frames get, so an absolute path from the build machine still finds its file.
    """

    def __init__(self, repo: Path, locate: Callable[[str], Path | None]) -> None:
        self._repo = repo.resolve()
        self._locate = locate
        self._maps: dict[Path, SourceMap | None] = {}

    def original(self, path: Path, line: int, column: int | None) -> OriginalPosition | None:
        """Where a generated position in repository file ``path`` came from, or None when
        the file has no readable map or the position is unmapped (use the frame as it is)."""
        source_map = self._map_for(path)
        if source_map is None:
            return None
        segment = source_map.lookup(line, column)
        if segment is None or segment.source is None:
            return None
        located = self._locate(source_map.sources[segment.source])
        if located is None:
            return None
        name = source_map.names[segment.name] if segment.name is not None else None
        return OriginalPosition(
            located.as_posix(), segment.line + 1, segment.source_column + 1, name or None
        )

    def _map_for(self, path: Path) -> SourceMap | None:
        if path not in self._maps:
            try:
                self._maps[path] = self._read_map(path)
            except (OSError, SourceMapError, UnicodeDecodeError) as exc:
                log.info("source map of %s not used: %s", path, exc)
                self._maps[path] = None
        return self._maps[path]

    def _read_map(self, path: Path) -> SourceMap | None:
        generated = self._inside(self._repo / path)
        if generated is None or generated.suffix not in (".js", ".cjs", ".mjs", ".jsx"):
            return None
        if generated.stat().st_size > MAX_GENERATED_BYTES:
            return None
        url = map_url(generated.read_text(encoding="utf-8", errors="replace"))
        base = generated.parent.relative_to(self._repo).as_posix()
        base = "" if base == "." else base
        if url is not None:
            inline = data_url_text(url)
            if inline is not None:
                return parse_source_map(inline, base)
            if _SCHEME.match(url):
                return None  # a map served from elsewhere is not read
            target = self._inside(generated.parent / urllib.parse.unquote(url.split("?")[0]))
        else:
            target = self._inside(generated.with_name(generated.name + ".map"))
        if target is None or target.stat().st_size > MAX_MAP_BYTES:
            return None
        map_base = target.parent.relative_to(self._repo).as_posix()
        return parse_source_map(
            target.read_text(encoding="utf-8"), "" if map_base == "." else map_base
        )

    def _inside(self, candidate: Path) -> Path | None:
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError, ValueError):  # ValueError: a NUL in the name
            return None
        if not resolved.is_relative_to(self._repo) or not resolved.is_file():
            return None
        return resolved
