"""Stopping the bot's background tasks even when a library swallows a cancellation.

An HTTP call being cancelled can surface as a network error instead of ``CancelledError``
(the request is torn down mid-flight); a loop that retries network errors then carries on,
and awaiting it after one ``cancel()`` would hang the console's shutdown. So a task is
cancelled again until it ends, and given up on (with a warning) after ``grace`` seconds.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[object] | None, *, grace: float = 5.0) -> None:
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.5, max(0.0, deadline - loop.time())))
        if loop.time() >= deadline and not task.done():
            log.warning("telegram: task %s did not stop; left behind", task.get_name())
            return
    if not task.cancelled() and task.exception() is not None:
        log.warning(
            "telegram: task %s ended with an error", task.get_name(), exc_info=task.exception()
        )
