"""``autofix demo``: workspace, processes, engine and console, stopped together."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

from console.config import ConfigError, ConsoleConfig, load_config
from console.demo.claude_cli import use_claude
from console.demo.processes import DemoProcesses
from console.demo.workspace import (
    Workspace,
    WorkspaceError,
    console_state_dir,
    load,
    prepare,
)
from console.events import Listener
from console.headless import ClaudeLines, print_review_notice, serve
from console.statelock import StateBusy, hold


async def run_demo(
    root: Path,
    *,
    fresh: bool = False,
    headless: bool = False,
    settle_seconds: float = 5.0,
    config_path: Path | None = None,
) -> int:
    """Run the demo until the console quits (``q``) or Ctrl+C; always stop what it started.

    ``config_path`` is a console config of the user's own (read, never written); without it
    the workspace's default config is regenerated on each start.
    """
    node = shutil.which("node")
    if node is None:
        print("autofix demo: node is not installed; the demo's service is Node.js", file=sys.stderr)
        return 1
    config: ConsoleConfig | None = None
    state_dir = console_state_dir(root)
    try:
        if config_path is not None:
            config = load_config(config_path)
            state_dir = config.state_dir
    except ConfigError as exc:
        print(f"autofix demo: config error: {exc}", file=sys.stderr)
        return 2
    try:
        lock = hold(state_dir)
    except StateBusy as exc:
        print(f"autofix demo: {exc}", file=sys.stderr)
        return 1
    with lock:
        try:
            ws = prepare(root, fresh=fresh, settle_seconds=settle_seconds, keep=lock.path)
            config = config or load(ws)
        except WorkspaceError as exc:
            print(f"autofix demo: {exc}", file=sys.stderr)
            return 1
        except ConfigError as exc:
            print(f"autofix demo: config error: {exc}", file=sys.stderr)
            return 2
        await _run(ws, node, config, headless)
    print(f"autofix demo: stopped; the workspace stays in {ws.root} (--fresh starts over)")
    return 0


async def _run(ws: Workspace, node: str, config: ConsoleConfig, headless: bool) -> None:
    procs = DemoProcesses(ws, node)
    async with use_claude(config) as (config, claude):
        print(f"autofix demo: {claude.text}", flush=True)
        await procs.start()
        try:
            if headless:
                await _headless(config, ws.root, procs)
            else:
                from console.app import run_console

                await run_console(config, claude=claude)
        finally:
            # Also after a closed terminal: run_console turns SIGHUP into a normal quit.
            await procs.stop()


async def _headless(config: ConsoleConfig, root: Path, procs: DemoProcesses) -> None:
    def listeners(engine: Any) -> list[Listener]:
        return [ClaudeLines(numbered=True), FirstErrorApprover(engine, config)]

    banner = (
        f"autofix demo: service on http://127.0.0.1:{procs.port}, workspace {root}; Ctrl+C stops"
    )
    await serve(config, banner=banner, listeners=listeners)


class FirstErrorApprover:
    """Headless, nobody presses ``a``: the first error the engine lets be approved is
    approved, and its fix, once in review, is printed with what a reviewer must know."""

    def __init__(self, engine: Any, config: ConsoleConfig) -> None:
        self.engine = engine
        self.config = config
        self.error_id: int | None = None
        self.service = ""
        self.shown: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, event: Any) -> None:
        from console.events import AttemptChanged, ErrorChanged
        from console.models import Action, State

        if (
            isinstance(event, ErrorChanged)
            and self.error_id is None
            and Action.APPROVE in self.engine.actions(event.error)
        ):
            self.error_id = event.error.id
            self.service = event.error.service
            print(f"autofix demo: approving error {event.error.id} (headless: the first error)")
            self._spawn(self._approve(event.error.id))
        elif (
            isinstance(event, AttemptChanged)
            and event.attempt.error_id == self.error_id
            and event.attempt.state is State.REVIEW
            and event.attempt.diff
            and event.attempt.id not in self.shown
        ):
            self.shown.add(event.attempt.id)
            print(event.attempt.diff, flush=True)
            print_review_notice(event.attempt, self.config.service(self.service))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _approve(self, error_id: int) -> None:
        result = await self.engine.approve(error_id, actor="demo")
        if not result.ok:
            print(f"autofix demo: could not approve error {error_id}: {result.message}")
