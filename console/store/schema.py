"""The console database's schema and the mapping between its rows and console.models.

Migrations are ordered and append-only: version N is ``MIGRATIONS[N - 1]`` and a released one
is never edited, so every console file upgrades the same way. The row mappers live here
beside the columns they read, so a column added to a migration is mapped in one place.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import orjson

from agent.wire import iso
from console.fix.diffstat import decode_stat, encode_stat
from console.models import (
    AttemptRow,
    DecisionRow,
    ErrorRow,
    PullRequestRow,
    State,
    TestResultRow,
)
from console.store.backend import Row


def _state_check(states: str) -> str:
    return "CHECK (state IN ({}))".format(", ".join(f"'{s}'" for s in states.split()))


# The states each migration allows, spelled out: a released migration must not change
# when a State is added, so a new state comes with a migration that rebuilds the tables.
# PostgreSQL's migrations (console.store.pg_schema) allow the same states at each version.
STATES_1 = "new awaiting_approval fixing testing review pr_opened skipped failed interrupted"
STATES_5 = "new awaiting_approval fixing testing review pushed pr_opened skipped failed interrupted"
STATES_8 = f"{STATES_5} merged closed resolved regressed escalating"
_STATE_CHECK = _state_check(STATES_1)
_STATE_CHECK_5 = _state_check(STATES_5)
_STATE_CHECK_8 = _state_check(STATES_8)


def _errors_table(check: str, added: str = "") -> str:
    """The errors table's columns as migration 1 made them, with a state CHECK; a rebuild
    passes the columns later migrations ``added`` (each ending in a comma)."""
    return f"""        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        error_type TEXT NOT NULL,
        message TEXT NOT NULL,
        stack TEXT NOT NULL,
        route TEXT,
        severity TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new' {check},
        current_attempt_id INTEGER REFERENCES attempts(id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        {added}UNIQUE (service, fingerprint)"""


def _rebuild_errors(name: str, check: str, added: str) -> str:
    """SQL that rebuilds the errors table as ``name`` with a new state CHECK and the columns
    ``added``, keeping every row (SQLite cannot alter a CHECK)."""
    return f"""
    CREATE TABLE {name} (
{_errors_table(check, added=added)}
    );
    INSERT INTO {name} (id, service, fingerprint, error_type, message, stack, route,
        severity, count, first_seen, last_seen, state, current_attempt_id, created_at,
        updated_at, in_app)
    SELECT id, service, fingerprint, error_type, message, stack, route, severity, count,
        first_seen, last_seen, state, current_attempt_id, created_at, updated_at, in_app
    FROM errors;
    DROP TABLE errors;
    ALTER TABLE {name} RENAME TO errors;
    CREATE INDEX errors_state ON errors(state);
    CREATE INDEX errors_last_seen ON errors(last_seen);"""


def _attempts_table(check: str) -> str:
    """The attempts table's columns as migration 1 made them, with a state CHECK."""
    return f"""        id INTEGER PRIMARY KEY,
        error_id INTEGER NOT NULL REFERENCES errors(id),
        state TEXT NOT NULL {check},
        branch TEXT,
        worktree TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        reason TEXT,
        claude_cost_usd REAL,
        claude_turns INTEGER,
        claude_duration_ms INTEGER,
        claude_summary TEXT,
        extra_instruction TEXT,
        test_exit_code INTEGER,
        test_output_tail TEXT,
        diff TEXT,
        diff_stat TEXT,
        pr_url TEXT,
        pr_number INTEGER"""


# Ordered schema migrations; version N is MIGRATIONS[N - 1]. Append, never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        instance TEXT NOT NULL DEFAULT '',
        last_seq INTEGER NOT NULL DEFAULT 0,
        last_seen_at TEXT,
        status TEXT NOT NULL DEFAULT 'unknown',
        detail TEXT
    );
    CREATE TABLE errors (
{_errors_table(_STATE_CHECK)}
    );
    CREATE INDEX errors_state ON errors(state);
    CREATE INDEX errors_last_seen ON errors(last_seen);
    CREATE TABLE host_counts (
        error_id INTEGER NOT NULL REFERENCES errors(id),
        host TEXT NOT NULL,
        instance TEXT NOT NULL DEFAULT '',
        count INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        PRIMARY KEY (error_id, host, instance)
    ) WITHOUT ROWID;
    CREATE TABLE occurrences (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        instance TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL,
        error_id INTEGER NOT NULL REFERENCES errors(id),
        type TEXT NOT NULL CHECK (type IN ('error', 'update')),
        count INTEGER NOT NULL,
        received_at TEXT NOT NULL,
        raw TEXT NOT NULL,
        UNIQUE (host, instance, seq)
    );
    CREATE INDEX occurrences_error ON occurrences(error_id);
    CREATE TABLE attempts (
{_attempts_table(_STATE_CHECK)}
    );
    CREATE INDEX attempts_error ON attempts(error_id);
    CREATE INDEX attempts_state ON attempts(state);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        error_id INTEGER NOT NULL REFERENCES errors(id),
        attempt_id INTEGER REFERENCES attempts(id),
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX decisions_error ON decisions(error_id);
    CREATE TABLE transcripts (
        attempt_id INTEGER NOT NULL REFERENCES attempts(id),
        seq INTEGER NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (attempt_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE test_results (
        id INTEGER PRIMARY KEY,
        attempt_id INTEGER NOT NULL REFERENCES attempts(id),
        command TEXT NOT NULL,
        exit_code INTEGER,
        timed_out INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL,
        output_tail TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX test_results_attempt ON test_results(attempt_id);
    CREATE TABLE prs (
        id INTEGER PRIMARY KEY,
        attempt_id INTEGER NOT NULL REFERENCES attempts(id),
        branch TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        number INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 2: what Claude Code was refused during an attempt (JSON list, see models.Denial).
    "ALTER TABLE attempts ADD COLUMN claude_denials TEXT;",
    # 3: per stack line, whether the agent saw an app frame (JSON list; see agent.wire).
    "ALTER TABLE errors ADD COLUMN in_app TEXT;",
    # 4: an attempt's verdict (JSON, see console.fix.verdict) and its rounds: one Claude run
    # each, the first on the prompt and each later one on the failing test output.
    """
    ALTER TABLE attempts ADD COLUMN verdict TEXT;
    CREATE TABLE attempt_rounds (
        attempt_id INTEGER NOT NULL REFERENCES attempts(id),
        round INTEGER NOT NULL,
        turns INTEGER,
        cost_usd REAL,
        tests_passed INTEGER,
        at TEXT NOT NULL,
        PRIMARY KEY (attempt_id, round)
    );
    """,
    # 5: the 'pushed' state (branch pushed, no pull request). SQLite cannot alter a CHECK,
    # so errors and attempts are rebuilt; an attempt recorded as pr_opened without a PR
    # URL only had its branch pushed, and it and its error become 'pushed'.
    f"""{_rebuild_errors("errors_v5", _STATE_CHECK_5, "in_app TEXT, ")}
    CREATE TABLE attempts_v5 (
{_attempts_table(_STATE_CHECK_5)},
        claude_denials TEXT,
        verdict TEXT
    );
    INSERT INTO attempts_v5 SELECT id, error_id, state, branch, worktree, started_at,
        finished_at, reason, claude_cost_usd, claude_turns, claude_duration_ms,
        claude_summary, extra_instruction, test_exit_code, test_output_tail, diff,
        diff_stat, pr_url, pr_number, claude_denials, verdict FROM attempts;
    DROP TABLE attempts;
    ALTER TABLE attempts_v5 RENAME TO attempts;
    CREATE INDEX attempts_error ON attempts(error_id);
    CREATE INDEX attempts_state ON attempts(state);
    UPDATE attempts SET state = 'pushed' WHERE state = 'pr_opened' AND pr_url IS NULL;
    UPDATE errors SET state = 'pushed' WHERE state = 'pr_opened' AND current_attempt_id IN
        (SELECT id FROM attempts WHERE state = 'pushed');
    UPDATE decisions SET to_state = 'pushed', action = 'push'
        WHERE to_state = 'pr_opened' AND attempt_id IN
        (SELECT id FROM attempts WHERE state = 'pushed');
    """,
    # 6: attempts numbered per error (the first attempt on an error is 1, whatever the
    # global id), numbered in id order for the attempts already there.
    """
    ALTER TABLE attempts ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
    UPDATE attempts SET number = (
        SELECT COUNT(*) FROM attempts AS earlier
        WHERE earlier.error_id = attempts.error_id AND earlier.id <= attempts.id
    );
    """,
    # 7: who runs an attempt: the console's OS user@host and its store
    # session, so consoles sharing a PostgreSQL store recover only a runner that went away.
    "ALTER TABLE attempts ADD COLUMN runner TEXT; "
    "ALTER TABLE attempts ADD COLUMN runner_session TEXT;",
    # 8: an error's life after its PR (merged, closed, resolved, regressed, escalating) and
    # its mute; what polling GitHub last said about each PR (with the ETag it is asked
    # with), revert PRs; and the service starts the agents saw. errors is rebuilt for the
    # new states' CHECK; attempts never enter them.
    f"""{
        _rebuild_errors(
            "errors_v8",
            _STATE_CHECK_8,
            "in_app TEXT, resolved_at TEXT, regressed_at TEXT, muted_until TEXT, "
            "muted_until_count INTEGER, ",
        )
    }
    ALTER TABLE prs ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
    ALTER TABLE prs ADD COLUMN etag TEXT;
    ALTER TABLE prs ADD COLUMN merged_at TEXT;
    ALTER TABLE prs ADD COLUMN closed_at TEXT;
    ALTER TABLE prs ADD COLUMN merge_sha TEXT;
    ALTER TABLE prs ADD COLUMN merged_by TEXT;
    ALTER TABLE prs ADD COLUMN checked_at TEXT;
    ALTER TABLE prs ADD COLUMN kind TEXT NOT NULL DEFAULT 'fix';
    CREATE TABLE starts (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        instance TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL,
        service TEXT NOT NULL,
        at TEXT NOT NULL,
        line TEXT NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (host, instance, seq)
    );
    CREATE INDEX starts_service ON starts(service, at);
    """,
)

# Attempt columns a caller may set through update_attempt() or alongside a transition.
ATTEMPT_FIELDS: frozenset[str] = frozenset(
    {
        "branch",
        "worktree",
        "claude_cost_usd",
        "claude_turns",
        "claude_duration_ms",
        "claude_summary",
        "extra_instruction",
        "test_exit_code",
        "test_output_tail",
        "diff",
        "diff_stat",
        "pr_url",
        "pr_number",
        "reason",
        "claude_denials",
        "verdict",
    }
)

ERROR_COLUMNS = (
    "id, service, fingerprint, error_type, message, stack, route, severity, count, "
    "first_seen, last_seen, state, created_at, updated_at, current_attempt_id, in_app, "
    "resolved_at, regressed_at, muted_until, muted_until_count"
)
PR_COLUMNS = (
    "id, attempt_id, branch, url, number, created_at, state, etag, merged_at, closed_at, "
    "merge_sha, merged_by, checked_at, kind"
)
# Error columns the lifecycle writes alongside a transition (Store.transition's ``marks``).
ERROR_MARKS: frozenset[str] = frozenset(
    {"resolved_at", "regressed_at", "muted_until", "muted_until_count"}
)
ATTEMPT_COLUMNS = (
    "id, error_id, state, branch, worktree, started_at, finished_at, reason, claude_cost_usd, "
    "claude_turns, claude_duration_ms, claude_summary, extra_instruction, test_exit_code, "
    "test_output_tail, diff, diff_stat, pr_url, pr_number, claude_denials, verdict, number, "
    "runner, runner_session"
)
# (service, fingerprint) pairs or ids per IN (...), well under SQLite's variable cap.
KEYS_PER_QUERY = 400


class StoreError(RuntimeError):
    """The database cannot be used (not ours, too new, unreadable); the message says why."""


class HoldLost(StoreError):
    """A write made for a role (ingesting a host's events) after the role was lost: it is
    rolled back, and whoever holds the role now stores those events instead."""


class NotFound(LookupError):
    """An id that names no row; a caller bug or a row from another database."""


def now_iso() -> str:
    """The store's timestamp: the wire's time form (:func:`agent.wire.iso`), sortable as text."""
    return iso(time.time())


def error_row(row: Row | dict[str, Any], hosts: dict[str, int]) -> ErrorRow:
    """An errors row (all of :data:`ERROR_COLUMNS`, by name) as an :class:`ErrorRow`."""
    return ErrorRow(
        id=row["id"],
        service=row["service"],
        fingerprint=row["fingerprint"],
        error_type=row["error_type"],
        message=row["message"],
        stack=orjson.loads(row["stack"]),
        route=row["route"],
        severity=row["severity"],
        count=row["count"],
        hosts=hosts,
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        state=State(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        current_attempt_id=row["current_attempt_id"],
        in_app=orjson.loads(row["in_app"]) if row["in_app"] else [],
        resolved_at=row["resolved_at"],
        regressed_at=row["regressed_at"],
        muted_until=row["muted_until"],
        muted_until_count=row["muted_until_count"],
    )


def attempt_row(row: Row) -> AttemptRow:
    values = dict(zip(row.keys(), tuple(row), strict=True))
    values["state"] = State(values["state"])
    values["diff_stat"] = decode_stat(values["diff_stat"])
    return AttemptRow(**values)


def pr_row(row: Row) -> PullRequestRow:
    return PullRequestRow(**dict(zip(row.keys(), tuple(row), strict=True)))


def test_result_row(r: Row) -> TestResultRow:
    return TestResultRow(
        id=r["id"],
        attempt_id=r["attempt_id"],
        command=r["command"],
        exit_code=r["exit_code"],
        timed_out=bool(r["timed_out"]),
        duration_ms=r["duration_ms"],
        output_tail=r["output_tail"],
        at=r["at"],
    )


def decision_row(row: Row) -> DecisionRow:
    values = dict(zip(row.keys(), tuple(row), strict=True))
    values["from_state"] = State(values["from_state"])
    values["to_state"] = State(values["to_state"])
    return DecisionRow(**values)


def attempt_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Attempt fields a caller gave, checked and as column values (a diff stat as JSON)."""
    unknown = sorted(set(fields) - ATTEMPT_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown attempt field(s) {', '.join(unknown)}; "
            f"settable: {', '.join(sorted(ATTEMPT_FIELDS))}"
        )
    if "diff_stat" in fields:
        return {**fields, "diff_stat": encode_stat(fields["diff_stat"])}
    return fields


def states_of(states: State | Collection[State] | None) -> list[str] | None:
    if states is None:
        return None
    if isinstance(states, str):
        return [State(states).value]
    return [State(s).value for s in states]


def placeholders(n: int) -> str:
    return ", ".join("?" * n)


def errors_by_id_sql(n: int) -> str:
    """The errors rows (all of :data:`ERROR_COLUMNS`) of ``n`` ids."""
    return f"SELECT {ERROR_COLUMNS} FROM errors WHERE id IN ({placeholders(n)})"


def host_totals_sql(n: int) -> str:
    """Each of ``n`` errors' count per host: (error_id, host, count) rows."""
    return (
        f"SELECT error_id, host, SUM(count) FROM host_counts "
        f"WHERE error_id IN ({placeholders(n)}) GROUP BY error_id, host"
    )


def fold_host_totals(
    rows: Iterable[Row] | Iterable[Sequence[Any]], into: dict[int, dict[str, int]]
) -> dict[int, dict[str, int]]:
    """:func:`host_totals_sql` rows folded into ``into`` by error id, then host."""
    for error_id, host, count in rows:
        into.setdefault(error_id, {})[host] = int(count)
    return into
