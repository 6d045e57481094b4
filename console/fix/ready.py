"""One spare checkout per repository, kept at its base's head, so a fix starts at once.

Checking out a large repository takes seconds; renaming a directory does not. After the
console starts and after every attempt, a spare worktree of the freshly fetched base is
prepared in the background (:func:`~console.fix.worktree.prepare_ready`); the next
attempt fetches as always and turns the spare into its worktree with a rename and a
branch, checking out only what the base changed since. With no spare (another attempt of
the same repository took it, or it is still being written) the attempt waits for the one
being prepared or checks out as before. Stopping removes every spare, finished or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from console.fix.git import GitError
from console.fix.worktree import Worktree, create_worktree, discard_ready, prepare_ready

log = logging.getLogger(__name__)


class ReadyWorktrees:
    """Creates attempt worktrees, one repository at a time, from a spare when one is ready.

    ``enabled=False`` keeps no spare (one checkout less on disk per repository); every
    attempt then checks its worktree out.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._locks: dict[Path, asyncio.Lock] = {}
        self._refills: dict[Path, asyncio.Task[None]] = {}
        self._closed = False

    def _lock(self, repo: Path) -> asyncio.Lock:
        return self._locks.setdefault(_key(repo), asyncio.Lock())

    async def create(
        self, repo: Path, fingerprint: str, *, base_branch: str, remote: str
    ) -> Worktree:
        """The attempt's worktree at the freshly fetched base (see ``create_worktree``)."""
        async with self._lock(repo):
            return await create_worktree(
                repo,
                fingerprint,
                base_branch=base_branch,
                remote=remote,
                use_ready=self.enabled and not self._closed,
            )

    def refill(self, repo: Path, *, base_branch: str, remote: str) -> None:
        """Prepare the repository's spare in the background, unless one is being prepared."""
        key = _key(repo)
        running = self._refills.get(key)
        if not self.enabled or self._closed or (running is not None and not running.done()):
            return
        self._refills[key] = asyncio.create_task(
            self._refill(repo, base_branch, remote), name=f"ready-worktree:{key}"
        )

    async def _refill(self, repo: Path, base_branch: str, remote: str) -> None:
        async with self._lock(repo):
            if self._closed:
                return
            try:
                await prepare_ready(repo, base_branch=base_branch, remote=remote)
            except (GitError, OSError, ValueError) as exc:
                # Nothing is lost: the next attempt checks its worktree out instead.
                log.warning("no spare worktree for %s: %s", repo, exc)

    async def settled(self) -> None:
        """Wait for the spares being prepared (the bench and tests measure from a ready state)."""
        await asyncio.gather(*self._refills.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop preparing spares and remove every spare this process may have left."""
        self._closed = True
        for task in self._refills.values():
            task.cancel()
        await asyncio.gather(*self._refills.values(), return_exceptions=True)
        for key, lock in list(self._locks.items()):
            async with lock:
                with contextlib.suppress(GitError, OSError, ValueError):
                    await discard_ready(key)


def _key(repo: Path) -> Path:
    return Path(repo).expanduser().resolve()
