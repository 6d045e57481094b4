"""Background work for views that can fail without closing the console.

Textual exits the app when a worker raises (unless told otherwise). Every worker of the
console starts through :func:`run_guarded` instead: an exception becomes a
:class:`~console.screens.requests.WorkFailed` message, which the app turns into a notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from textual.dom import DOMNode
from textual.worker import Worker

from console.screens.requests import WorkFailed

log = logging.getLogger(__name__)


def run_guarded(
    node: DOMNode,
    work: Callable[[], Coroutine[Any, Any, None]],
    *,
    what: str,
    group: str,
    exclusive: bool = False,
) -> Worker[None]:
    """Run ``work`` as a worker of ``node``; if it raises, ``what`` failed is reported."""

    async def guarded() -> None:
        try:
            await work()
        except Exception as exc:
            log.exception("%s failed", what)
            node.post_message(WorkFailed(what, exc))

    return node.run_worker(
        guarded, name=what, group=group, exclusive=exclusive, exit_on_error=False
    )
