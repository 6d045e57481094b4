"""When ``autofix-agent stream`` looks at the database: on a notice, and again soon after."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent import stream


def test_after_a_notice_the_stream_looks_again_without_waiting_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's last write of a commit sends the notice before the commit is visible, so a
    # look right after the notice can miss it; the look after that must not wait a tick.
    monkeypatch.setattr(stream, "GONE_CHECK_SECONDS", 60.0)
    changes = stream._Changes(tmp_path, threading.Event(), tick=60.0)
    changes.wait(60.0)  # starts watching (a look at the database follows at once)
    (tmp_path / "agent.db-wal").write_bytes(b"frame")
    changes.wait(60.0)  # the notice
    started = time.monotonic()
    changes.wait(60.0)  # nothing more is written: only the second look ends this wait
    assert time.monotonic() - started < 30


def test_without_a_notice_the_stream_sleeps_until_its_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "GONE_CHECK_SECONDS", 0.3)
    changes = stream._Changes(tmp_path, threading.Event(), tick=60.0)
    changes.wait(60.0)
    started = time.monotonic()
    for _ in range(3):
        changes.wait(60.0)
    assert time.monotonic() - started >= 0.9
