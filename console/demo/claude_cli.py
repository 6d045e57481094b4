"""Which Claude Code the demo's fix attempts run, and against which model.

With a logged-in ``claude`` the demo uses it, like any console. Without one (not installed,
or installed but not logged in: see console/fix/claude_state.py) it runs the pinned Claude Code
CLI that ``make demo`` installs into the virtualenv (``<venv>/claude``, the version
tests/package.json pins) against the scripted demo model on loopback
(console/demo/model.py). The CLI is the real one either way; only the model differs, and
the header says which.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from console.config import ConsoleConfig
from console.demo.model import LOGIN_HINT, NAME, demo_model
from console.fix.claude_state import ClaudeState, discover, scripted

# Where `make demo` (tests/setup.sh --runtime) installs the pinned CLI: an npm prefix of
# the virtualenv's own, so nothing outside the checkout is touched.
PINNED_PREFIX = Path(sys.prefix) / "claude"
SCRIPTED_TEXT = f"Claude: {NAME}; {LOGIN_HINT}"
INSTALL_PINNED = "`make demo` installs the pinned CLI for the scripted demo model"


def pinned_cli(prefix: Path = PINNED_PREFIX) -> Path | None:
    """The pinned CLI in the virtualenv, if it is installed."""
    cli = prefix / "node_modules" / ".bin" / "claude"
    return cli if cli.is_file() else None


@asynccontextmanager
async def use_claude(
    config: ConsoleConfig, prefix: Path = PINNED_PREFIX
) -> AsyncIterator[tuple[ConsoleConfig, ClaudeState]]:
    """The config the demo's attempts run with, and what the console says about Claude.

    The scripted model serves for as long as the context is open."""
    state = discover(config.claude.command, config.claude.extra_env)
    cli = pinned_cli(prefix)
    if state.ready:
        yield config, state
        return
    if cli is None:
        yield config, dataclasses.replace(state, text=f"{state.text}; {INSTALL_PINNED}")
        return
    with demo_model() as model:
        claude = dataclasses.replace(
            config.claude,
            command=str(cli),
            extra_env={**config.claude.extra_env, **model.endpoint_env()},
        )
        yield dataclasses.replace(config, claude=claude), scripted(str(cli), SCRIPTED_TEXT)
