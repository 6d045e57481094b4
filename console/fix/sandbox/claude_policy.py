"""What the fixer's Claude Code may do, written as the CLI's own settings and checked at start.

The CLI runs in ``dontAsk`` mode: a tool call with no allow rule is refused, nobody is asked.
So the allow list is short (read and edit inside the worktree, run the test command) and the
deny list names what must stay out of reach even if an allow rule were too wide: the
developer's keys and cloud credentials, Claude's own config and memory, the main checkout's
git directory, ``.env`` and key files. The Bash sandbox (bubblewrap) holds every command
that does run: no network, writes only inside the worktree, credential variables removed.

Only ``Read(path)`` and ``Edit(path)`` rules are matched against paths by the CLI (Glob and
Grep follow Read rules, Write follows Edit rules), so no other path rule is ever written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.fix.transcript import SystemInit

WORKTREE_SCOPE = "(./**)"
# Tool names a rule may use bare; Claude Code matches paths only on Read and Edit rules.
READ_TOOLS = ("Read", "Glob", "Grep")
EDIT_TOOLS = ("Edit", "Write", "MultiEdit", "NotebookEdit")
# The built-in tools an allow rule makes available (``--tools``): Read rules cover Glob and
# Grep, Edit rules cover Write.
_IMPLIED = {"Read": ("Read", "Glob", "Grep"), "Edit": ("Edit", "Write")}
PERMISSION_MODE = "dontAsk"
CREDENTIALS_FILE = ".credentials.json"
SETTINGS_FILE = "autofix-settings.json"
# Under the home directory: keys, cloud and tool credentials, Claude's own config.
HOME_SECRETS = (".ssh", ".aws", ".gnupg", ".docker", ".kube", ".config/gh", ".claude")
HOME_SECRET_FILES = (".netrc", ".npmrc", ".pypirc", ".git-credentials", ".claude.json")
# Anywhere: environment files and private keys.
SECRET_FILE_PATTERNS = (
    "**/.env*",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/*.pfx",
    "**/id_rsa*",
    "**/id_ecdsa*",
    "**/id_ed25519*",
    "**/.git-credentials",
    "**/.netrc",
)
# Variables the sandbox removes from every Bash command even if they reached the CLI.
SECRET_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AUTOFIX_TELEGRAM_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "NPM_TOKEN",
    "SSH_AUTH_SOCK",
)


@dataclass(frozen=True)
class Policy:
    """One attempt's permission rules, tool list and sandbox, as handed to the CLI."""

    tools: tuple[str, ...]
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    secret_env: tuple[str, ...] = SECRET_ENV
    # Tools the CLI adds of its own for the run (``StructuredOutput`` with ``--json-schema``).
    cli_tools: tuple[str, ...] = ()

    def settings(self) -> dict[str, Any]:
        """The ``--settings`` document: rules, the sandbox, and no memory, hooks or MCP."""
        return {
            "permissions": {
                "allow": list(self.allow),
                "deny": list(self.deny),
                "defaultMode": PERMISSION_MODE,
                "disableBypassPermissionsMode": "disable",
            },
            "sandbox": {
                "enabled": True,
                "failIfUnavailable": True,
                "allowUnsandboxedCommands": False,
                "autoAllowBashIfSandboxed": False,
                "network": {"allowedDomains": [], "strictAllowlist": True},
                "credentials": {"envVars": [{"name": n, "mode": "deny"} for n in self.secret_env]},
            },
            "autoMemoryEnabled": False,
            "disableAllHooks": True,
            "enableAllProjectMcpServers": False,
            "includeCoAuthoredBy": False,
        }

    def write(self, path: Path) -> Path:
        """Write the settings file, readable by this user only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.settings(), out, indent=2)
        return path

    def init_problem(self, init: SystemInit) -> str | None:
        """Why the CLI's init line shows a run other than the one asked for, or None."""
        problems = []
        expected = {*self.tools, *self.cli_tools}
        if set(init.tools) != expected:
            problems.append(f"tools {sorted(init.tools)} instead of {sorted(expected)}")
        if init.permission_mode != PERMISSION_MODE:
            problems.append(f"permission mode {init.permission_mode!r} instead of dontAsk")
        if init.mcp_servers:
            problems.append(f"MCP servers {list(init.mcp_servers)} instead of none")
        if init.sandbox_enabled is False:
            problems.append("the Bash sandbox off")
        if not problems:
            return None
        return "Claude Code started with " + "; ".join(problems)


def default_allow(test_command: str) -> tuple[str, ...]:
    """Reading and editing inside the worktree, and the service's test command; nothing else."""
    return (f"Read{WORKTREE_SCOPE}", f"Edit{WORKTREE_SCOPE}", f"Bash({test_command})")


def scoped_rules(rules: Iterable[str]) -> tuple[str, ...]:
    """Configured allow rules as the CLI matches them: a bare path tool means the worktree
    (a bare ``Edit`` would allow edits to any file on the machine), under its Read or Edit
    name, since a bare ``Glob`` or ``Write`` rule would be one more name for the same thing."""
    scoped: list[str] = []
    for raw in rules:
        rule = raw.strip()
        if rule in READ_TOOLS:
            rule = f"Read{WORKTREE_SCOPE}"
        elif rule in EDIT_TOOLS:
            rule = f"Edit{WORKTREE_SCOPE}"
        if rule and rule not in scoped:
            scoped.append(rule)
    return tuple(scoped)


def tools_for(allow: Iterable[str]) -> tuple[str, ...]:
    """The built-in tools to make available (``--tools``): those the allow rules name."""
    tools: list[str] = []
    for rule in allow:
        name = rule.split("(", 1)[0].strip()
        for tool in _IMPLIED.get(name, (name,)):
            if tool and tool not in tools:
                tools.append(tool)
    return tuple(tools)


def _absolute(path: Path) -> str:
    """An absolute path as a rule writes it (``//`` root; a single ``/`` is settings-relative)."""
    return "/" + str(path.resolve())


def deny_rules(
    *,
    home: Path,
    config_dirs: Iterable[Path],
    git_dirs: Iterable[Path],
    disallowed: Iterable[str],
) -> tuple[str, ...]:
    """Read and Edit deny rules for every place the fixer must never touch."""
    places = [home / name for name in HOME_SECRETS]
    places += [*config_dirs, *git_dirs]
    rules: list[str] = [d.strip() for d in disallowed if d.strip()]
    for place in dict.fromkeys(p.resolve() for p in places):
        rules += [f"Read({_absolute(place)}/**)", f"Edit({_absolute(place)}/**)"]
    for name in HOME_SECRET_FILES:
        rules += [f"Read({_absolute(home / name)})", f"Edit({_absolute(home / name)})"]
    for pattern in SECRET_FILE_PATTERNS:
        rules += [f"Read({pattern})", f"Edit({pattern})"]
    rules += ["Edit(**/.git)", "Edit(**/.git/**)"]
    return tuple(dict.fromkeys(rules))


def build_policy(
    *,
    allowed: tuple[str, ...] | None,
    disallowed: Iterable[str],
    test_command: str,
    home: Path,
    config_dirs: Iterable[Path],
    git_dirs: Iterable[Path],
    read_only: bool = False,
    cli_tools: tuple[str, ...] = (),
) -> Policy:
    """The policy for one attempt; ``allowed`` None means :func:`default_allow`.

    ``read_only`` (a service that stops at the report) keeps only the reading tools of the
    allow rules: no edit tool and no command is offered, and edits are denied outright.
    """
    allow = default_allow(test_command) if allowed is None else scoped_rules(allowed)
    extra_deny: tuple[str, ...] = ()
    if read_only:
        allow = tuple(rule for rule in allow if rule.split("(", 1)[0].strip() in READ_TOOLS)
        extra_deny = ("Edit", "Write", "Bash")
    deny = deny_rules(
        home=home,
        config_dirs=config_dirs,
        git_dirs=git_dirs,
        disallowed=(*disallowed, *extra_deny),
    )
    return Policy(tools=tools_for(allow), allow=allow, deny=deny, cli_tools=cli_tools)


def prepare_config_dir(private: Path, source: Path, *, keep_sessions: bool = False) -> Path:
    """A Claude config dir of the console's own, fresh for each attempt.

    Nothing of the developer's Claude setup (settings, CLAUDE.md, memory, MCP servers,
    plugins) and nothing an earlier attempt left (sessions, memory) is kept: only the login
    (``.credentials.json``) is carried over, and only when the developer's copy is newer, so a
    token the CLI refreshed here is not overwritten with an older one. ``keep_sessions``
    (a later round of the same attempt, resuming its session) spares the sessions too.
    """
    if keep_sessions and private.is_dir():
        os.chmod(private, 0o700)
    else:
        fresh_dir(private, keep=CREDENTIALS_FILE)
    theirs, ours = source / CREDENTIALS_FILE, private / CREDENTIALS_FILE
    if _same(source, private) or not theirs.is_file():
        return private
    if not ours.exists() or theirs.stat().st_mtime > ours.stat().st_mtime:
        fd = os.open(ours, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(theirs.read_bytes())
        shutil.copystat(theirs, ours)
    return private


def fresh_dir(path: Path, keep: str | None = None) -> Path:
    """An empty directory only this user can enter (``keep`` names one entry to spare)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    for entry in path.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return path


def developer_config_dir(env: Mapping[str, str]) -> Path:
    """Where the developer's own Claude Code keeps its login."""
    configured = env.get("CLAUDE_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(env.get("HOME") or Path.home()).expanduser() / ".claude"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
