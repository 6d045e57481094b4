"""``autofix demo``: workspace, processes, engine and console, stopped together."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from console.demo.processes import DemoProcesses
from console.demo.workspace import WorkspaceError, load, prepare
from console.headless import serve


async def run_demo(
    root: Path, *, fresh: bool = False, headless: bool = False, settle_seconds: float = 5.0
) -> int:
    """Run the demo until the console quits (``q``) or Ctrl+C; always stop what it started."""
    node = shutil.which("node")
    if node is None:
        print("autofix demo: node is not installed; the demo's service is Node.js", file=sys.stderr)
        return 1
    try:
        ws = prepare(root, fresh=fresh, settle_seconds=settle_seconds)
    except WorkspaceError as exc:
        print(f"autofix demo: {exc}", file=sys.stderr)
        return 1
    config = load(ws)
    if shutil.which(config.claude.command) is None:
        print(
            "autofix demo: Claude Code is not installed, so fix attempts will fail with a hint; "
            "install it with `npm i -g @anthropic-ai/claude-code` and log in to get real fixes",
            file=sys.stderr,
        )
    procs = DemoProcesses(ws, node)
    await procs.start()
    try:
        if headless:
            banner = (
                f"autofix demo: service on http://127.0.0.1:{procs.port}, workspace {ws.root}; "
                "Ctrl+C stops"
            )
            await serve(config, banner=banner)
        else:
            from console.app import run_console

            await run_console(config)
    finally:
        # Also after a closed terminal: run_console turns SIGHUP into a normal quit.
        await procs.stop()
    print(f"autofix demo: stopped; the workspace stays in {ws.root} (--fresh starts over)")
    return 0
