"""FileSource against real files, real writer processes and real logrotate.

``Daemon`` below consumes chunks the way the agent daemon does: per key it checks that each
chunk starts exactly where the previous one ended, cuts complete lines, and "commits" the
position of the last complete line; a final chunk flushes and forgets the key. Every test
compares what it committed with what was written (or what is on disk).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from agent.tail import Chunk, FileSource, Position
from tests.conftest import require_tool

pytestmark = pytest.mark.timeout(60)

# A separate process appending numbered lines with O_APPEND, one write per line, that
# reopens the path once it leads to another file (as a WatchedFileHandler-style logger
# does), so lines written before it notices a rotation land in the old file.
WRITER = r"""
import os, sys, time
path, name, count, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(count):
    try:
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            new = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.close(fd)
            fd = new
    except FileNotFoundError:
        pass
    os.write(fd, f"{name} {i:06d} {'x' * 40}\n".encode())
    time.sleep(interval)
"""


class Daemon:
    """Consumes chunks like the agent daemon and keeps what it committed."""

    def __init__(self, source: FileSource, committed: list[bytes] | None = None) -> None:
        self.source = source
        self.next: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}
        self.by_key: dict[str, list[bytes]] = {}
        self.committed: list[bytes] = list(committed or [])
        self.positions: dict[str, Position] = {}
        self.finals: list[str] = []
        self.problems: list[str] = []

    def feed(self, chunks: list[Chunk]) -> None:
        for c in chunks:
            assert c.service == "pa"
            if c.key in self.next:
                assert c.offset == self.next[c.key], f"{c.key}: gap or overlap at {c.offset}"
            else:
                assert c.key not in self.finals, f"{c.key} reused after its final chunk"
            if c.final:
                assert c.data == b""
            buf = self.partial.get(c.key, b"") + c.data
            *lines, rest = buf.split(b"\n")
            self.next[c.key] = c.offset + len(c.data)
            self.partial[c.key] = rest
            self.by_key.setdefault(c.key, []).extend(lines)
            self.committed.extend(lines)
            if c.final:
                if rest:
                    self.by_key[c.key].append(rest)
                    self.committed.append(rest)
                self.finals.append(c.key)
                for table in (self.next, self.partial, self.positions):
                    table.pop(c.key, None)
            else:
                pos = self.source.position(c.key, self.next[c.key] - len(rest))
                assert pos is not None
                self.positions[c.key] = pos
        self.problems.extend(self.source.problems())

    def pump(self) -> list[Chunk]:
        chunks = self.source.poll()
        self.feed(chunks)
        return chunks

    def settle(self, timeout: float = 10.0) -> None:
        """Poll until nothing is left to read and no rotated file is waiting out its grace."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2:
            assert time.monotonic() < deadline, "source did not settle"
            chunks = self.pump()
            busy = chunks or self.source.more or self.source.wake_in is not None
            quiet = 0 if busy else quiet + 1
            if not self.source.more:
                time.sleep(min(self.source.wake_in or 0.02, 0.05))


def numbers(lines: list[bytes], name: str = "w") -> list[int]:
    out = []
    for line in lines:
        parts = line.split()
        assert len(parts) == 3 and parts[2] == b"x" * 40, f"mangled line {line!r}"
        if parts[0] == name.encode():
            out.append(int(parts[1]))
    return out


def lines_on_disk(directory: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(directory.iterdir()):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines.extend(line for line in data.split(b"\n") if line)
    return lines


def start_writer(path: Path, count: int, interval: float, name: str = "w") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(count), str(interval)]
    )


def logrotate_conf(tmp_path: Path, log: Path, options: list[str]) -> tuple[Path, Path]:
    conf = tmp_path / "logrotate.conf"
    body = "\n".join(["rotate 50", "missingok", *options])
    conf.write_text(f"{log} {{\n{body}\n}}\n")
    conf.chmod(0o644)
    return conf, tmp_path / "logrotate.state"


def rotate(logrotate: str, conf: Path, state: Path) -> None:
    done = subprocess.run(
        [logrotate, "-f", "-s", str(state), str(conf)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def assert_in_order_per_key(daemon: Daemon) -> None:
    for key, lines in daemon.by_key.items():
        nums = numbers(lines)
        assert nums == sorted(nums), f"{key} out of order"


ROTATIONS = {
    "create": (["create", "compress", "delaycompress"], 0.35),
    "copytruncate": (["copytruncate", "compress", "delaycompress"], 0.35),
    "dateext": (["create", "dateext", "dateformat .%s"], 1.1),
}


@pytest.mark.parametrize("mode", sorted(ROTATIONS))
def test_logrotate_rotations_deliver_every_line_exactly_once(tmp_path, mode):
    logrotate = require_tool("logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.touch()
    options, spacing = ROTATIONS[mode]
    conf, state = logrotate_conf(tmp_path, log, options)
    source = FileSource("pa", [str(logs / "*.log")], {}, rotate_grace=0.3)
    daemon = Daemon(source)
    daemon.pump()

    count = 900 if spacing < 1 else 1800
    writer = start_writer(log, count, 0.0015)
    rotations = 0
    next_rotation = time.monotonic() + 0.25
    while writer.poll() is None:
        daemon.pump()
        if rotations < 3 and time.monotonic() >= next_rotation:
            rotate(logrotate, conf, state)
            rotations += 1
            next_rotation = time.monotonic() + spacing
        time.sleep(0.005)
    assert writer.returncode == 0
    daemon.settle()

    assert rotations == 3
    assert len(list(logs.iterdir())) == 4, sorted(p.name for p in logs.iterdir())
    seen = numbers(daemon.committed)
    disk = numbers(lines_on_disk(logs))
    assert len(seen) == len(set(seen)), "a line was delivered twice"
    assert sorted(seen) == sorted(disk)
    if mode != "copytruncate":
        # Nothing can be lost on disk with create: every line written is seen.
        assert sorted(seen) == list(range(count))
    else:
        # copytruncate loses only what lands between copy and truncate.
        assert len(seen) >= count * 0.9
    assert_in_order_per_key(daemon)
    # One key per file generation, all finished except the current file's.
    assert len(daemon.finals) == 3
    assert set(daemon.positions) == set(daemon.by_key) - set(daemon.finals)
    assert source.open_files() == 1
    source.close()


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
def test_restart_after_rotation_while_down_loses_and_repeats_nothing(tmp_path, mode):
    logrotate = require_tool("logrotate")
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.touch()
    conf, state = logrotate_conf(tmp_path, log, [mode, "delaycompress", "compress"])
    first = FileSource("pa", [str(logs / "*.log")], {}, rotate_grace=0.3)
    daemon = Daemon(first)
    daemon.pump()
    count = 800
    writer = start_writer(log, count, 0.002)
    deadline = time.monotonic() + 0.4
    rotated_while_up = False
    while time.monotonic() < deadline:
        daemon.pump()
        if not rotated_while_up and time.monotonic() > deadline - 0.2:
            rotate(logrotate, conf, state)
            rotated_while_up = True
        time.sleep(0.005)
    daemon.pump()
    # Crash: only what was committed survives, partial lines included.
    saved = dict(daemon.positions)
    committed = list(daemon.committed)
    first.close()
    assert saved, "nothing was committed before the crash"

    st = log.stat()
    (live_key,) = [key for key in saved if key.split("#")[0] == f"{st.st_dev}:{st.st_ino}"]
    time.sleep(0.1)
    rotate(logrotate, conf, state)
    time.sleep(0.15)

    second = FileSource("pa", [str(logs / "*.log")], saved, rotate_grace=0.3)
    resumed = Daemon(second, committed)
    resumed.next = {key: pos.offset for key, pos in saved.items()}
    while writer.poll() is None:
        resumed.pump()
        time.sleep(0.005)
    resumed.settle()

    seen = numbers(resumed.committed)
    disk = numbers(lines_on_disk(logs))
    assert len(seen) == len(set(seen)), "a line was delivered twice"
    assert sorted(seen) == sorted(disk)
    if mode == "create":
        assert sorted(seen) == list(range(count))
    assert_in_order_per_key(resumed)
    # The file live at the crash was found again and finished under its own key.
    assert live_key in saved
    assert live_key in resumed.finals
    assert resumed.by_key.get(live_key), "nothing of the live file was read after restart"
    # Files already rotated at the crash (drained before it) may have been compressed
    # away meanwhile, their inode even reused; those are reported, nothing else.
    assert len(resumed.problems) <= len(saved) - 1, resumed.problems
    for problem in resumed.problems:
        assert "gone while stopped" in problem or "truncated or replaced" in problem, problem
    second.close()


def test_restart_without_rotation_resumes_at_the_committed_offset(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\nthr")
    first = FileSource("pa", [str(tmp_path / "*.log")], {}, from_beginning=True)
    daemon = Daemon(first)
    daemon.pump()
    assert daemon.committed == [b"one", b"two"]
    saved = dict(daemon.positions)
    (pos,) = saved.values()
    assert pos.offset == 8 and pos.path == str(log)
    first.close()

    with log.open("ab") as f:
        f.write(b"ee\nfour\n")
    second = FileSource("pa", [str(tmp_path / "*.log")], saved)
    chunks = second.poll()
    assert [(c.key, c.offset, c.data) for c in chunks] == [(pos.key, 8, b"three\nfour\n")]
    assert second.problems() == []
    second.close()


def test_saved_file_gone_while_stopped_is_reported_and_finished(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"a\n" * 10)
    first = FileSource("pa", [str(tmp_path / "*.log")], {}, from_beginning=True)
    daemon = Daemon(first)
    daemon.pump()
    saved = dict(daemon.positions)
    first.close()
    log.unlink()

    second = FileSource("pa", [str(tmp_path / "*.log")], saved)
    chunks = second.poll()
    (key,) = saved
    assert [(c.key, c.final, c.offset) for c in chunks] == [(key, True, 20)]
    problems = second.problems()
    assert any(f"lost {log}" in p and "gone while stopped" in p for p in problems), problems
    assert second.open_files() == 0


def test_saved_inode_now_holding_other_content_is_read_from_the_start(tmp_path):
    # What inode reuse looks like: the same dev:ino, but not the bytes we signed.
    log = tmp_path / "app.log"
    log.write_bytes(b"new content\n")
    st = log.stat()
    old = Position(
        key=f"{st.st_dev}:{st.st_ino}",
        path=str(log),
        sig="0" * 64,
        sig_len=6,
        offset=6,
    )
    source = FileSource("pa", [str(tmp_path / "*.log")], {old.key: old})
    daemon = Daemon(source)
    daemon.pump()
    assert daemon.finals == [old.key]
    assert daemon.committed == [b"new content"]
    assert any("truncated or replaced" in p for p in daemon.problems), daemon.problems
    source.close()


def test_malformed_saved_position_is_reported_not_fatal(tmp_path):
    (tmp_path / "app.log").write_bytes(b"hello\n")
    bad = Position(key="not-a-key", path=str(tmp_path / "app.log"), sig="", sig_len=0, offset=0)
    wrong_types = Position(key="1:2", path=None, sig=7, sig_len="x", offset=-5)  # type: ignore[arg-type]
    saved = {"not-a-key": bad, "1:2": wrong_types}
    source = FileSource("pa", [str(tmp_path / "*.log")], saved)
    daemon = Daemon(source)
    daemon.pump()
    assert daemon.finals == ["not-a-key", "1:2"]
    assert daemon.committed == [b"hello"]
    assert any("'not-a-key'" in p and "malformed" in p for p in daemon.problems)
    source.close()


def test_first_start_follows_existing_files_from_their_end(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"old line\n")
    source = FileSource("pa", [str(tmp_path / "*.log")], {})
    daemon = Daemon(source)
    chunks = daemon.pump()
    # An empty chunk announces the position so the daemon can persist it at once.
    assert [(c.data, c.offset, c.final) for c in chunks] == [(b"", 9, False)]
    assert daemon.positions[chunks[0].key].offset == 9
    with log.open("ab") as f:
        f.write(b"new line\n")
    daemon.pump()
    assert daemon.committed == [b"new line"]
    source.close()


def test_from_beginning_reads_existing_files_whole(tmp_path):
    (tmp_path / "app.log").write_bytes(b"old line\n")
    source = FileSource("pa", [str(tmp_path / "*.log")], {}, from_beginning=True)
    daemon = Daemon(source)
    daemon.pump()
    assert daemon.committed == [b"old line"]
    source.close()


def test_files_appearing_later_are_read_from_the_beginning(tmp_path):
    (tmp_path / "a.log").write_bytes(b"present at start\n")
    source = FileSource("pa", [str(tmp_path / "*.log")], {})
    daemon = Daemon(source)
    daemon.pump()
    (tmp_path / "b.log").write_bytes(b"first\nsecond\n")
    (tmp_path / "c.txt").write_bytes(b"not matched\n")
    daemon.pump()
    assert daemon.committed == [b"first", b"second"]
    source.close()


def test_recursive_glob_follows_nested_files(tmp_path):
    source = FileSource("pa", [str(tmp_path / "**" / "*-error.log")], {})
    daemon = Daemon(source)
    daemon.pump()
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "api-error.log").write_bytes(b"deep\n")
    (tmp_path / "top-error.log").write_bytes(b"shallow\n")
    (nested / "api-out.log").write_bytes(b"ignored\n")
    daemon.pump()
    assert sorted(daemon.committed) == [b"deep", b"shallow"]
    assert source.watch_dirs() == [str(tmp_path)]
    source.close()


def test_partial_last_line_is_delivered_without_skipping_bytes(tmp_path):
    log = tmp_path / "app.log"
    log.touch()
    source = FileSource("pa", [str(log)], {})
    daemon = Daemon(source)
    daemon.pump()
    with log.open("ab", buffering=0) as f:
        f.write(b"Error: par")
        first = daemon.pump()
        f.write(b"tial\n    at x (/a.js:1:2)\n")
        second = daemon.pump()
    assert [(c.offset, c.data) for c in first] == [(0, b"Error: par")]
    assert [(c.offset, c.data) for c in second] == [(10, b"tial\n    at x (/a.js:1:2)\n")]
    assert daemon.committed == [b"Error: partial", b"    at x (/a.js:1:2)"]
    # Until the line ends, the committed position stays before it.
    source.close()


def test_delete_and_recreate_keeps_lines_written_to_the_deleted_file(tmp_path):
    log = tmp_path / "app.log"
    source = FileSource("pa", [str(log)], {}, rotate_grace=0.2)
    daemon = Daemon(source)
    daemon.pump()
    old = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(old, b"before delete\n")
        daemon.pump()
        log.unlink()
        daemon.pump()
        os.write(old, b"after delete, old fd\n")
        log.write_bytes(b"recreated\n")
        daemon.pump()
        os.write(old, b"late write\n")
        daemon.settle()
    finally:
        os.close(old)
    assert sorted(daemon.committed) == sorted(
        [b"before delete", b"after delete, old fd", b"recreated", b"late write"]
    )
    assert len(daemon.finals) == 1
    assert source.open_files() == 1
    source.close()


def test_truncation_without_a_copy_restarts_at_zero_and_is_reported(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"line one\nline two\n")
    source = FileSource("pa", [str(log)], {}, from_beginning=True)
    daemon = Daemon(source)
    daemon.pump()
    (old_key,) = daemon.by_key
    with log.open("wb") as f:
        f.write(b"fresh\n")
    daemon.pump()
    assert daemon.finals == [old_key]
    assert daemon.committed == [b"line one", b"line two", b"fresh"]
    new_key = next(k for k in daemon.by_key if k != old_key)
    assert new_key.startswith(old_key.split("#")[0] + "#")
    assert f"file truncated: {log} (restarting at 0)" in daemon.problems
    source.close()


def test_copytruncate_regrown_past_offset_reads_copy_then_new_content(tmp_path):
    # The copytruncate race: by the time we look, the truncated file has grown past our
    # offset again, so only its first bytes tell that it is new content.
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"old %03d\n" % i for i in range(10)))
    source = FileSource("pa", [str(log)], {}, from_beginning=True)
    daemon = Daemon(source)
    daemon.pump()
    with log.open("ab") as f:
        f.write(b"old 010\nold 011\n")
    shutil.copyfile(log, tmp_path / "app.log.1")
    (tmp_path / "app.log.2.gz").write_bytes(gzip.compress(log.read_bytes()))
    os.truncate(log, 0)
    with log.open("ab") as f:
        f.write(b"".join(b"new %03d\n" % i for i in range(40)))
    daemon.pump()
    expected = [b"old %03d" % i for i in range(12)] + [b"new %03d" % i for i in range(40)]
    assert daemon.committed == expected
    assert len(daemon.finals) == 1
    assert daemon.problems == []
    source.close()


def _unreadable_scenario(directory: str) -> dict:
    """Run where permissions bite (not as root): returns what the source reported."""
    secret = os.path.join(directory, "secret.log")
    with open(secret, "wb") as f:
        f.write(b"hidden line\n")
    os.chmod(secret, 0)
    with open(os.path.join(directory, "open.log"), "wb") as f:
        f.write(b"visible line\n")
    source = FileSource("pa", [os.path.join(directory, "*.log")], {}, from_beginning=True)
    first = [c.data.decode() for c in source.poll()]
    problems = source.problems()
    again = [c.data.decode() for c in source.poll()]
    repeated = source.problems()
    os.chmod(secret, 0o644)
    later = [c.data.decode() for c in source.poll()]
    source.close()
    return {
        "first": first,
        "problems": problems,
        "again": again,
        "repeated": repeated,
        "later": later,
    }


def test_unreadable_file_is_skipped_with_a_message_and_read_once_readable():
    directory = tempfile.mkdtemp(prefix="tail-perm-")
    try:
        if os.geteuid() != 0:
            result = _unreadable_scenario(directory)
        else:
            # Root reads everything: run the scenario in a child that drops to nobody.
            os.chown(directory, 65534, 65534)
            os.chmod(directory, 0o755)
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                code = 1
                try:
                    os.close(read_end)
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    os.write(write_end, json.dumps(_unreadable_scenario(directory)).encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(write_end)
            with os.fdopen(read_end, "rb") as pipe:
                raw = pipe.read()
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            result = json.loads(raw)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    secret = os.path.join(directory, "secret.log")
    assert result["first"] == ["visible line\n"]
    assert result["problems"] == [f"skipped {secret}: permission denied"]
    assert result["again"] == [] and result["repeated"] == []
    assert result["later"] == ["hidden line\n"]


def test_deleted_directory_is_reported_and_followed_again_when_recreated(tmp_path):
    logs = tmp_path / "pa"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"")
    source = FileSource("pa", [str(logs / "*.log")], {}, rotate_grace=0.1)
    daemon = Daemon(source)
    daemon.pump()
    assert source.watch_dirs() == [str(logs)]
    with (logs / "app.log").open("ab") as f:
        f.write(b"before\n")
    shutil.rmtree(logs)
    daemon.settle()
    assert f"directory {logs} disappeared" in daemon.problems
    assert daemon.committed == [b"before"]
    assert len(daemon.finals) == 1 and source.open_files() == 0
    assert source.watch_dirs() == [str(tmp_path)]

    logs.mkdir()
    (logs / "app.log").write_bytes(b"after\n")
    daemon.pump()
    assert daemon.committed == [b"before", b"after"]
    assert f"directory {logs} appeared" in daemon.problems
    assert source.watch_dirs() == [str(logs)]
    source.close()


def test_missing_directory_at_start_is_reported_and_its_parent_watched(tmp_path):
    source = FileSource("pa", [str(tmp_path / "later" / "*.log")], {})
    assert source.watch_dirs() == [str(tmp_path)]
    assert source.poll() == []
    assert source.problems() == [f"directory {tmp_path / 'later'} does not exist (waiting for it)"]


def test_fifo_device_and_directory_matches_are_skipped_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.log")
    (tmp_path / "dir.log").mkdir()
    os.symlink("/dev/null", tmp_path / "null.log")
    (tmp_path / "real.log").write_bytes(b"ok\n")
    source = FileSource("pa", [str(tmp_path / "*.log")], {}, from_beginning=True)
    daemon = Daemon(source)
    daemon.pump()
    daemon.pump()
    assert daemon.committed == [b"ok"]
    assert sorted(daemon.problems) == [
        f"skipped {tmp_path / 'dir.log'}: not a regular file (directory)",
        f"skipped {tmp_path / 'null.log'}: not a regular file (character device)",
        f"skipped {tmp_path / 'pipe.log'}: not a regular file (fifo)",
    ]
    source.close()


def test_file_replaced_by_a_directory_is_finished_and_reported(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    source = FileSource("pa", [str(log)], {}, rotate_grace=0.05)
    daemon = Daemon(source)
    daemon.pump()
    log.write_bytes(b"last words\n")
    log.unlink()
    log.mkdir()
    daemon.settle()
    assert daemon.committed == [b"last words"]
    assert len(daemon.finals) == 1
    assert f"skipped {log}: not a regular file (directory)" in daemon.problems
    source.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_hundred_files_rotated_keep_descriptors_bounded(tmp_path):
    for i in range(100):
        (tmp_path / f"svc{i:03d}.log").write_bytes(b"w %06d %s\n" % (i, b"x" * 40))
    before = _open_fds()
    source = FileSource("pa", [str(tmp_path / "*.log")], {}, from_beginning=True, rotate_grace=0)
    daemon = Daemon(source)
    daemon.pump()
    assert source.open_files() == 100
    assert _open_fds() - before == 100
    for round_ in range(3):
        for i in range(100):
            path = tmp_path / f"svc{i:03d}.log"
            with path.open("ab") as f:
                f.write(b"w %06d %s\n" % (1000 * (round_ + 1) + i, b"x" * 40))
            path.rename(tmp_path / f"svc{i:03d}.log.{round_}")
            path.write_bytes(b"w %06d %s\n" % (100_000 * (round_ + 1) + i, b"x" * 40))
        daemon.settle()
        assert source.open_files() == 100
        assert _open_fds() - before == 100
    assert len(daemon.finals) == 300
    assert sorted(numbers(daemon.committed)) == sorted(numbers(lines_on_disk(tmp_path)))
    assert len(daemon.committed) == 100 * 7
    source.close()
    assert _open_fds() == before


def test_one_huge_file_does_not_starve_the_others(tmp_path):
    (tmp_path / "big.log").write_bytes(b"b" * 99 + b"\n" * 1 + b"b" * 99_900)
    (tmp_path / "small.log").write_bytes(b"small\n")
    source = FileSource(
        "pa",
        [str(tmp_path / "*.log")],
        {},
        from_beginning=True,
        read_size=4096,
        max_pending_bytes=6000,
    )
    first = source.poll()
    assert sum(len(c.data) for c in first) <= 6000
    assert source.more
    seen_small = any(c.data == b"small\n" for c in first)
    polls = 1
    total = sum(len(c.data) for c in first)
    while source.more:
        chunks = source.poll()
        assert all(len(c.data) <= 4096 for c in chunks)
        seen_small = seen_small or any(c.data == b"small\n" for c in chunks)
        total += sum(len(c.data) for c in chunks)
        polls += 1
        if polls == 2:
            assert seen_small, "the small file waited behind the big one"
    assert total == 100_000 + 6
    assert source.poll() == []
    source.close()


def test_quiet_poll_delivers_nothing_and_reads_no_file_content(tmp_path, monkeypatch):
    for i in range(20):
        (tmp_path / f"svc{i}.log").write_bytes(b"x\n")
    source = FileSource("pa", [str(tmp_path / "*.log")], {}, from_beginning=True)
    assert len(source.poll()) == 20
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        reads.append(fd)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    for _ in range(20):
        assert source.poll() == []
    assert reads == []
    assert source.more is False and source.wake_in is None
    with (tmp_path / "svc3.log").open("ab") as f:
        f.write(b"y\n")
    assert [c.data for c in source.poll()] == [b"y\n"]
    assert reads, "the grown file was not read"
    source.close()
