"""The snapshot store (tests/snapshot_store.py) with one fixed error come back: its fix was
merged, the service started again, and the error occurred again on the merged code.

Everything goes through the store's own API (attempt, diff, PR, merge, start, the new
occurrences, the move to regressed with the lifecycle's reason); the times it stamps with
the wall clock are then pinned, so the screens show the same picture every time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from agent.wire import ErrorEvent, Start
from console.fix.diffstat import FileStat
from console.models import State
from console.store import Store
from tests.snapshot_store import ERRORS, NOW, _in_app, _iso, config_for, fill_store, pin_times

FINGERPRINT = "fp-json"
MERGED_AT = _iso(NOW - 2400)
STARTED_AT = _iso(NOW - 2100)
AGAIN_AT = _iso(NOW - 300)
AGAIN_MESSAGE = "Unexpected token < in JSON at position 0 (body: <html>502 Bad Gateway)"
PR_NUMBER = 41
MERGE_SHA = "9f1c2ab34de5f6a7b8c9d0e1f2a3b4c5d6e7f809"
FIX_DIFF = """diff --git a/lib/webhooks.js b/lib/webhooks.js
index 1f2e3d4..5a6b7c8 100644
--- a/lib/webhooks.js
+++ b/lib/webhooks.js
@@ -20,4 +20,8 @@ function parseBody(req) {
 function parseBody(req) {
-  return JSON.parse(req.body);
+  if (req.headers['content-type'] !== 'application/json') {
+    return null;
+  }
+  return JSON.parse(req.body);
 }
"""
WHY = (
    f"occurred again at {AGAIN_AT} on prod-1, which started again at {STARTED_AT} "
    f"after PR #{PR_NUMBER} was merged at {MERGED_AT}"
)


def again(count: int, seq: int = 5001, at: str = AGAIN_AT) -> ErrorEvent:
    """The webhook error on prod-1 once more, that host's running total now ``count``."""
    _, _, kind, _, route, stack = next(e for e in ERRORS if e[0] == FINGERPRINT)
    return ErrorEvent(
        type="update", seq=seq, host="prod-1", service="PA", fingerprint=FINGERPRINT,
        count=count, severity="medium", message=AGAIN_MESSAGE, error_type=kind, stack=stack,
        route=route, first_seen=_iso(NOW - 3 * 3600 - 3 * 600), last_seen=at,
        in_app=_in_app(stack),
    )  # fmt: skip


async def fill_regressed(db_path: Path, *, regress: bool = True) -> None:
    """The afternoon of :func:`fill_store`, and the webhook error's fix that did not hold
    (``regress`` False: merged and restarted, the occurrence on the merged code still to
    come)."""
    await fill_store(db_path)
    store = await Store.open(db_path)
    try:
        [error] = [e for e in await store.errors(limit=100) if e.fingerprint == FINGERPRINT]
        attempt = await store.create_attempt(error.id, actor="keyboard")
        assert attempt is not None
        await store.update_attempt(
            attempt.id,
            branch=f"hotfix/auto-{FINGERPRINT}",
            claude_cost_usd=0.0377,
            claude_turns=5,
            claude_summary="parseBody returns null for a body that is not JSON.",
        )
        await store.transition_attempt(attempt.id, State.FIXING, State.TESTING)
        await store.update_attempt(
            attempt.id, diff=FIX_DIFF, diff_stat=[FileStat("lib/webhooks.js", 3, 0)]
        )
        await store.transition_attempt(attempt.id, State.TESTING, State.REVIEW)
        url = f"https://github.com/acme/pa/pull/{PR_NUMBER}"
        await store.record_pr(attempt.id, f"hotfix/auto-{FINGERPRINT}", url, PR_NUMBER)
        await store.transition_attempt(
            attempt.id, State.REVIEW, State.PR_OPENED, actor="keyboard",
            pr_url=url, pr_number=PR_NUMBER,
        )  # fmt: skip
        [pr] = await store.prs(attempt.id)
        await store.update_pr(
            pr.id, state="merged", merged_at=MERGED_AT, merge_sha=MERGE_SHA, merged_by="octocat"
        )
        await store.transition(
            error.id, State.PR_OPENED, State.MERGED, actor="github:octocat",
            reason=f"pull request #{PR_NUMBER} merged by octocat at {MERGED_AT}",
        )  # fmt: skip
        await store.record_starts(
            "prod-1", [Start(seq=5000, host="prod-1", service="PA", at=STARTED_AT,
                             line="listening on :3000")]
        )  # fmt: skip
        if regress:
            await store.ingest("prod-1", [again(error.hosts.get("prod-1", 0) + 4)])
            await store.transition(
                error.id, State.MERGED, State.REGRESSED, actor="console", reason=WHY,
                marks={"regressed_at": AGAIN_AT},
            )  # fmt: skip
    finally:
        await store.close()
    pin_times(db_path)


@asynccontextmanager
async def regressed_app(root: Path, *, regress: bool = True) -> AsyncIterator[Any]:
    """The console on :func:`fill_regressed`'s store, frozen at NOW, its engine not started
    (no links, no workers)."""
    from console.app import AutofixApp
    from console.engine import Engine

    config = config_for(root / "console")
    await fill_regressed(config.db_path, regress=regress)
    store = await Store.open(config.db_path)
    try:
        yield AutofixApp(Engine(config, store), clock=lambda: NOW)
    finally:
        await store.close()
