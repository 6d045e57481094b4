"""A console database as after an afternoon of work, filled deterministically.

The store is filled through the store's own ingest and transitions (fixed events, fixed
times); times the store stamps with the wall clock are then pinned, so an app on it with a
frozen clock at :data:`NOW` always shows the same picture. The snapshot tests and the
console benchmark both open one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.parse.frames import parse_frame
from agent.record import in_app_flags
from agent.wire import ErrorEvent
from console.config import parse_config
from console.fix.diffstat import FileStat
from console.models import State
from console.store import Store

NOW = 1_800_003_600.0  # 2027-01-15T09:00:00Z: every age is measured from here
SERVICE_REPO = "/srv/pa"

STACK = [
    "TypeError: Cannot read properties of undefined (reading 'id')",
    "    at getUserProfile (/srv/pa/lib/users.js:14:22)",
    "    at /srv/pa/routes/users.js:9:18",
    "    at Layer.handle [as handle_request] "
    "(/srv/pa/node_modules/express/lib/router/layer.js:95:5)",
    "    at next (/srv/pa/node_modules/express/lib/router/route.js:149:13)",
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
]  # fmt: skip

ERRORS: tuple[tuple[str, str, str, str, str | None, list[str]], ...] = (
    ("fp-users", "critical", "TypeError",
     "Cannot read properties of undefined (reading 'id')", "GET /users/:id", STACK),
    ("fp-orders", "high", "RangeError", "Invalid array length", "POST /orders",
     ["RangeError: Invalid array length", "    at buildOrder (/srv/pa/lib/orders.js:41:9)"]),
    ("fp-db", "high", "Error", "connect ECONNREFUSED 10.0.0.12:5432", None,
     ["Error: connect ECONNREFUSED 10.0.0.12:5432",
      "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)"]),
    ("fp-json", "medium", "SyntaxError", "Unexpected token < in JSON at position 0",
     "POST /webhooks/stripe", ["SyntaxError: Unexpected token < in JSON at position 0",
                               "    at JSON.parse (<anonymous>)",
                               "    at parseBody (/srv/pa/lib/webhooks.js:22:17)"]),
    ("fp-timeout", "medium", "TimeoutError", "Request to billing timed out after 5000ms",
     "GET /invoices", ["TimeoutError: Request to billing timed out after 5000ms",
                       "    at Timeout._onTimeout (/srv/pa/lib/billing.js:77:11)"]),
    ("fp-deprec", "low", "Warning", "Buffer() is deprecated due to security issues", None,
     ["Warning: Buffer() is deprecated due to security issues"]),
)  # fmt: skip

DIFF = """diff --git a/lib/users.js b/lib/users.js
index 3b18e51..a1c2f9d 100644
--- a/lib/users.js
+++ b/lib/users.js
@@ -12,5 +12,6 @@ function findUser(id) {
 function getUserProfile(id) {
   const user = findUser(id);
+  if (!user) return null;
   return { id: user.id, name: user.name };
 }
diff --git a/test/users.test.js b/test/users.test.js
index 5d0e2b1..77f1c3a 100644
--- a/test/users.test.js
+++ b/test/users.test.js
@@ -20,3 +20,7 @@ test('known user', () => {
   assert.equal(getUserProfile(1).name, 'Ada');
 });
+
+test('unknown user', () => {
+  assert.equal(getUserProfile(999), null);
+});
"""
TRANSCRIPT = [
    {"type": "system", "subtype": "init", "session_id": "5f0c9a12-aaaa",
     "model": "claude-sonnet-4-5", "cwd": "/srv/pa/.worktrees/hotfix/auto-fp-users",
     "tools": ["Read", "Edit", "Bash"],
     "permissionMode": "default"},
    {"type": "assistant", "message": {"content": [
        {"type": "text", "text": "Reading the handler that throws."},
        {"type": "tool_use", "id": "t1", "name": "Read",
         "input": {"file_path": "/srv/pa/.worktrees/hotfix/auto-fp-users/lib/users.js"}}]}},
    {"type": "user", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "function getUserProfile"}]}},
    {"type": "assistant", "message": {"content": [
        {"type": "tool_use", "id": "t2", "name": "Edit",
         "input": {"file_path": "/srv/pa/.worktrees/hotfix/auto-fp-users/lib/users.js",
                   "old_string": "  const user = findUser(id);",
                   "new_string": "  const user = findUser(id);\n  if (!user) return null;"}}]}},
    {"type": "user", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "t2", "content": "The file has been updated."}]}},
    {"type": "assistant", "message": {"content": [
        {"type": "tool_use", "id": "t3", "name": "Bash",
         "input": {"command": "node --test", "description": "run the tests"}}]}},
    {"type": "user", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "t3", "content": "# pass 6\n# fail 0"}]}},
    {"type": "assistant", "message": {"content": [
        {"type": "text", "text": "getUserProfile now returns null for unknown ids."}]}},
    {"type": "result", "subtype": "success", "is_error": False,
     "result": "getUserProfile now returns null for unknown ids.", "num_turns": 4,
     "total_cost_usd": 0.0412, "duration_ms": 18234},
]  # fmt: skip


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


PINNED = _iso(NOW - 1200)


def _in_app(stack: list[str]) -> list[bool | None]:
    """The flags a real agent sends with this stack: its own parser reads the frames."""
    frames = [frame for line in stack if (frame := parse_frame(line)) is not None]
    return in_app_flags(stack, frames)


def _events(host: str, start_seq: int, scale: int) -> list[ErrorEvent]:
    """Each error's running total on the host rises over the last hour, minute by minute."""
    events: list[ErrorEvent] = []
    seq = start_seq
    for index, (fp, severity, kind, message, route, stack) in enumerate(ERRORS):
        first = NOW - 3 * 3600 - index * 600
        total = 0
        for minute in range(0, 60, 3 + index):
            total += (minute % 7 + 1) * scale * (len(ERRORS) - index)
            seq += 1
            events.append(
                ErrorEvent(
                    type="error" if minute == 0 else "update",
                    seq=seq,
                    host=host,
                    service="PA",
                    fingerprint=fp,
                    count=total,
                    severity=severity,  # type: ignore[arg-type]
                    message=message,
                    error_type=kind,
                    stack=stack,
                    route=route,
                    first_seen=_iso(first),
                    last_seen=_iso(NOW - 3600 + minute * 60 + 30 - index * 20),
                    in_app=_in_app(stack),
                )
            )
    return events


def config_for(state_dir: Path):
    return parse_config(
        {
            "state_dir": str(state_dir),
            "hosts": [
                {"name": "prod-1", "target": "10.0.0.21", "user": "deploy"},
                {"name": "prod-2", "target": "10.0.0.22", "user": "deploy"},
            ],
            "services": [{"name": "PA", "repo": SERVICE_REPO, "github_repo": "acme/pa"}],
        }
    )


async def fill_store(db_path: Path) -> None:
    """A console database as after an afternoon of work: every state on screen at once."""
    store = await Store.open(db_path)
    try:
        await store.ingest("prod-1", _events("prod-1", 0, 2))
        await store.ingest("prod-2", _events("prod-2", 0, 1)[::2])
        ids = {e.fingerprint: e.id for e in await store.errors(limit=100)}
        for error_id in ids.values():
            await store.transition(error_id, State.NEW, State.AWAITING_APPROVAL)
        # fp-users: fixed, tested, awaiting review
        users = ids["fp-users"]
        attempt = await store.create_attempt(users, actor="keyboard")
        assert attempt is not None
        await store.update_attempt(
            attempt.id,
            branch="hotfix/auto-fp-users",
            worktree="/srv/pa/.worktrees/hotfix/auto-fp-users",
            claude_cost_usd=0.0412,
            claude_turns=4,
            claude_duration_ms=18234,
            claude_summary="getUserProfile now returns null for unknown ids.",
        )
        await store.append_transcript(attempt.id, [json.dumps(line) for line in TRANSCRIPT])
        await store.transition_attempt(attempt.id, State.FIXING, State.TESTING)
        await store.record_test_result(
            attempt.id, command="node --test", exit_code=0, output_tail="# pass 6\n# fail 0",
            duration_ms=2140,
        )  # fmt: skip
        await store.update_attempt(
            attempt.id,
            diff=DIFF,
            diff_stat=[FileStat("lib/users.js", 1, 0), FileStat("test/users.test.js", 4, 0)],
        )
        await store.transition_attempt(attempt.id, State.TESTING, State.REVIEW)
        # fp-db: skipped from Telegram
        await store.transition(
            ids["fp-db"], State.AWAITING_APPROVAL, State.SKIPPED, actor="telegram:7"
        )
        # fp-orders: a fix whose tests failed
        failed = await store.create_attempt(ids["fp-orders"], actor="keyboard")
        assert failed is not None
        await store.update_attempt(failed.id, claude_cost_usd=0.0213, claude_turns=3,
                                   claude_duration_ms=9120)  # fmt: skip
        await store.transition_attempt(
            failed.id, State.FIXING, State.FAILED, reason="tests failed (exit 1): # fail 1"
        )
    finally:
        await store.close()
    pin_times(db_path)


def pin_times(db_path: Path) -> None:
    """Pin the times the store stamped with the wall clock."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE attempts SET started_at = ?, finished_at = CASE WHEN finished_at IS NULL "
            "THEN NULL ELSE ? END",
            (PINNED, _iso(NOW - 1200 + 9)),
        )
        conn.execute("UPDATE decisions SET at = ?", (PINNED,))
        conn.execute("UPDATE errors SET created_at = ?, updated_at = ?", (PINNED, PINNED))
        conn.execute("UPDATE occurrences SET received_at = ?", (PINNED,))
        conn.execute("UPDATE prs SET created_at = ?, checked_at = ?", (PINNED, PINNED))
        conn.execute("UPDATE starts SET received_at = ?", (PINNED,))
    conn.close()


@asynccontextmanager
async def filled_app(root: Path) -> AsyncIterator[Any]:
    """The console on a filled store under ``root``, frozen at :data:`NOW`, its engine not
    started (no links, no workers): for pilot tests of what the screens show."""
    from console.app import AutofixApp
    from console.engine import Engine

    config = config_for(root / "console")
    await fill_store(config.db_path)
    store = await Store.open(config.db_path)
    try:
        yield AutofixApp(Engine(config, store), clock=lambda: NOW)
    finally:
        await store.close()


async def settle(pilot: Any) -> None:
    """Wait until the app's first load and paint are done."""
    app = pilot.app
    for _ in range(200):
        if app.main_screen.ready and app.main_screen.attempt_id is not None:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.2)
    await app.workers.wait_for_complete()
    await pilot.pause()
