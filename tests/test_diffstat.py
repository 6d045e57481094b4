"""The diff stat as the store keeps it: JSON written and read back, older text rows read too."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from console.fix.diffstat import FileStat, decode_stat, encode_stat

paths = st.text(min_size=1, max_size=40).filter(lambda p: p.strip() == p and "\n" not in p)
counts = st.integers(min_value=0, max_value=10**9)
file_stats = st.builds(
    FileStat,
    path=paths,
    added=counts,
    removed=counts,
    binary=st.booleans(),
    old_path=st.none() | paths,
)


@given(st.lists(file_stats, max_size=20))
def test_a_stat_reads_back_exactly_as_it_was_written(stat):
    assert decode_stat(encode_stat(stat)) == tuple(stat)


@given(st.text(max_size=300))
def test_any_stored_text_reads_as_a_stat_without_raising(stored):
    assert all(isinstance(s, FileStat) for s in decode_stat(stored))


@given(st.lists(st.builds(FileStat, path=paths, added=counts, removed=counts), max_size=10))
def test_an_older_consoles_text_rows_read_back_as_the_same_files(stat):
    old_row = "\n".join(f"{s.path} +{s.added} -{s.removed}" for s in stat)
    assert decode_stat(old_row) == tuple(stat)


def test_an_older_row_keeps_binary_files_and_paths_with_spaces():
    old_row = "src/my file.js +3 -1\nlogo.png +0 -0 (binary)\nnot a stat line"
    assert decode_stat(old_row) == (
        FileStat("src/my file.js", 3, 1),
        FileStat("logo.png", 0, 0, binary=True),
    )


def test_entries_that_are_not_file_stats_are_left_out_and_the_rest_kept():
    good = {"path": "a.js", "added": 1, "removed": 2, "binary": False, "old_path": None}
    stored = json.dumps(
        [
            good,
            "a.js +1 -2",
            {"path": "", "added": 1, "removed": 0},
            {"path": "b.js", "added": -1, "removed": 0},
            {"path": "c.js", "added": True, "removed": 0},
            {"path": "d.js", "added": 1, "removed": 0, "old_path": 7},
            {"path": "e.js", "added": 1, "removed": 0, "binary": "yes"},
            {"path": "f.js", "added": 4, "removed": 0},
        ]
    )
    assert decode_stat(stored) == (FileStat("a.js", 1, 2), FileStat("f.js", 4, 0))
    assert decode_stat(None) == decode_stat("") == decode_stat('{"path": "a.js"}') == ()


def test_a_line_names_a_rename_by_both_paths_and_a_binary_file_without_counts():
    assert FileStat("lib/users.js", 1, 0).line() == "lib/users.js +1 -0"
    assert FileStat("src/main.js", 2, 1, old_path="src/app.js").line() == (
        "src/app.js => src/main.js +2 -1"
    )
    assert FileStat("logo.png", 0, 0, binary=True).line() == "logo.png (binary)"
