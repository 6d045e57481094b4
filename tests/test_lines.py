"""LineSplitter: byte offsets stay exact and hostile bytes never stop or bloat the reader."""

from __future__ import annotations

import itertools
import random
import tracemalloc

import pytest

from agent.lines import Line, LineSplitter


def _all_lines(splitter: LineSplitter, data: bytes, chunk: int, offset: int = 0) -> list[Line]:
    lines: list[Line] = []
    for i in range(0, len(data), chunk):
        lines.extend(splitter.feed(data[i : i + chunk], offset + i))
    return lines


def test_offsets_are_contiguous_and_end_after_the_newline() -> None:
    data = b"first\nsecond line\n\nlast\n"
    lines = _all_lines(LineSplitter(), data, chunk=3, offset=100)
    assert [line.text for line in lines] == ["first", "second line", "", "last"]
    assert lines[0].start == 100
    for before, after in itertools.pairwise(lines):
        assert before.end == after.start
    assert lines[-1].end == 100 + len(data)


def test_partial_line_is_held_and_pending_start_points_at_it() -> None:
    splitter = LineSplitter()
    assert [line.text for line in splitter.feed(b"done\nhalf", 0)] == ["done"]
    assert splitter.pending_start == 5
    lines = splitter.feed(b" a line\n", 9)
    assert lines == [Line("half a line", 5, 17)]
    assert splitter.pending_start == 17


def test_flush_returns_the_partial_last_line_at_end_of_stream() -> None:
    splitter = LineSplitter()
    splitter.feed(b"a\nno newline", 0)
    assert splitter.flush() == [Line("no newline", 2, 12)]
    assert splitter.pending_start == 12
    assert splitter.flush() == []


def test_ten_megabyte_line_is_cut_with_marker_without_buffering_it() -> None:
    limit = 1024
    splitter = LineSplitter(max_line_bytes=limit)
    total = 10 * 1024 * 1024
    block = b"x" * 65536
    tracemalloc.start()
    try:
        lines = splitter.feed(b"before\nERROR ", 0)
        offset = 13
        baseline = tracemalloc.get_traced_memory()[0]
        while offset - 7 < total:
            lines.extend(splitter.feed(block, offset))
            offset += len(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    lines.extend(splitter.feed(b"\nafter\n", offset))
    long_line = lines[1]
    assert long_line.text.startswith("ERROR xxx")
    assert long_line.text.endswith(f"…[line cut: {offset - 7} bytes]")
    assert len(long_line.text.encode()) < limit + 64
    assert (long_line.start, long_line.end) == (7, offset + 1)
    assert lines[2] == Line("after", offset + 1, offset + 7)
    assert splitter.cut_lines == 1
    # Far below the 10 MB the line occupies: only chunks and the kept head are in memory.
    assert peak - baseline < 1024 * 1024


def test_complete_overlong_line_in_one_chunk_is_cut_too() -> None:
    splitter = LineSplitter(max_line_bytes=16)
    lines = splitter.feed(b"a" * 40 + b"\nshort\n", 0)
    assert lines[0].text == "a" * 16 + " …[line cut: 40 bytes]"
    assert lines[1] == Line("short", 41, 47)


def test_invalid_utf8_is_replaced_and_counted() -> None:
    splitter = LineSplitter()
    lines = splitter.feed(b"caf\xc3\xa9 ok\nbad \xff\xfe bytes\n", 0)
    assert lines[0].text == "café ok"
    assert lines[1].text == "bad \ufffd\ufffd bytes"
    assert splitter.invalid_utf8_lines == 1


def test_control_characters_and_colour_escapes_are_removed_but_tabs_kept() -> None:
    raw = b"\x1b[31mERROR\x1b[39m\tdisk \x00full\x07\r\n"
    (line,) = LineSplitter().feed(raw, 0)
    assert line.text == "ERROR\tdisk full"
    assert line.end == len(raw)


def test_binary_garbage_never_raises_and_every_byte_is_accounted_for() -> None:
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(200_000))
    splitter = LineSplitter(max_line_bytes=512)
    lines = _all_lines(splitter, data, chunk=4093)
    lines.extend(splitter.flush())
    covered = lines[0].start
    for line in lines:
        assert line.start == covered
        covered = line.end
    assert covered == len(data)
    assert all("\x00" not in line.text for line in lines)


def test_a_chunk_that_does_not_continue_the_stream_is_refused() -> None:
    splitter = LineSplitter()
    splitter.feed(b"abc", 0)
    with pytest.raises(ValueError, match="previous one ended at 3"):
        splitter.feed(b"def", 10)
