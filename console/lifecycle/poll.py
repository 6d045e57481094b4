"""Following the console's open pull requests on GitHub until they are merged or closed.

Every ``github.poll_seconds`` each open fix PR is read once with the ETag of its last
answer (If-None-Match), so an unchanged PR costs a 304. A merge or a close is handed to
the engine, which moves the error. A rate limit (403/429 with Retry-After or
X-RateLimit-Reset) pauses polling until GitHub says it lifts, with one notice saying so;
any other failure is a notice too, and the PR is asked again next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from agent.wire import iso
from console.budget import clock_text
from console.config import ConsoleConfig
from console.events import Notify
from console.fix.github import GitHubError, PullState, RateLimited, poll_pull_request
from console.fix.publish import plan_publish
from console.models import PullRequestRow, epoch
from console.store import Store
from console.store.schema import now_iso

log = logging.getLogger(__name__)

# What the engine does with a PR that was merged or closed: (PR, its error's id, its state).
OnPullChange = Callable[[PullRequestRow, int, PullState], Awaitable[None]]


class PullPoller:
    """Asks GitHub about the open fix PRs, one round every ``github.poll_seconds``."""

    def __init__(
        self,
        config: ConsoleConfig,
        store: Store,
        *,
        on_change: OnPullChange,
        notify: Notify,
    ) -> None:
        self.config = config
        self.store = store
        self._on_change = on_change
        self._notify = notify
        self._paused_until = 0.0
        self._failing: set[int] = set()  # PR ids whose last poll failed (said once)
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Poll now (a PR was just opened, or a person asked)."""
        self._wake.set()

    async def run(self) -> None:
        """Poll until cancelled; a round's failure never ends the loop."""
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poller must survive any answer
                log.exception("polling pull requests failed")
                self._notify("error", f"polling pull requests failed: {exc!r}")
            wait = max(self.config.github.poll_seconds, self._paused_until - time.time())
            self._wake.clear()
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancellation
            # that stops the console when the wake-up comes at the same moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def poll_once(self) -> int:
        """One round over the open fix PRs; returns how many changed state."""
        if time.time() < self._paused_until:
            return 0
        changed = 0
        for pr, error_id in await self.store.watched_prs():
            error = await self.store.error(error_id)
            service = self.config.service(error.service) if error else None
            if service is None:
                continue
            plan = await plan_publish(service, self.config.github)
            if plan.repo_name is None or plan.token is None:
                continue
            try:
                state = await poll_pull_request(
                    api_url=self.config.github.api_url,
                    token=plan.token,
                    repo_full_name=plan.repo_name,
                    number=pr.number,
                    etag=pr.etag,
                )
            except RateLimited as exc:
                self._paused_until = time.time() + exc.retry_in
                self._notify(
                    "warning",
                    f"GitHub rate limit reached: polling pull requests pauses until "
                    f"{clock_text(self._paused_until)} ({exc})",
                )
                return changed
            except GitHubError as exc:
                if pr.id not in self._failing:
                    self._failing.add(pr.id)
                    self._notify(
                        "warning",
                        f"cannot read pull request #{pr.number} on GitHub: {exc}",
                        error_id=error_id,
                        attempt_id=pr.attempt_id,
                    )
                continue
            self._failing.discard(pr.id)
            checked = now_iso()
            if state is None:  # 304: unchanged since the ETag
                await self.store.update_pr(pr.id, checked_at=checked)
                continue
            await self.store.update_pr(
                pr.id,
                state=state.state,
                etag=state.etag,
                merged_at=_stamp(state.merged_at),
                closed_at=_stamp(state.closed_at),
                merge_sha=state.merge_sha,
                merged_by=state.merged_by,
                checked_at=checked,
            )
            if state.state != "open":
                changed += 1
                await self._on_change(pr, error_id, state)
        return changed


def _stamp(github_time: str | None) -> str | None:
    """GitHub's ``2026-01-02T03:04:05Z`` in the store's form (milliseconds), so it sorts
    as text against the agents' stamps; an unreadable one is kept as it came."""
    moment = epoch(github_time)
    return iso(moment) if moment is not None else github_time
