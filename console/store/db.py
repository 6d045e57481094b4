"""The Store API: relayed errors, fix attempts, decisions, on SQLite or PostgreSQL.

Why it is shaped this way:

- Every query is written here once, against :class:`console.store.backend.Backend`; the
  SQLite file (:mod:`console.store.sqlite`) and the team's PostgreSQL server
  (:mod:`console.store.postgres`) differ only in transactions and a few SQL fragments.
- Every state change is one write transaction that reads the row it changes under a lock
  (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's ``SELECT ... FOR UPDATE``) and then does a
  compare-and-set (``UPDATE ... WHERE state = expected``), so it cannot race another
  connection, process or console: a keyboard approval and a Telegram approval at the same
  moment produce exactly one action.
- Transactions run as a task shielded from cancellation, so a cancelled caller never leaves
  a half-written transaction or an open one on a shared connection.
- Ingest, the hot path, lives in :mod:`console.store.ingest` and runs on a thread of its
  own with its own connection, so the UI's loop never waits on it. Migrations are applied
  at open by each backend.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agent.wire import ErrorEvent, Start
from console.history import History, HistoryQuery
from console.models import (
    FINISHED_STATES,
    RUNNING_STATES,
    TRANSITIONS,
    AttemptRow,
    DecisionRow,
    ErrorRow,
    HostRow,
    IngestOutcome,
    IngestResult,
    PullRequestRow,
    Recurrence,
    RoundRow,
    StartRow,
    State,
    TestResultRow,
    action_name,
    epoch,
)
from console.storable import Received
from console.store.backend import Backend, Hold, Row, Tx, host_role
from console.store.connect import open_backend
from console.store.history import read_history
from console.store.ingest import ingest as ingest_batch
from console.store.ingest import ingest_counted
from console.store.schema import (
    ATTEMPT_COLUMNS,
    ATTEMPT_FIELDS,
    ERROR_COLUMNS,
    ERROR_MARKS,
    KEYS_PER_QUERY,
    PR_COLUMNS,
    NotFound,
    StoreError,
    attempt_columns,
    attempt_row,
    decision_row,
    error_row,
    errors_by_id_sql,
    fold_host_totals,
    host_totals_sql,
    now_iso,
    placeholders,
    pr_row,
    states_of,
    test_result_row,
)
from console.store.sqlite import SqliteBackend

__all__ = ["ATTEMPT_FIELDS", "RECOVER_REASON", "RETRY_REASON", "NotFound", "Store", "StoreError"]

T = TypeVar("T")

RECOVER_REASON = "console stopped during the attempt"
RETRY_REASON = "replaced by a retry"


def default_runner() -> str:
    """The OS user and host of this console, as an attempt's runner and a decision's actor."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER variable (a bare container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _marks(marks: dict[str, Any] | None) -> dict[str, Any] | None:
    """Lifecycle columns of an error a transition writes, checked against ERROR_MARKS."""
    unknown = sorted(set(marks or {}) - ERROR_MARKS)
    if unknown:
        raise ValueError(f"unknown error mark(s) {', '.join(unknown)}")
    return marks


class Store:
    """One console store on a backend. Open with ``await Store.open(where)``; one per process.

    ``where`` is a file path (SQLite) or a ``postgresql://`` DSN (see :func:`open_backend`).
    """

    def __init__(self, backend: Backend, runner: str | None = None) -> None:
        self._backend = backend
        self.where = backend.where
        # Who this store's attempts are run by, and this open store's own session id.
        self.runner = runner or default_runner()
        self.session = backend.session
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        where: str | Path,
        *,
        password: str | None = None,
        migrations: Sequence[str] | None = None,
        runner: str | None = None,
    ) -> Store:
        """Open (creating if needed) and migrate the store; refuse one we cannot use.

        ``runner`` names who runs this store's attempts (default: the OS user@host).
        ``migrations`` exists so tests can exercise an upgrade; callers use the default.
        """
        backend = await open_backend(where, password=password, migrations=migrations)
        return cls(backend, runner)

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def path(self) -> Path:
        """The SQLite file (tests read it directly); a PostgreSQL store has none."""
        if isinstance(self._backend, SqliteBackend):
            return self._backend.path
        raise AttributeError(f"{self.where}: a PostgreSQL store has no file")

    async def schema_version(self) -> int:
        """The highest migration applied to this store (0 for a new one)."""
        return await self._backend.schema_version()

    async def close(self) -> None:
        """Let transactions already started finish, then close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._backend.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- transaction plumbing -------------------------------------------------------------

    async def _write(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one write transaction, safe against caller cancellation."""
        return await self._shielded(lambda: self._backend.write(body))

    async def _shielded(self, run: Callable[[], Awaitable[T]]) -> T:
        """Run as a task shielded from cancellation, so a cancelled caller never leaves a
        half-written transaction or an open one on a shared connection."""
        if self._closed:
            raise StoreError(f"{self.where}: store is closed")
        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await self._reads(lambda tx: tx.fetch(sql, tuple(params)))

    async def _reads(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        if self._closed:
            raise StoreError(f"{self.where}: store is closed")
        return await self._backend.read(body)

    # --- hosts and ingest -----------------------------------------------------------------

    async def ingest(
        self, host: str, events: Sequence[ErrorEvent | Received]
    ) -> list[IngestResult]:
        """Store a batch of relayed events from one host in one transaction.

        Idempotent on (host, instance, seq), so the relay can resend after a reconnect. The
        result, one per event in order, tells the engine which errors are new, and which
        events could not be stored (``refused`` says which and why, naming host and seq).
        A bad event never costs the rest of its batch: the others are stored, so the
        host's position never moves past a valid event that was not stored.

        Each occurrence keeps its wire line: the line a link received (a ``Received``), or
        for an event built in this process, its encoding.
        """
        return await self._shielded(lambda: self._backend.ingest(ingest_batch, host, events))

    async def ingest_counted(
        self, host: str, events: Sequence[ErrorEvent | Received]
    ) -> IngestOutcome:
        """:meth:`ingest`, with the errors the batch counted again as they are after it
        (read on the ingest connection, so publishing them costs the loop no read)."""
        return await self._shielded(lambda: self._backend.ingest(ingest_counted, host, events))

    async def last_seq(self, host: str) -> int:
        """The highest seq stored for the host's current agent instance: resume after it."""
        rows = await self._read("SELECT last_seq FROM hosts WHERE name = ?", (host,))
        return int(rows[0][0]) if rows else 0

    async def set_host_instance(self, host: str, instance: str) -> int:
        """Record the agent instance named in a ``hello`` and return the seq to resume after.

        A new instance means the agent's state was wiped and its seqs restarted from 1, so
        the position starts over instead of ignoring the new events as duplicates. An empty
        instance (an agent too old to send one) keeps the current position.
        """

        async def body(db: Tx) -> int:
            rows = list(
                await db.fetch("SELECT instance, last_seq FROM hosts WHERE name = ?", (host,))
            )
            if not rows:
                await db.execute(
                    "INSERT INTO hosts (name, instance) VALUES (?, ?)", (host, instance)
                )
                return 0
            current, last = rows[0]
            if not instance or instance == current:
                return int(last)
            top = await db.fetch(
                "SELECT COALESCE(MAX(seq), 0) FROM occurrences WHERE host = ? AND instance = ?",
                (host, instance),
            )
            resume = int(next(iter(top))[0])
            await db.execute(
                "UPDATE hosts SET instance = ?, last_seq = ? WHERE name = ?",
                (instance, resume, host),
            )
            return resume

        return await self._write(body)

    async def set_host_status(self, host: str, status: str, detail: str | None = None) -> None:
        """Remember the link state (``connected``, ``disconnected``...) the UI shows per host."""

        async def body(db: Tx) -> None:
            await db.execute(
                "INSERT INTO hosts (name, status, detail) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET status = excluded.status, "
                "detail = excluded.detail",
                (host, status, detail),
            )

        await self._write(body)

    async def touch_host(self, host: str) -> None:
        """Note that the host spoke (a heartbeat), so the UI can show how fresh the link is."""
        now = now_iso()

        async def body(db: Tx) -> None:
            await db.execute(
                "INSERT INTO hosts (name, last_seen_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_seen_at = excluded.last_seen_at",
                (host, now),
            )

        await self._write(body)

    async def hosts(self) -> list[HostRow]:
        rows = await self._read(
            "SELECT name, instance, last_seq, last_seen_at, status, detail FROM hosts ORDER BY name"
        )
        return [HostRow(*tuple(r)) for r in rows]

    # --- state changes --------------------------------------------------------------------

    async def transition(
        self,
        error_id: int,
        expected: State,
        new: State,
        *,
        attempt_id: int | None = None,
        reason: str | None = None,
        actor: str | None = None,
        marks: dict[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Move an error (and its current attempt) from ``expected`` to ``new``, atomically.

        Returns False when the error was not in ``expected`` -- someone else acted first --
        so two people approving at once produce one action. ``attempt_id`` additionally
        requires that attempt to be the error's current one (a stale worker cannot move a
        newer attempt). ``fields`` are attempt columns written in the same transaction.
        Entering ``fixing`` starts an attempt, which is :meth:`create_attempt`'s job.
        ``marks`` are error columns of the lifecycle (``resolved_at``...) written with it.
        """
        expected, new = State(expected), State(new)
        if new not in TRANSITIONS[expected]:
            raise ValueError(f"transition {expected.value} -> {new.value} is not allowed")
        if new is State.FIXING:
            raise ValueError("entering fixing starts an attempt: use create_attempt()")
        fields = attempt_columns(fields)
        error_marks = _marks(marks)

        async def body(db: Tx) -> bool:
            return await self._transition(
                db, error_id, expected, new, attempt_id, reason, actor, fields, error_marks
            )

        return await self._write(body)

    async def transition_attempt(
        self,
        attempt_id: int,
        expected: State,
        new: State,
        *,
        reason: str | None = None,
        actor: str | None = None,
        **fields: Any,
    ) -> bool:
        """:meth:`transition` addressed by attempt, for the worker that runs the attempt."""
        rows = await self._read("SELECT error_id FROM attempts WHERE id = ?", (attempt_id,))
        if not rows:
            raise NotFound(f"no attempt {attempt_id}")
        return await self.transition(
            rows[0][0], expected, new, attempt_id=attempt_id, reason=reason, actor=actor, **fields
        )

    async def _transition(
        self,
        db: Tx,
        error_id: int,
        expected: State,
        new: State,
        attempt_id: int | None,
        reason: str | None,
        actor: str | None,
        fields: dict[str, Any],
        marks: dict[str, Any] | None = None,
    ) -> bool:
        rows = await db.fetch(
            "SELECT state, current_attempt_id FROM errors WHERE id = ?"
            + self._backend.dialect.lock_row,
            (error_id,),
        )
        if not rows:
            raise NotFound(f"no error {error_id}")
        state, current = rows[0]
        if state != expected.value:
            return False
        if attempt_id is not None and attempt_id != current:
            return False
        now = now_iso()
        marked = marks or {}
        changed = await db.execute(
            "UPDATE errors SET state = ?, updated_at = ?"
            + (", current_attempt_id = NULL" if new is State.AWAITING_APPROVAL else "")
            + "".join(f", {name} = ?" for name in marked)
            + " WHERE id = ? AND state = ?",
            (new.value, now, *marked.values(), error_id, expected.value),
        )
        if changed != 1:
            return False
        moved_attempt: int | None = None
        if current is not None and expected in (*RUNNING_STATES, State.REVIEW):
            sets = ["state = ?", "reason = COALESCE(?, reason)"]
            params: list[Any] = [new.value, reason]
            if new in FINISHED_STATES:
                sets.append("finished_at = ?")
                params.append(now)
            for name, value in fields.items():
                sets.append(f"{name} = ?")
                params.append(value)
            changed = await db.execute(
                f"UPDATE attempts SET {', '.join(sets)} WHERE id = ? AND state = ?",
                (*params, current, expected.value),
            )
            if changed == 1:
                moved_attempt = current
        if fields and moved_attempt is None:
            raise ValueError(
                f"error {error_id}: fields {', '.join(sorted(fields))} need a current attempt "
                f"in {expected.value}"
            )
        if actor is not None:
            await self._decide(db, error_id, moved_attempt or current, expected, new, actor, reason)
        return True

    async def _decide(
        self,
        db: Tx,
        error_id: int,
        attempt_id: int | None,
        old: State,
        new: State,
        actor: str,
        reason: str | None,
        *,
        action: str | None = None,
    ) -> None:
        await db.execute(
            "INSERT INTO decisions (error_id, attempt_id, action, actor, from_state, to_state, "
            "reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                error_id,
                attempt_id,
                action or action_name(old, new),
                actor,
                old.value,
                new.value,
                reason,
                now_iso(),
            ),
        )

    async def note_decision(
        self,
        error_id: int,
        action: str,
        actor: str,
        reason: str | None = None,
        *,
        attempt_id: int | None = None,
        marks: dict[str, Any] | None = None,
    ) -> None:
        """Record a decision that leaves the error's state as it is (an auto-merge stopped,
        a service's auto-merge paused, a mute, a revert PR), about ``attempt_id`` or the
        error's current one, writing its lifecycle ``marks`` in the same transaction."""
        written = _marks(marks) or {}

        async def body(db: Tx) -> None:
            rows = await db.fetch(
                "SELECT state, current_attempt_id FROM errors WHERE id = ?"
                + self._backend.dialect.lock_row,
                (error_id,),
            )
            if not rows:
                raise NotFound(f"no error {error_id}")
            state = State(rows[0][0])
            about = attempt_id if attempt_id is not None else rows[0][1]
            await db.execute(
                "UPDATE errors SET updated_at = ?"
                + "".join(f", {name} = ?" for name in written)
                + " WHERE id = ?",
                (now_iso(), *written.values(), error_id),
            )
            await self._decide(db, error_id, about, state, state, actor, reason, action=action)

        await self._write(body)

    async def create_attempt(
        self,
        error_id: int,
        extra_instruction: str | None = None,
        *,
        expected: State | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> AttemptRow | None:
        """Start a fix attempt: the error moves to ``fixing`` and a new attempt row is its current.

        It is a compare-and-set on the error's state: ``expected`` if given, else any state
        from which ``fixing`` is allowed (approval, or retry after review/failed/interrupted).
        Returns None when the error is not in such a state -- someone else acted first. A
        retry from ``review`` closes the reviewed attempt as skipped.
        """
        if expected is not None and State.FIXING not in TRANSITIONS[State(expected)]:
            raise ValueError(f"transition {State(expected).value} -> fixing is not allowed")

        async def body(db: Tx) -> AttemptRow | None:
            rows = await self._claim(db, error_id)
            old, current = State(rows[0][0]), rows[0][1]
            if expected is not None and old is not State(expected):
                return None
            if State.FIXING not in TRANSITIONS[old]:
                return None
            now = now_iso()
            if old is State.REVIEW and current is not None:
                await db.execute(
                    "UPDATE attempts SET state = ?, reason = ?, finished_at = ? "
                    "WHERE id = ? AND state = ?",
                    (State.SKIPPED.value, RETRY_REASON, now, current, State.REVIEW.value),
                )
            attempt_rows = list(
                await db.fetch(
                    "INSERT INTO attempts (error_id, state, started_at, extra_instruction, "
                    "runner, runner_session, number) VALUES (?, ?, ?, ?, ?, ?, "
                    "(SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE error_id = ?)) "
                    f"RETURNING {ATTEMPT_COLUMNS}",
                    (
                        error_id,
                        State.FIXING.value,
                        now,
                        extra_instruction,
                        self.runner,
                        self.session,
                        error_id,
                    ),
                )
            )
            attempt = attempt_row(attempt_rows[0])
            changed = await db.execute(
                "UPDATE errors SET state = ?, current_attempt_id = ?, updated_at = ? "
                "WHERE id = ? AND state = ?",
                (State.FIXING.value, attempt.id, now, error_id, old.value),
            )
            if changed != 1:  # cannot happen under the write lock; never half-apply
                raise StoreError(f"error {error_id} changed state inside a transaction")
            if actor is not None:
                await self._decide(db, error_id, attempt.id, old, State.FIXING, actor, reason)
            return attempt

        return await self._write(body)

    async def _claim(self, db: Tx, error_id: int) -> list[Row]:
        """The error's state and current attempt, its row locked for this transaction.

        On PostgreSQL the claim skips a row another transaction holds (``SKIP LOCKED``), so
        the consoles racing for one error never queue behind each other's claim; the row is
        then read again once that transaction ends (it may have been ingest counting an
        occurrence, which must not cost the approval), and the compare-and-set that follows
        refuses the claim if another console took the error meanwhile.
        """
        dialect = self._backend.dialect
        sql = "SELECT state, current_attempt_id FROM errors WHERE id = ?"
        rows = await db.fetch(sql + dialect.claim_row, (error_id,))
        if not rows and dialect.claim_row:
            rows = await db.fetch(sql + dialect.lock_row, (error_id,))
        if not rows:
            raise NotFound(f"no error {error_id}")
        return rows

    async def update_attempt(self, attempt_id: int, **fields: Any) -> AttemptRow:
        """Write results as they arrive (branch, Claude's cost, the diff); never the state."""
        fields = attempt_columns(fields)

        async def body(db: Tx) -> AttemptRow:
            if fields:
                sets = ", ".join(f"{name} = ?" for name in fields)
                await db.execute(
                    f"UPDATE attempts SET {sets} WHERE id = ?", (*fields.values(), attempt_id)
                )
            rows = list(
                await db.fetch(
                    f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?", (attempt_id,)
                )
            )
            if not rows:
                raise NotFound(f"no attempt {attempt_id}")
            return attempt_row(rows[0])

        return await self._write(body)

    async def append_transcript(self, attempt_id: int, lines: Sequence[str]) -> int:
        """Keep Claude's stream-json output line by line; returns the seq of the last line."""

        async def body(db: Tx) -> int:
            await self._require_attempt(db, attempt_id)
            rows = await db.fetch(
                "SELECT COALESCE(MAX(seq), 0) FROM transcripts WHERE attempt_id = ?",
                (attempt_id,),
            )
            start = int(next(iter(rows))[0])
            await db.executemany(
                "INSERT INTO transcripts (attempt_id, seq, line) VALUES (?, ?, ?)",
                [(attempt_id, start + i, line) for i, line in enumerate(lines, 1)],
            )
            # Another console sharing the store may be showing this attempt's output live.
            announce = self._backend.dialect.announce
            if announce is not None and lines:
                await db.execute(announce, (f"transcript {attempt_id}",))
            return start + len(lines)

        return await self._write(body)

    async def transcript(self, attempt_id: int, after_seq: int = 0) -> list[str]:
        """Transcript lines after ``after_seq``, so a viewer can follow a running attempt."""
        rows = await self._read(
            "SELECT line FROM transcripts WHERE attempt_id = ? AND seq > ? ORDER BY seq",
            (attempt_id, after_seq),
        )
        return [r[0] for r in rows]

    async def record_test_result(
        self,
        attempt_id: int,
        *,
        command: str,
        exit_code: int | None,
        output_tail: str,
        duration_ms: int,
        timed_out: bool = False,
    ) -> TestResultRow:
        """Keep every test run; the attempt shows the latest exit code and output tail."""
        now = now_iso()

        async def body(db: Tx) -> TestResultRow:
            await self._require_attempt(db, attempt_id)
            rows = list(
                await db.fetch(
                    "INSERT INTO test_results (attempt_id, command, exit_code, timed_out, "
                    "duration_ms, output_tail, at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id, attempt_id, command, exit_code, timed_out, duration_ms, "
                    "output_tail, at",
                    (attempt_id, command, exit_code, int(timed_out), duration_ms, output_tail, now),
                )
            )
            await db.execute(
                "UPDATE attempts SET test_exit_code = ?, test_output_tail = ? WHERE id = ?",
                (exit_code, output_tail, attempt_id),
            )
            return test_result_row(rows[0])

        return await self._write(body)

    async def record_round(
        self,
        attempt_id: int,
        round_number: int,
        *,
        turns: int | None,
        cost_usd: float | None,
        tests_passed: bool | None,
    ) -> None:
        """Keep one round of an attempt (written again if the round is recorded twice)."""
        now = now_iso()
        passed = None if tests_passed is None else int(tests_passed)

        async def body(db: Tx) -> None:
            await self._require_attempt(db, attempt_id)
            await db.execute(
                "INSERT INTO attempt_rounds (attempt_id, round, turns, cost_usd, tests_passed, "
                "at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (attempt_id, round) DO UPDATE SET "
                "turns = excluded.turns, cost_usd = excluded.cost_usd, "
                "tests_passed = excluded.tests_passed, at = excluded.at",
                (attempt_id, round_number, turns, cost_usd, passed, now),
            )

        await self._write(body)

    async def rounds(self, attempt_id: int) -> list[RoundRow]:
        """An attempt's rounds, first to last."""
        rows = await self._read(
            "SELECT attempt_id, round, turns, cost_usd, tests_passed, at FROM attempt_rounds "
            "WHERE attempt_id = ? ORDER BY round",
            (attempt_id,),
        )
        return [
            RoundRow(
                attempt_id=r["attempt_id"],
                round=r["round"],
                turns=r["turns"],
                cost_usd=r["cost_usd"],
                tests_passed=None if r["tests_passed"] is None else bool(r["tests_passed"]),
                at=r["at"],
            )
            for r in rows
        ]

    async def test_results(self, attempt_id: int) -> list[TestResultRow]:
        rows = await self._read(
            "SELECT id, attempt_id, command, exit_code, timed_out, duration_ms, output_tail, at "
            "FROM test_results WHERE attempt_id = ? ORDER BY id",
            (attempt_id,),
        )
        return [test_result_row(r) for r in rows]

    async def record_pr(
        self, attempt_id: int, branch: str, url: str, number: int, *, kind: str = "fix"
    ) -> PullRequestRow:
        """Remember an opened PR by branch, so a restart never opens a second one for it.

        A ``fix`` PR is the attempt's own (its URL and number are the attempt's); a
        ``revert`` PR reverts that attempt's merge and leaves the attempt as it was.
        """
        now = now_iso()

        async def body(db: Tx) -> PullRequestRow:
            await self._require_attempt(db, attempt_id)
            rows = list(
                await db.fetch(
                    "INSERT INTO prs (attempt_id, branch, url, number, created_at, kind) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (branch) DO UPDATE SET "
                    "attempt_id = excluded.attempt_id, url = excluded.url, "
                    f"number = excluded.number RETURNING {PR_COLUMNS}",
                    (attempt_id, branch, url, number, now, kind),
                )
            )
            if kind == "fix":
                await db.execute(
                    "UPDATE attempts SET pr_url = ?, pr_number = ? WHERE id = ?",
                    (url, number, attempt_id),
                )
            return pr_row(rows[0])

        return await self._write(body)

    async def pr_for_branch(self, branch: str) -> PullRequestRow | None:
        rows = await self._read(f"SELECT {PR_COLUMNS} FROM prs WHERE branch = ?", (branch,))
        return pr_row(rows[0]) if rows else None

    async def prs(self, attempt_id: int) -> list[PullRequestRow]:
        """An attempt's pull requests, oldest first: its fix PR, then any revert of it."""
        rows = await self._read(
            f"SELECT {PR_COLUMNS} FROM prs WHERE attempt_id = ? ORDER BY id", (attempt_id,)
        )
        return [pr_row(r) for r in rows]

    async def watched_prs(self) -> list[tuple[PullRequestRow, int]]:
        """The fix PRs to poll, each with its error's id: open ones whose attempt is the
        current attempt of an error still at ``pr_opened``."""
        rows = await self._read(
            f"SELECT {', '.join('p.' + c.strip() for c in PR_COLUMNS.split(','))}, "
            "e.id AS error_id FROM prs p JOIN errors e ON e.current_attempt_id = p.attempt_id "
            "WHERE p.kind = 'fix' AND p.state = 'open' AND e.state = ? ORDER BY p.id",
            (State.PR_OPENED.value,),
        )
        out = []
        for r in rows:
            values = dict(zip(r.keys(), tuple(r), strict=True))
            error_id = values.pop("error_id")
            out.append((PullRequestRow(**values), int(error_id)))
        return out

    async def update_pr(self, pr_id: int, **fields: Any) -> None:
        """Write what polling GitHub said about a PR (state, etag, merged_at...)."""
        allowed = {
            "state",
            "etag",
            "merged_at",
            "closed_at",
            "merge_sha",
            "merged_by",
            "checked_at",
        }
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValueError(f"unknown PR field(s) {', '.join(unknown)}")
        if not fields:
            return

        async def body(db: Tx) -> None:
            sets = ", ".join(f"{name} = ?" for name in fields)
            await db.execute(f"UPDATE prs SET {sets} WHERE id = ?", (*fields.values(), pr_id))

        await self._write(body)

    async def record_starts(self, host: str, starts: Sequence[Start]) -> None:
        """Keep the service starts a host's agent saw; idempotent on (host, instance, seq),
        and the host's stream position moves past them as it does past stored events."""
        if not starts:
            return
        now = now_iso()

        async def body(db: Tx) -> None:
            rows = list(await db.fetch("SELECT instance FROM hosts WHERE name = ?", (host,)))
            instance = rows[0][0] if rows else ""
            await db.executemany(
                "INSERT INTO starts (host, instance, seq, service, at, line, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, instance, seq) DO NOTHING",
                [(host, instance, s.seq, s.service, s.at, s.line, now) for s in starts],
            )
            top = max(s.seq for s in starts)
            await db.execute(
                "INSERT INTO hosts (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (host,)
            )
            await db.execute(
                "UPDATE hosts SET last_seq = ? WHERE name = ? AND last_seq < ?", (top, host, top)
            )

        await self._write(body)

    async def first_start(
        self, service: str, after: str, host: str | None = None
    ) -> StartRow | None:
        """The service's first start seen at or after ``after`` (an ISO stamp), on any host
        or on ``host``; None when no agent has seen it start since."""
        rows = await self._read(
            "SELECT host, service, at, line, seq, received_at FROM starts "
            "WHERE service = ? AND at >= ? "
            + ("AND host = ? " if host is not None else "")
            + "ORDER BY at LIMIT 1",
            (service, after, *([host] if host is not None else [])),
        )
        return StartRow(*tuple(rows[0])) if rows else None

    async def last_received(self, error_id: int) -> str | None:
        """When the console received the error's latest occurrence (its own clock)."""
        rows = await self._read(
            "SELECT MAX(received_at) FROM occurrences WHERE error_id = ?", (error_id,)
        )
        return rows[0][0] if rows else None

    async def fix_pr(self, attempt_id: int | None) -> PullRequestRow | None:
        """The attempt's own (fix) pull request, if it has one."""
        if attempt_id is None:
            return None
        return next((p for p in await self.prs(attempt_id) if p.kind == "fix"), None)

    async def set_mute(
        self,
        error_id: int,
        *,
        until: str | None,
        until_count: int | None,
        actor: str,
        reason: str | None = None,
    ) -> ErrorRow:
        """Mute an error's notifications (or unmute it, both None), recorded as a decision."""
        muting = until is not None or until_count is not None
        await self.note_decision(
            error_id,
            "mute" if muting else "unmute",
            actor,
            reason,
            marks={"muted_until": until, "muted_until_count": until_count},
        )
        row = await self.error(error_id)
        assert row is not None
        return row

    async def recover(self) -> list[AttemptRow]:
        """Attempts cut off by a console stop become ``interrupted``.

        Their worktrees may be half edited; the engine gets them back to clean up, and a
        person can retry or skip them. On SQLite (one console per file) that is every
        running attempt, at startup; on a shared PostgreSQL store only those whose runner's
        store session has gone (its advisory lock is free), which a console also learns
        while it runs (:meth:`watch_runner`).
        """
        now = now_iso()

        async def body(db: Tx) -> list[AttemptRow]:
            running = [s.value for s in RUNNING_STATES]
            before = await db.fetch(
                f"SELECT id, state FROM attempts WHERE state IN ({placeholders(len(running))}) "
                f"AND {self._backend.dialect.runner_gone} ORDER BY id",
                running,
            )
            attempts = []
            for attempt_id, old in before:
                rows = await db.fetch(
                    f"UPDATE attempts SET state = ?, reason = ?, finished_at = ? "
                    f"WHERE id = ? AND state = ? RETURNING {ATTEMPT_COLUMNS}",
                    (State.INTERRUPTED.value, RECOVER_REASON, now, attempt_id, old),
                )
                if not rows:
                    continue
                attempt = attempt_row(rows[0])
                attempts.append(attempt)
                # The error mirrors the attempt only while it is the error's current one.
                changed = await db.execute(
                    "UPDATE errors SET state = ?, updated_at = ? "
                    "WHERE id = ? AND current_attempt_id = ? AND state = ?",
                    (State.INTERRUPTED.value, now, attempt.error_id, attempt.id, old),
                )
                if changed == 1:
                    await self._decide(
                        db,
                        attempt.error_id,
                        attempt.id,
                        State(old),
                        State.INTERRUPTED,
                        "console",
                        RECOVER_REASON,
                    )
            return attempts

        return await self._write(body)

    def watch_runner(self, session: str, on_gone: Callable[[], Awaitable[None]]) -> None:
        """Call ``on_gone`` once the console whose store session is ``session`` has gone
        (closed, crashed or cut off); a no-op for our own session. Only a shared store has
        other consoles: on SQLite nothing is ever called."""
        if session != self.session and not self._closed:
            self._backend.watch_session(session, on_gone)

    async def hold_host(self, host: str) -> Hold:
        """Wait until this store alone reads ``host`` among the consoles sharing it (at once
        on SQLite, or when no other console holds it; else when its holder goes away), so
        one host's events are ingested by exactly one process at a time. Once the hold is
        ``lost`` this store's ingest for the host is refused (``HoldLost``) until it holds
        the host again."""
        return await self._hold(host_role(host))

    async def hold_bot(self) -> Hold:
        """Wait until this store alone runs the team's Telegram bot, the same way: one bot
        polls for the team, and another console's takes over when its console goes away
        (or when this one's hold is ``lost``: the bot stops and waits for the role again)."""
        return await self._hold("telegram bot")

    async def _hold(self, name: str) -> Hold:
        if self._closed:
            raise StoreError(f"{self.where}: store is closed")
        return await self._backend.hold(name)

    def on_change(self, listener: Callable[[str, int], None]) -> None:
        """Call ``listener(kind, id)`` (kind ``error``, ``attempt``, or ``transcript`` with an
        attempt's id) for each change another console commits to a shared store, as it
        commits (no polling); after a lost connection what changed meanwhile is told too."""
        self._backend.on_change(listener)

    async def _require_attempt(self, db: Tx, attempt_id: int) -> None:
        rows = await db.fetch("SELECT 1 FROM attempts WHERE id = ?", (attempt_id,))
        if not list(rows):
            raise NotFound(f"no attempt {attempt_id}")

    # --- queries --------------------------------------------------------------------------

    async def errors(
        self,
        limit: int = 100,
        state: State | Collection[State] | None = None,
        *,
        service: str | None = None,
    ) -> list[ErrorRow]:
        """Most recently seen errors first, optionally only some states or one service."""
        where: list[str] = []
        params: list[Any] = []
        states = states_of(state)
        if states is not None:
            where.append(f"state IN ({placeholders(len(states))})")
            params.extend(states)
        if service is not None:
            where.append("service = ?")
            params.append(service)
        clause = f"WHERE {' AND '.join(where)}" if where else ""

        async def body(db: Tx) -> list[ErrorRow]:
            rows = await db.fetch(
                f"SELECT {ERROR_COLUMNS} FROM errors {clause} "
                f"ORDER BY last_seen DESC, id DESC LIMIT ?",
                (*params, limit),
            )
            hosts = await self._host_counts(db, [r["id"] for r in rows])
            return [error_row(r, hosts.get(r["id"], {})) for r in rows]

        return await self._reads(body)

    async def error(self, error_id: int) -> ErrorRow | None:
        rows = await self.errors_by_id([error_id])
        return rows[0] if rows else None

    async def errors_by_id(self, error_ids: Collection[int]) -> list[ErrorRow]:
        """Several errors in one read, for publishing the ones a batch of events touched."""
        ids = list(error_ids)

        async def body(db: Tx) -> list[ErrorRow]:
            out: list[ErrorRow] = []
            for i in range(0, len(ids), KEYS_PER_QUERY):
                chunk = ids[i : i + KEYS_PER_QUERY]
                rows = await db.fetch(errors_by_id_sql(len(chunk)), chunk)
                hosts = await self._host_counts(db, [r["id"] for r in rows])
                out += [error_row(r, hosts.get(r["id"], {})) for r in rows]
            return out

        return await self._reads(body)

    @staticmethod
    async def _host_counts(db: Tx, error_ids: list[int]) -> dict[int, dict[str, int]]:
        result: dict[int, dict[str, int]] = {}
        for i in range(0, len(error_ids), KEYS_PER_QUERY):
            chunk = error_ids[i : i + KEYS_PER_QUERY]
            fold_host_totals(await db.fetch(host_totals_sql(len(chunk)), chunk), result)
        return result

    async def attempts(
        self,
        error_id: int | None = None,
        states: State | Collection[State] | None = None,
        limit: int | None = None,
    ) -> list[AttemptRow]:
        """Attempts oldest first, optionally for one error or in some states."""
        where: list[str] = []
        params: list[Any] = []
        if error_id is not None:
            where.append("error_id = ?")
            params.append(error_id)
        wanted = states_of(states)
        if wanted is not None:
            where.append(f"state IN ({placeholders(len(wanted))})")
            params.extend(wanted)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        bound = ""
        if limit is not None:
            bound = " LIMIT ?"
            params.append(limit)
        rows = await self._read(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts {clause} ORDER BY id{bound}", params
        )
        return [attempt_row(r) for r in rows]

    async def daily_costs(self, days: int = 7) -> dict[str, float]:
        """What Claude cost per UTC day (``YYYY-MM-DD``, newest first), from the attempts'
        recorded costs by the day each attempt started: the daily budget reads today's."""
        rows = await self._read(
            "SELECT substr(started_at, 1, 10) AS day, SUM(claude_cost_usd) AS cost "
            "FROM attempts WHERE claude_cost_usd IS NOT NULL "
            "GROUP BY day ORDER BY day DESC LIMIT ?",
            (days,),
        )
        return {str(r["day"]): float(r["cost"] or 0.0) for r in rows}

    async def attempt(self, attempt_id: int) -> AttemptRow | None:
        rows = await self._read(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?", (attempt_id,)
        )
        return attempt_row(rows[0]) if rows else None

    async def running_attempts(self) -> list[AttemptRow]:
        """Attempts doing work now (fixing or testing); the engine caps them by concurrency."""
        return await self.attempts(states=RUNNING_STATES)

    async def decisions(
        self,
        error_id: int | None = None,
        attempt_id: int | None = None,
        limit: int = 100,
    ) -> list[DecisionRow]:
        """Who did what, oldest first: the audit trail behind every approval."""
        where: list[str] = []
        params: list[Any] = []
        if error_id is not None:
            where.append("error_id = ?")
            params.append(error_id)
        if attempt_id is not None:
            where.append("attempt_id = ?")
            params.append(attempt_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            "SELECT id, error_id, attempt_id, action, actor, at, from_state, to_state, reason "
            f"FROM decisions {clause} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [decision_row(r) for r in rows]

    async def service_decisions(
        self, service: str, actions: Collection[str], *, since: str | None = None
    ) -> list[DecisionRow]:
        """The decisions named ``actions`` about any error of ``service`` (at or after
        ``since``), oldest first: what auto-merge counts per day and reads its pause from."""
        params: list[Any] = [service, *actions]
        after = ""
        if since is not None:
            after = " AND d.at >= ?"
            params.append(since)
        rows = await self._read(
            "SELECT d.id, d.error_id, d.attempt_id, d.action, d.actor, d.at, d.from_state, "
            "d.to_state, d.reason FROM decisions d JOIN errors e ON e.id = d.error_id "
            f"WHERE e.service = ? AND d.action IN ({placeholders(len(actions))}){after} "
            "ORDER BY d.id",
            params,
        )
        return [decision_row(r) for r in rows]

    async def history(self, query: HistoryQuery, now: float) -> History:
        """What the product did over ``query``'s period ending at ``now`` (epoch seconds):
        attempts and outcomes, rates, times to PR and merge, costs, regressions, recurring
        errors (see :mod:`console.store.history`), all read in one view of the data."""
        return await self._reads(lambda tx: read_history(tx, query, now))

    async def integrity_check(self) -> list[str]:
        """The database's own verdict (``["ok"]`` when healthy), for a doctor command."""
        if self._closed:
            raise StoreError(f"{self.where}: store is closed")
        return await self._backend.integrity_check()

    # --- console views (read only) --------------------------------------------------------

    async def occurrences_per_minute(
        self, error_id: int, end: float, minutes: int = 60
    ) -> list[int]:
        """Occurrences of an error in each of the last ``minutes`` minutes before ``end``.

        Hosts send running totals, so a minute's occurrences are the rises of each host's
        total within it; an event is placed at its own ``last_seen`` (when it happened on
        the host), falling back to when the console received it.
        """
        start = end - minutes * 60
        rows = await self._read(
            f"SELECT COALESCE({self._backend.dialect.json_text('raw', 'last_seen')}, "
            "received_at) AS at, "
            "count - LAG(count, 1, 0) OVER (PARTITION BY host, instance ORDER BY seq) AS rise "
            "FROM occurrences WHERE error_id = ?",
            (error_id,),
        )
        buckets = [0] * minutes
        for at, rise in rows:
            moment = epoch(at)
            if moment is None or rise is None or rise <= 0 or not start <= moment < end:
                continue
            buckets[min(minutes - 1, int((moment - start) // 60))] += int(rise)
        return buckets

    async def samples(self, error_id: int, limit: int = 5) -> list[str]:
        """The latest relayed lines of an error as stored (already redacted by the agent)."""
        rows = await self._read(
            "SELECT raw FROM occurrences WHERE error_id = ? ORDER BY id DESC LIMIT ?",
            (error_id, limit),
        )
        return [r[0] for r in rows]

    async def recurrence(
        self, error_id: int, since: str, *, relayed_after: str = "", samples: int = 3
    ) -> Recurrence:
        """The error's occurrences at or after ``since`` (an ISO stamp, by the clock of the
        host they happened on; the console's receipt time for a line that does not say)
        that the console received after ``relayed_after`` (a host whose clock runs ahead
        cannot date older lines into the window).

        A rise is counted against the host's previous total whenever it came, so the first
        occurrence after ``since`` counts only itself.
        """
        at = f"COALESCE({self._backend.dialect.json_text('raw', 'last_seen')}, received_at)"
        rows = await self._read(
            "SELECT host, at, rise, raw FROM (SELECT id, host, raw, received_at, "
            f"{at} AS at, "
            "count - LAG(count, 1, 0) OVER (PARTITION BY host, instance ORDER BY seq) AS rise "
            "FROM occurrences WHERE error_id = ?) AS o WHERE at >= ? AND received_at > ? "
            "ORDER BY id",
            (error_id, since, relayed_after),
        )
        count = 0
        hosts: dict[str, int] = {}
        first: str | None = None
        last: str | None = None
        for host, moment, rise, _raw in rows:
            added = max(0, int(rise or 0))
            count += added
            hosts[host] = hosts.get(host, 0) + added
            first = moment if first is None or moment < first else first
            last = moment if last is None or moment > last else last
        latest = [r[3] for r in rows[-samples:]][::-1] if samples > 0 else []
        return Recurrence(since, count, first, last, hosts, latest)
