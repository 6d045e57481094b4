"""Whether fix attempts can reach a model: the Claude Code CLI found, logged in, or neither.

A console whose every attempt is bound to fail must say so where a person looks (the header
and the Claude panel), before anyone approves a fix. Telling needs no network and no run of
the CLI: the CLI is on PATH (or at the configured path) or not, and it is logged in when the
environment an attempt gives it (console/fix/sandbox/childenv.py, plus ``claude.extra_env``)
holds a key or token, or when the developer's Claude config dir holds the ``.credentials.json`` that
``claude`` writes on login and that each attempt's private config dir is given a copy of.
A login the CLI keeps elsewhere (another machine's keychain) is not seen; the attempt's own
"Not logged in" failure then still says why.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from console.fix.sandbox.childenv import child_env
from console.fix.sandbox.claude_policy import developer_config_dir

# Any one of these in the CLI's environment is a login (an API key, a token, a cloud provider).
LOGIN_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
)
CREDENTIALS_FILE = ".credentials.json"
INSTALL_HINT = "npm i -g @anthropic-ai/claude-code"

Kind = Literal["ready", "missing", "not_logged_in", "scripted"]


@dataclass(frozen=True)
class ClaudeState:
    """What the console can say about Claude before any attempt runs."""

    kind: Kind
    # The CLI that attempts run (as found), or the command that was looked for.
    command: str
    # The line a person reads: what is wrong and what to do about it.
    text: str

    @property
    def ready(self) -> bool:
        return self.kind == "ready"


def _executable(command: str) -> str | None:
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    return shutil.which(argv[0]) if argv else None


def is_logged_in(env: Mapping[str, str]) -> bool:
    """Whether a CLI started with ``env`` has credentials (see the module docstring)."""
    if any(env.get(name, "").strip() for name in LOGIN_ENV):
        return True
    credentials = developer_config_dir(env) / CREDENTIALS_FILE
    try:
        return credentials.is_file() and credentials.stat().st_size > 0
    except OSError:
        return False


def discover(
    command: str, extra_env: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> ClaudeState:
    """The state of the configured ``claude.command`` on this machine, without running it."""
    found = _executable(command)
    if found is None:
        return ClaudeState("missing", command, f"Claude: {command!r} not found; {INSTALL_HINT}")
    env = child_env(os.environ if environ is None else environ, allow_credentials=True,
                    extra=extra_env)  # fmt: skip
    if not is_logged_in(env):
        return ClaudeState(
            "not_logged_in",
            found,
            "Claude: not logged in; run `claude` once and log in (or set ANTHROPIC_API_KEY)",
        )
    return ClaudeState("ready", found, "Claude: ready")


def scripted(command: str, text: str) -> ClaudeState:
    """Attempts run ``command`` against a scripted model (the demo without a login)."""
    return ClaudeState("scripted", command, text)
