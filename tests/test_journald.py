"""The journald source: real journal files (systemd-journal-remote), the real journalctl,
real `autofix-agent run` and `stream` processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import ConfigError, parse_config
from agent.journald import entry_of, journalctl_argv
from agent.wire import ErrorEvent
from tests.agent_process import AGENT, group_counts, read_stream, wait_for, wait_for_exact_counts
from tests.conftest import require_tool
from tests.journal_files import append, trace_lines, unit_entries

UNIT = "billing.service"


def journald_config(tmp_path: Path, journal: Path, *, from_beginning: bool = True) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\nhost = "test-host"\n'
        "[detection]\nsettle_seconds = 0.3\nmax_settle_seconds = 5\nupdate_seconds = 0.3\n"
        'min_severity = "low"\n[stream]\nheartbeat_seconds = 0.5\n'
        f'[[sources]]\nservice = "billing"\nfrom_beginning = {str(from_beginning).lower()}\n'
        f'journald = {{ units = ["{UNIT}"], files = ["{journal}"], '
        f'journalctl = "{require_tool("journalctl")}" }}\n'
    )
    return path


@pytest.fixture
def journal_remote() -> str:
    require_tool("journalctl")
    return require_tool("systemd-journal-remote")


# --- config --------------------------------------------------------------------------


def test_a_journald_source_is_configured_by_units_identifiers_matches_and_files() -> None:
    config = parse_config(
        {
            "sources": [
                {
                    "service": "billing",
                    "journald": {
                        "units": ["billing.service"],
                        "identifiers": "billing",
                        "matches": ["PRIORITY=3"],
                        "directory": "/var/log/journal/remote",
                    },
                }
            ]
        }
    )
    journald = config.sources[0].journald
    assert journald is not None
    argv = journalctl_argv(journald, cursor="s=1;i=2", from_beginning=False)
    assert argv[0] == "journalctl" and "--follow" in argv and "--output=json" in argv
    assert "--after-cursor=s=1;i=2" in argv and "--lines=all" in argv
    assert "--unit=billing.service" in argv and "--identifier=billing" in argv
    assert "--directory=/var/log/journal/remote" in argv and argv[-1] == "PRIORITY=3"
    first = journalctl_argv(journald, cursor=None, from_beginning=False)
    assert "--lines=0" in first and not any(a.startswith("--after-cursor") for a in first)


@pytest.mark.parametrize(
    ("journald", "named"),
    [
        ({"unit": ["x"]}, "sources[0].journald.unit: unknown key"),
        ({"units": [3]}, "sources[0].journald.units[0]: must be a string"),
        ({"units": [""]}, "sources[0].journald.units[0]: must not be empty"),
        ({"matches": ["PRIORITY"]}, "sources[0].journald.matches[0]: must look like FIELD=value"),
        ({"files": ["a"], "directory": "b"}, "sources[0].journald.directory: give either"),
        ({"journalctl": ""}, "sources[0].journald.journalctl: must not be empty"),
        ("billing.service", "sources[0].journald: must be a table"),
    ],
)
def test_a_bad_journald_key_is_named(journald: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_config({"sources": [{"service": "billing", "journald": journald}]})


def test_a_source_is_either_files_a_command_or_journald() -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.journald: a source has one of"):
        parse_config({"sources": [{"service": "b", "paths": ["/x"], "journald": {}}]})


def test_each_entry_goes_to_the_parser_as_is_with_its_cursor_read_from_the_top_level() -> None:
    line = b'{"MESSAGE":"logged \\"__CURSOR\\":\\"fake\\"","__CURSOR":"s=1;i=2;b=3"}'
    entry = entry_of(line)
    assert entry.data == line + b"\n" and entry.cursor == "s=1;i=2;b=3"
    assert entry_of(b'{"MESSAGE":"no cursor here"}').cursor is None


# --- the real thing ------------------------------------------------------------------


def test_errors_in_journal_entries_arrive_on_the_stream_and_follow_live(
    tmp_path: Path, agent_factory, journal_remote: str
) -> None:
    journal = tmp_path / "billing.journal"
    entries = []
    for i in range(3):
        entries += unit_entries(UNIT, [f"GET /orders/{i} 200", *trace_lines("charge", i)])
    # Another unit's errors are not this source's.
    entries += unit_entries("other.service", trace_lines("elsewhere", 0))
    # Bytes that are not UTF-8 come back from journalctl as an array of numbers.
    # ... and the entry's own time is the occurrence's time.
    card = unit_entries(UNIT, [b"Error: card reader sent \xff\xfe garbage"])
    card[0]["__REALTIME_TIMESTAMP"] = str(1767323045 * 10**6)  # 2026-01-02T03:04:05Z
    entries += card
    # The line that once blinded the agent, inside a journal entry.
    entries += unit_entries(
        UNIT, ['{"level":50,"time":1795428000000,"msg":"comment rejected: \\ud83d"}']
    )
    append(journal_remote, journal, entries)
    config = journald_config(tmp_path, journal)
    check = subprocess.run(
        [*AGENT, "check", "--config", str(config)], capture_output=True, text=True
    )
    assert "ok   sources[0] billing: journald -u billing.service" in check.stdout, check.stdout
    agent = agent_factory(config, tmp_path / "agent.err")
    agent.start()
    db = tmp_path / "state" / "agent.db"
    wait_for(
        lambda: db.exists() and group_counts(db).get("charge") == 3,
        30,
        f"counts {group_counts(db) if db.exists() else None}; agent said: {agent.said()}",
    )
    lines = read_stream(config, 0, until=20, want=3)
    errors = {e.message: e for e in lines if isinstance(e, ErrorEvent)}
    charge = next(e for m, e in errors.items() if m.startswith("charge failed"))
    assert charge.error_type == "TypeError" and charge.count == 3 and charge.service == "billing"
    assert any("at charge (/srv/billing/src/charge.js" in line for line in charge.stack)
    card_event = next(e for m, e in errors.items() if "card reader sent" in m)
    assert "\ufffd" in card_event.message
    assert card_event.first_seen.startswith("2026-01-02T03:04:05"), card_event.first_seen
    assert any(m == "comment rejected: \ufffd" for m in errors), list(errors)
    assert not any("elsewhere" in m for m in errors)
    # Entries appended while the agent follows the journal.
    append(journal_remote, journal, unit_entries(UNIT, trace_lines("charge", 7)))
    wait_for(lambda: group_counts(db).get("charge") == 4, 30, agent.said())
    # A restart resumes after the stored cursor: nothing counted twice, new entries read.
    agent.stop()
    append(journal_remote, journal, unit_entries(UNIT, trace_lines("refund", 1)))
    agent.start()
    wait_for(lambda: group_counts(db).get("refund") == 1, 30, agent.said())
    time.sleep(1.0)
    assert group_counts(db)["charge"] == 4
    assert agent.alive() and "Traceback" not in agent.said()


def test_a_first_start_follows_from_the_newest_entry_and_keeps_its_place_while_down(
    tmp_path: Path, agent_factory, journal_remote: str
) -> None:
    journal = tmp_path / "billing.journal"
    append(journal_remote, journal, unit_entries(UNIT, trace_lines("old", 0)))
    config = journald_config(tmp_path, journal, from_beginning=False)
    agent = agent_factory(config, tmp_path / "agent.err")
    agent.start()
    db = tmp_path / "state" / "agent.db"
    wait_for(lambda: db.exists() and _cursor_stored(db), 30, agent.said())
    agent.stop()
    # Written while the agent is down, after its first start: read at the next start.
    append(journal_remote, journal, unit_entries(UNIT, trace_lines("while_down", 0)))
    agent.start()
    wait_for(lambda: group_counts(db).get("while_down") == 1, 30, agent.said())
    assert "old" not in group_counts(db), "entries from before the first start are history"


def _cursor_stored(db: Path) -> bool:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM cursors").fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


KINDS = 4


def _writer(journal_remote: str, journal: Path, batches: int, per_batch: int) -> str:
    """A separate process appending batches of traces, one entry per line, to the journal."""
    return f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from tests.journal_files import append, trace_lines, unit_entries
from tests.test_journald import trace_lines
n = 0
for b in range({batches}):
    entries = []
    for _ in range({per_batch}):
        name = "handler" + "abcd"[n % {KINDS}]
        entries += unit_entries({UNIT!r}, ["INFO request ok", *trace_lines(name, n)])
        n += 1
    append({journal_remote!r}, {str(journal)!r}, entries)
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_neither_loses_nor_double_counts_journal_entries(
    tmp_path: Path, agent_factory, journal_remote: str
) -> None:
    journal = tmp_path / "billing.journal"
    append(journal_remote, journal, unit_entries(UNIT, ["INFO starting"]))
    config = journald_config(tmp_path, journal)
    batches, per_batch = 120, 8
    writer = subprocess.Popen(
        [sys.executable, "-c", _writer(journal_remote, journal, batches, per_batch)]
    )
    agent = agent_factory(config, tmp_path / "agent.err")
    kills = agent.kill9_while(writer, seed=5, pause=1.0)
    assert writer.wait() == 0
    total = batches * per_batch
    expected = {f"handler{k}": total // KINDS for k in "abcd"}
    wait_for_exact_counts(tmp_path / "state" / "agent.db", expected)
    assert kills >= 3
    assert "Traceback" not in agent.said()
