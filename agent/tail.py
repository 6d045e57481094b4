"""Following log files by glob so that every byte is delivered once, across rotations and restarts.

A followed file is known by its device and inode (the *key* ``"dev:ino"``) plus a signature
of its first bytes, because paths move under rotation while inodes get reused. The daemon
feeds each :class:`Chunk` to the parser for its key and persists ``position(key,
safe_offset)`` in the same transaction as the events the chunk produced; handing those
positions back to a new :class:`FileSource` after a restart (or a ``kill -9``) resumes
exactly where the committed data ends.

Rotation styles handled:

- rename + create (logrotate ``create``) and delete + recreate: the old inode is read
  through its open descriptor until drained, plus a grace period for writers that have not
  reopened yet; then its key is finished (``final=True``) and the new file is read from 0.
- copytruncate: the file shrinks (or its first bytes change) under our offset. The copy is
  looked up in the same directory by signature and its remainder is read under the old key;
  the truncated file continues as a new stream with a fresh key (``"dev:ino#2"``).
- truncation without a copy: reported, and the file is re-read from 0 under a fresh key.

``poll`` never blocks and never raises for anything the filesystem does; trouble is
reported through :meth:`FileSource.problems`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import os
import stat
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

SIG_MAX = 1024
DEFAULT_READ_SIZE = 1 << 20
DEFAULT_MAX_PENDING_BYTES = 8 << 20
DEFAULT_ROTATE_GRACE = 2.0

# Finished keys stay answerable by position() for a while after their final chunk.
_FINISHED_MEMORY = 256
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lzo", ".z", ".zip", ".br")
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)

_LIVE = "live"  # reached through the globs
_DRAINING = "draining"  # rotated away or deleted: read to the end, wait out the grace, finish
_COPY = "copy"  # a copytruncate copy read under the original key: read to the end, finish


@dataclass(frozen=True)
class Position:
    """Where a followed file stands; persisted by the daemon, one per key."""

    key: str
    path: str
    sig: str
    sig_len: int
    offset: int


@dataclass(frozen=True)
class Chunk:
    """Bytes of one file. ``offset`` is the file offset of ``data[0]``.

    For one key, chunks are contiguous: each starts where the previous one ended. A chunk
    with empty data and ``final=False`` announces a file followed from a non-zero offset
    (a file first seen at start-up, followed from its end) so that its position can be
    persisted before any line arrives. ``final=True`` (always with empty data) means the
    file is finished: flush the parser and forget the key after committing.
    """

    key: str
    path: str
    service: str
    data: bytes
    offset: int
    final: bool = False


@dataclass
class _Stream:
    key: str
    path: str
    ident: tuple[int, int]
    fd: int
    offset: int
    sig: str
    sig_len: int
    mode: str = _LIVE
    since: float = 0.0
    seen: tuple[int, int] = (-1, -1)


class _NotRegularError(OSError):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_head(fd: int, size: int) -> bytes:
    """The first min(size, SIG_MAX) bytes, or fewer if the file shrank meanwhile."""
    want = min(size, SIG_MAX)
    head = b""
    while len(head) < want:
        part = os.pread(fd, want - len(head), len(head))
        if not part:
            break
        head += part
    return head


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def _open_regular(path: str) -> tuple[int, os.stat_result]:
    """Open without ever blocking (a FIFO would) and refuse anything but a regular file."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegularError(_kind(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _reason(exc: OSError) -> str:
    if isinstance(exc, _NotRegularError):
        return f"not a regular file ({exc.kind})"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()


def _is_compressed(name: str) -> bool:
    return name.lower().endswith(_COMPRESSED_SUFFIXES)


def _parse_key(key: str) -> tuple[int, int] | None:
    base = key.split("#", 1)[0]
    dev, sep, ino = base.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return None
    return int(dev), int(ino)


def static_dir(pattern: str) -> str:
    """The deepest directory of a glob pattern that contains no wildcard.

    This is the directory to watch: every file the pattern can ever match lives under it.
    """
    parts = pattern.split(os.sep)
    fixed: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    joined = os.sep.join(fixed)
    return joined or os.sep


class FileSource:
    """Every file matched by a service's globs, delivered once across rotations and restarts.

    ``positions`` are the ones this source's daemon persisted (for this source only). With
    none at all this is a first start: files already present are followed from their end
    unless ``from_beginning``. Files appearing later, and files present at a restart that
    have no saved position, are read from the beginning, since they appeared after the
    last look.

    Globs should name the live files (``*.log``), not their rotated generations: a
    copytruncate copy matched by a glob would be read again as a file of its own.
    """

    def __init__(
        self,
        service: str,
        patterns: Sequence[str],
        positions: Mapping[str, Position],
        *,
        from_beginning: bool = False,
        read_size: int = DEFAULT_READ_SIZE,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        rotate_grace: float = DEFAULT_ROTATE_GRACE,
    ) -> None:
        if read_size <= 0:
            raise ValueError(f"read_size must be positive, got {read_size}")
        if max_pending_bytes <= 0:
            raise ValueError(f"max_pending_bytes must be positive, got {max_pending_bytes}")
        if rotate_grace < 0:
            raise ValueError(f"rotate_grace must not be negative, got {rotate_grace}")
        self.service = service
        self.patterns = tuple(os.path.abspath(os.path.expanduser(p)) for p in patterns)
        self.more = False
        # Seconds until a rotated file's grace runs out and a poll will finish it.
        self.wake_in: float | None = None
        self._saved = list(positions.values())
        self._first_start = not positions
        self._from_beginning = from_beginning
        self._read_size = read_size
        self._max_pending = max_pending_bytes
        self._grace = rotate_grace
        self._streams: dict[str, _Stream] = {}
        self._finished: OrderedDict[str, Position] = OrderedDict()
        self._problems: list[str] = []
        self._skipped: dict[str, str] = {}
        self._dir_state: dict[str, bool] = {}
        self._started = False
        self._closed = False
        self._cursor = 0

    # -- public API -----------------------------------------------------------------------

    def watch_dirs(self) -> list[str]:
        """Existing directories whose changes can matter; a missing one is stood in for by
        its nearest existing ancestor so that its reappearance is noticed."""
        dirs: set[str] = set()
        for pattern in self.patterns:
            d = static_dir(pattern)
            while not os.path.isdir(d):
                parent = os.path.dirname(d)
                if parent == d:
                    break
                d = parent
            if os.path.isdir(d):
                dirs.add(d)
        return sorted(dirs)

    def poll(self) -> list[Chunk]:
        """Everything new since the last poll, bounded per file and in total.

        Cheap when nothing changed: a directory listing per pattern, a stat per file and
        an fstat per open descriptor. Call again at once while ``more`` is true, and within
        ``wake_in`` seconds when that is set, so that rotated files get finished.
        """
        if self._closed:
            return []
        now = time.monotonic()
        chunks: list[Chunk] = []
        if not self._started:
            self._resume_saved(now, chunks)
        matched, uncertain = self._scan()
        self._attach(matched, uncertain, now, chunks)
        self._started = True
        self._read_all(now, chunks)
        return chunks

    def position(self, key: str, offset: int) -> Position | None:
        """What to persist once the daemon has consumed ``key`` up to ``offset``."""
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        s = self._streams.get(key)
        if s is not None:
            return Position(key=key, path=s.path, sig=s.sig, sig_len=s.sig_len, offset=offset)
        done = self._finished.get(key)
        if done is not None:
            return replace(done, offset=offset)
        return None

    def problems(self) -> list[str]:
        """Human-readable trouble since the last call (skipped files, lost files...)."""
        out, self._problems = self._problems, []
        return out

    def open_files(self) -> int:
        """How many descriptors this source holds (one per followed file)."""
        return len(self._streams)

    def close(self) -> None:
        """Release every descriptor and stop; positions already handed out stay valid
        and resume the files in a new source."""
        self._closed = True
        for s in self._streams.values():
            with contextlib.suppress(OSError):
                os.close(s.fd)
        self._streams.clear()

    # -- discovery ------------------------------------------------------------------------

    def _scan(self) -> tuple[list[tuple[str, os.stat_result]], set[str]]:
        """Regular files matched now (one path per inode), and paths we could not stat."""
        paths: list[str] = []
        seen_paths: set[str] = set()
        for pattern in self.patterns:
            self._check_dir(static_dir(pattern))
            for path in sorted(glob.glob(pattern, recursive=True)):
                if path not in seen_paths:
                    seen_paths.add(path)
                    paths.append(path)
        matched: list[tuple[str, os.stat_result]] = []
        uncertain: set[str] = set()
        idents: set[tuple[int, int]] = set()
        for path in paths:
            if _is_compressed(path):
                self._skip(path, "compressed file")
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                uncertain.add(path)
                self._skip(path, _reason(exc))
                continue
            if not stat.S_ISREG(st.st_mode):
                self._skip(path, f"not a regular file ({_kind(st.st_mode)})")
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in idents:
                continue
            idents.add(ident)
            matched.append((path, st))
        for path in list(self._skipped):
            if path not in seen_paths:
                del self._skipped[path]
        return matched, uncertain

    def _check_dir(self, directory: str) -> None:
        exists = os.path.isdir(directory)
        before = self._dir_state.get(directory)
        if before is None:
            if not exists:
                self._problems.append(f"directory {directory} does not exist (waiting for it)")
        elif before and not exists:
            self._problems.append(f"directory {directory} disappeared")
        elif exists and not before:
            self._problems.append(f"directory {directory} appeared")
        self._dir_state[directory] = exists

    def _skip(self, path: str, reason: str) -> None:
        if self._skipped.get(path) != reason:
            self._skipped[path] = reason
            self._problems.append(f"skipped {path}: {reason}")

    def _attach(
        self,
        matched: list[tuple[str, os.stat_result]],
        uncertain: set[str],
        now: float,
        chunks: list[Chunk],
    ) -> None:
        """Bind matched files to streams, start new ones, and notice rotated-away files."""
        by_ident = {s.ident: s for s in self._streams.values() if s.mode != _COPY}
        present: set[tuple[int, int]] = set()
        at_end = not self._started and self._first_start and not self._from_beginning
        for path, st in matched:
            ident = (st.st_dev, st.st_ino)
            present.add(ident)
            s = by_ident.get(ident)
            if s is not None:
                s.path = path
                s.mode = _LIVE
                continue
            s = self._open_new(path, ident, at_end)
            if s is None:
                continue
            by_ident[ident] = s
            self._streams[s.key] = s
            if s.offset > 0:
                chunks.append(Chunk(s.key, s.path, self.service, b"", s.offset))
        for s in self._streams.values():
            if s.mode == _LIVE and s.ident not in present and not self._still_here(s, uncertain):
                s.mode = _DRAINING
                s.since = now
                moved = self._find_by_inode(os.path.dirname(s.path), s.ident)
                if moved is not None:
                    s.path = moved

    def _still_here(self, s: _Stream, uncertain: set[str]) -> bool:
        """Whether an unmatched file is only hidden from the glob, not rotated away."""
        if s.path in uncertain:
            return True
        try:
            st = os.stat(s.path)
        except PermissionError:
            return True
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != s.ident:
            return False
        return any(fnmatch.fnmatchcase(s.path, p) for p in self.patterns)

    def _open_new(self, path: str, ident: tuple[int, int], at_end: bool) -> _Stream | None:
        try:
            fd, st = _open_regular(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._skip(path, _reason(exc))
            return None
        if (st.st_dev, st.st_ino) != ident:
            # Replaced between the glob and the open; the next poll sees the new file.
            os.close(fd)
            return None
        try:
            head = _read_head(fd, st.st_size)
        except OSError as exc:
            os.close(fd)
            self._skip(path, _reason(exc))
            return None
        self._skipped.pop(path, None)
        return _Stream(
            key=self._new_key(ident),
            path=path,
            ident=ident,
            fd=fd,
            offset=st.st_size if at_end else 0,
            sig=_digest(head),
            sig_len=len(head),
            seen=(st.st_size, st.st_mtime_ns) if at_end else (-1, -1),
        )

    def _new_key(self, ident: tuple[int, int]) -> str:
        base = f"{ident[0]}:{ident[1]}"
        n = 1
        while True:
            key = base if n == 1 else f"{base}#{n}"
            if key not in self._streams and key not in self._finished:
                return key
            n += 1

    @staticmethod
    def _find_by_inode(directory: str, ident: tuple[int, int]) -> str | None:
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    try:
                        if entry.inode() != ident[1]:
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_dev == ident[0] and stat.S_ISREG(st.st_mode):
                        return entry.path
        except OSError:
            return None
        return None

    @staticmethod
    def _find_copy(
        directory: str, sig: str, sig_len: int, offset: int, exclude: tuple[int, int]
    ) -> tuple[str, int, os.stat_result] | None:
        """The newest uncompressed file in ``directory`` that starts with our signature and
        holds at least ``offset`` bytes: where copytruncate put what we had not read yet."""
        if sig_len <= 0:
            return None
        found: list[tuple[int, str, int, os.stat_result]] = []
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            return None
        for entry in entries:
            if _is_compressed(entry.name):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) == exclude:
                continue
            if st.st_size < max(offset, sig_len):
                continue
            try:
                fd, fst = _open_regular(entry.path)
            except OSError:
                continue
            try:
                head = _read_head(fd, sig_len)
            except OSError:
                head = b""
            if len(head) == sig_len and _digest(head) == sig:
                found.append((fst.st_mtime_ns, entry.path, fd, fst))
            else:
                os.close(fd)
        if not found:
            return None
        found.sort(key=lambda item: item[0])
        for _, _, fd, _ in found[:-1]:
            os.close(fd)
        _, path, fd, fst = found[-1]
        return path, fd, fst

    # -- restart --------------------------------------------------------------------------

    def _resume_saved(self, now: float, chunks: list[Chunk]) -> None:
        """Find every saved key again: at its path, moved within its directory by
        rotation, or as a copytruncate copy; report and finish the ones that are gone."""
        for p in self._saved:
            ident = _parse_key(p.key) if isinstance(p.key, str) else None
            bad = not (
                isinstance(p.path, str)
                and isinstance(p.sig, str)
                and isinstance(p.offset, int)
                and isinstance(p.sig_len, int)
                and p.offset >= 0
                and 0 <= p.sig_len <= SIG_MAX
            )
            if bad or ident is None:
                self._problems.append(
                    f"ignoring saved position {p.key!r} for {p.path}: malformed position"
                )
                self._finish_saved(p, chunks)
                continue
            if p.key in self._streams:
                continue
            s, changed = self._reopen(p, ident)
            if s is None:
                copy = self._find_copy(os.path.dirname(p.path), p.sig, p.sig_len, p.offset, ident)
                if copy is not None:
                    path, fd, st = copy
                    s = _Stream(
                        key=p.key,
                        path=path,
                        ident=(st.st_dev, st.st_ino),
                        fd=fd,
                        offset=p.offset,
                        sig=p.sig,
                        sig_len=p.sig_len,
                        mode=_COPY,
                    )
            if s is None:
                if changed:
                    self._problems.append(
                        f"file changed while stopped: {p.path} was truncated or replaced "
                        f"(restarting at 0)"
                    )
                else:
                    self._problems.append(
                        f"lost {p.path}: gone while stopped, {p.offset} bytes had been read"
                    )
                self._finish_saved(p, chunks)
                continue
            s.since = now
            self._streams[s.key] = s

    def _reopen(self, p: Position, ident: tuple[int, int]) -> tuple[_Stream | None, bool]:
        """The saved file itself if it still holds what we read; and whether the inode
        was found with other content (truncated, or reused)."""
        claimed = {s.ident for s in self._streams.values() if s.mode != _COPY}
        if ident in claimed:
            return None, False
        candidates = [p.path]
        moved = self._find_by_inode(os.path.dirname(p.path), ident)
        if moved is not None and moved != p.path:
            candidates.append(moved)
        changed = False
        for path in candidates:
            try:
                fd, st = _open_regular(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != ident:
                os.close(fd)
                continue
            try:
                head = _read_head(fd, st.st_size)
            except OSError:
                head = b""
            intact = (
                st.st_size >= p.offset
                and len(head) >= p.sig_len
                and _digest(head[: p.sig_len]) == p.sig
            )
            if not intact:
                os.close(fd)
                # Elsewhere in the directory a different file merely reuses the inode.
                changed = changed or path == p.path
                continue
            stream = _Stream(
                key=p.key,
                path=path,
                ident=ident,
                fd=fd,
                offset=p.offset,
                sig=_digest(head),
                sig_len=len(head),
            )
            return stream, False
        return None, changed

    def _finish_saved(self, p: Position, chunks: list[Chunk]) -> None:
        offset = p.offset if isinstance(p.offset, int) and p.offset > 0 else 0
        path = p.path if isinstance(p.path, str) else ""
        chunks.append(Chunk(str(p.key), path, self.service, b"", offset, final=True))
        self._remember(replace(p, key=str(p.key), path=path, offset=offset))

    # -- reading --------------------------------------------------------------------------

    def _read_all(self, now: float, chunks: list[Chunk]) -> None:
        """Read every stream once, rotated ones first so older lines go out first."""
        self.more = False
        streams = list(self._streams.values())
        live = [s for s in streams if s.mode == _LIVE]
        if live:
            start = self._cursor % len(live)
            live = live[start:] + live[:start]
        queue: deque[_Stream] = deque([s for s in streams if s.mode != _LIVE] + live)
        budget = self._max_pending
        wake: float | None = None
        served_live = 0
        while queue:
            s = queue.popleft()
            if self._streams.get(s.key) is not s:
                continue
            if budget <= 0:
                self.more = True
                break
            if s.mode == _LIVE:
                served_live += 1
            used, left = self._read_one(s, now, chunks, budget, queue)
            budget -= used
            if left is not None:
                wake = left if wake is None else min(wake, left)
        self._cursor += served_live
        self.wake_in = wake

    def _read_one(
        self, s: _Stream, now: float, chunks: list[Chunk], budget: int, queue: deque[_Stream]
    ) -> tuple[int, float | None]:
        """Read what is new in one stream; returns bytes delivered and, for a drained
        rotated file, the seconds left of its grace."""
        try:
            st = os.fstat(s.fd)
        except OSError as exc:
            self._problems.append(f"stopped reading {s.path}: {_reason(exc)}")
            self._finish(s, chunks)
            return 0, None
        size = st.st_size
        state = (size, st.st_mtime_ns)
        changed = state != s.seen
        if size < s.offset:
            if s.mode == _LIVE:
                self._truncated(s, chunks, queue)
            else:
                self._problems.append(
                    f"file truncated: {s.path} while finishing it ({s.offset - size} bytes gone)"
                )
                self._finish(s, chunks)
            return 0, None
        data = b""
        if size > s.offset:
            try:
                data = os.pread(s.fd, min(self._read_size, size - s.offset, budget), s.offset)
            except OSError as exc:
                self._problems.append(f"stopped reading {s.path}: {_reason(exc)}")
                self._finish(s, chunks)
                return 0, None
        if s.mode == _LIVE and (data or changed) and not self._head_intact(s):
            # Truncated (copytruncate) and possibly regrown since the fstat: what was just
            # read may belong to the new content, so it is dropped and re-read from there.
            self._truncated(s, chunks, queue)
            return 0, None
        s.seen = state
        if data:
            chunks.append(Chunk(s.key, s.path, self.service, data, s.offset))
            s.offset += len(data)
            if s.mode == _DRAINING:
                s.since = now
            if s.offset < size:
                self.more = True
                return len(data), None
            if s.mode == _COPY:
                self._finish(s, chunks)
            elif s.mode == _DRAINING:
                return len(data), self._grace
            return len(data), None
        if s.mode == _COPY:
            self._finish(s, chunks)
        elif s.mode == _DRAINING:
            left = self._grace - (now - s.since)
            if left <= 0:
                self._finish(s, chunks)
            else:
                return 0, left
        return 0, None

    def _head_intact(self, s: _Stream) -> bool:
        """Whether the file still starts with the bytes we signed; grows the signature
        towards SIG_MAX while the file is young."""
        try:
            size = os.fstat(s.fd).st_size
            head = _read_head(s.fd, size)
        except OSError:
            return True
        if len(head) < s.sig_len or _digest(head[: s.sig_len]) != s.sig:
            return False
        if len(head) > s.sig_len:
            s.sig = _digest(head)
            s.sig_len = len(head)
        return True

    def _truncated(self, s: _Stream, chunks: list[Chunk], queue: deque[_Stream]) -> None:
        """Finish the old content (from its copy when there is one) and restart at 0."""
        copy = self._find_copy(os.path.dirname(s.path), s.sig, s.sig_len, s.offset, s.ident)
        fd, path, ident = s.fd, s.path, s.ident
        if copy is not None:
            copy_path, copy_fd, copy_st = copy
            s.fd = copy_fd
            s.path = copy_path
            s.ident = (copy_st.st_dev, copy_st.st_ino)
            s.mode = _COPY
            s.seen = (-1, -1)
            queue.append(s)
        else:
            self._problems.append(f"file truncated: {path} (restarting at 0)")
            chunks.append(Chunk(s.key, path, self.service, b"", s.offset, final=True))
            del self._streams[s.key]
            self._remember(Position(s.key, path, s.sig, s.sig_len, s.offset))
        fresh = _Stream(
            key=self._new_key(ident),
            path=path,
            ident=ident,
            fd=fd,
            offset=0,
            sig=_digest(b""),
            sig_len=0,
        )
        self._streams[fresh.key] = fresh
        queue.append(fresh)

    def _finish(self, s: _Stream, chunks: list[Chunk]) -> None:
        chunks.append(Chunk(s.key, s.path, self.service, b"", s.offset, final=True))
        with contextlib.suppress(OSError):
            os.close(s.fd)
        self._streams.pop(s.key, None)
        self._remember(Position(s.key, s.path, s.sig, s.sig_len, s.offset))

    def _remember(self, p: Position) -> None:
        self._finished[p.key] = p
        self._finished.move_to_end(p.key)
        while len(self._finished) > _FINISHED_MEMORY:
            self._finished.popitem(last=False)
