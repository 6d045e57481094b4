"""The console's TOML configuration, validated once when it is loaded.

Every problem is a :class:`ConfigError` whose message starts with the full key
(``services[0].repo: ...``), so the developer can fix the file without reading code. The rest
of the console receives frozen dataclasses and never looks at raw TOML again. The tables are
declared with ``agent.configschema`` (whose docstring says how to add a key); the README's
"Console config reference" is checked against them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.configschema import ConfigError as ConfigError  # what callers catch
from agent.configschema import (
    Invalid,
    boolean,
    config_table,
    env_name,
    env_table,
    integer,
    many,
    number,
    one_of,
    parse_table,
    path,
    section,
    setting,
    tables,
    text,
    then,
    url,
    url_without_password,
)
from agent.tomlfile import load_table
from agent.wire import SEVERITIES
from console.automerge.policy import AutoMergePolicy

DEFAULT_SENSITIVE_PATHS: tuple[str, ...] = (
    ".github/**",
    "**/migrations/**",
    "package-lock.json",
    ".env*",
    # What defines the test run (scripts, runner config, package manager config): an edit
    # here changes what the console executes, not just the code under test.
    "package.json",
    ".npmrc",
    ".yarnrc*",
    "yarn.lock",
    "pnpm-lock.yaml",
    "pnpm-workspace.yaml",
    "jest.config.*",
    "vitest.config.*",
    "vitest.workspace.*",
    "vite.config.*",
    ".mocharc*",
    "karma.conf.*",
    "playwright.config.*",
    "cypress.config.*",
    ".nycrc*",
    ".c8rc*",
    "babel.config.*",
    ".babelrc*",
    ".husky/**",
    ".gitattributes",
    "Makefile",
)
DEFAULT_DISALLOWED_TOOLS: tuple[str, ...] = ("WebFetch", "WebSearch")
# Path rules Claude Code never matches, and the rule name that does cover them.
_UNMATCHED_PATH_TOOLS = {"Write": "Edit", "MultiEdit": "Edit", "Glob": "Read", "Grep": "Read"}
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def _xdg_dir(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path(os.path.expanduser(fallback))


# The exit status of an ``autofix`` command stopped by its config or its installation.
EXIT_CONFIG = 2


def default_config_path() -> Path:
    """Where ``autofix`` looks without ``--config``: the XDG config dir, as desktop tools do."""
    return _xdg_dir("XDG_CONFIG_HOME", "~/.config") / "autofix" / "config.toml"


def default_state_dir() -> Path:
    """Where the console keeps its database when the file does not say: the XDG data dir."""
    return _xdg_dir("XDG_DATA_HOME", "~/.local/share") / "autofix"


_TEXT = text()
_PATH = path()
_STRINGS = many(_TEXT, "strings")
_SECONDS = number(positive=True)
# services[].stop_at: where an attempt stops (see console/attempts.py and the engine's publish).
STOP_POINTS = ("report", "diff", "pr")


@config_table
class HostConfig:
    """One machine whose agent stream the console reads."""

    name: str = setting(
        required="every host needs a name", read=_TEXT, doc="the host's name in the console"
    )
    local: bool = setting(
        default=False,
        read=boolean(),
        doc="run the agent command as a local subprocess instead of over SSH",
    )
    target: str | None = setting(
        default=None,
        read=_TEXT,
        shown="required unless `local`",
        doc="SSH destination (host name or address)",
    )
    port: int = setting(default=22, read=integer(minimum=1, maximum=65535), doc="SSH port")
    user: str | None = setting(default=None, read=_TEXT, doc="SSH user")
    key: Path | None = setting(
        default=None, read=_PATH, doc="private key for the forced-command login"
    )
    known_hosts: Path = setting(
        default_factory=lambda: Path("~/.ssh/known_hosts").expanduser(),
        read=_PATH,
        shown='`"~/.ssh/known_hosts"`',
        doc="host keys, checked strictly",
    )
    agent_command: str = setting(
        default="autofix-agent stream",
        read=_TEXT,
        doc="the command run on the host; `--since N` is appended",
    )
    agent_config: Path | None = setting(
        default=None, read=_PATH, doc="local hosts only: passed as `--config`"
    )
    keepalive_seconds: float = setting(default=15.0, read=_SECONDS, doc="SSH keepalive interval")
    connect_timeout_seconds: float = setting(default=10.0, read=_SECONDS, doc="SSH connect timeout")

    def cross_check(self) -> None:
        if self.local and self.target is not None:
            raise Invalid("a local host runs the agent here and has no target", "target")
        if not self.local and self.target is None:
            raise Invalid("missing (a host needs a target unless local = true)", "target")
        if self.agent_config is not None and not self.local:
            raise Invalid(
                "only for local hosts; a remote agent reads its own config", "agent_config"
            )


def _owner_name(text: str) -> str:
    if not _GITHUB_REPO.match(text):
        raise Invalid(f"must look like owner/name, got {text!r}")
    return text


@config_table
class ServiceConfig:
    """One service: the agent's name for it and the local checkout fixes are made in."""

    name: str = setting(
        required="every service needs name and repo", read=_TEXT, doc="the agent's service name"
    )
    repo: Path = setting(
        required="every service needs name and repo", read=_PATH, doc="the local git checkout"
    )
    base_branch: str = setting(default="main", read=_TEXT, doc="where worktrees start")
    remote: str = setting(default="origin", read=_TEXT, doc="where branches are pushed")
    test_command: str = setting(
        default="npm test",
        read=_TEXT,
        doc="run caged in the worktree on Claude's edits (see Security model); also the only "
        "shell command Claude may run",
    )
    test_timeout_seconds: float = setting(
        default=600.0, read=_SECONDS, doc="the test run's timeout"
    )
    sensitive_paths: tuple[str, ...] = setting(
        default=DEFAULT_SENSITIVE_PATHS,
        read=many(_TEXT, "glob patterns"),
        doc="flagged in review when a diff touches them (the defaults are CI, migrations, "
        "secrets and what defines the test run); a name without `/` matches at any depth; "
        "setting the key replaces the list",
    )
    github_repo: str | None = setting(
        default=None,
        read=then(_TEXT, _owner_name),
        shown="from the remote URL",
        doc="`owner/name` for PRs",
    )
    app_root: str | None = setting(
        default=None,
        read=_TEXT,
        doc="the app's root on the prod host, to map stack paths onto the repo",
    )
    setup_command: str | None = setting(
        default=None,
        read=_TEXT,
        doc="run in a new worktree before Claude, on the base's code only (e.g. `npm ci`): "
        "with network, without the console's secrets",
    )
    build_command: str | None = setting(
        default=None,
        read=_TEXT,
        doc="run in a new worktree after `setup_command`, before Claude, under the same rules "
        "(e.g. `npx tsc --sourceMap`): the source maps it writes turn stack frames in built "
        "JavaScript into the original source lines",
    )
    require_passing_tests: bool = setting(
        default=True,
        read=boolean(),
        doc="a fix whose tests fail is a failed attempt (its diff is kept) rather than a review",
    )
    stop_at: str = setting(
        default="pr",
        read=one_of(STOP_POINTS),
        doc="how far an attempt goes: `report` runs Claude read-only (no edit tools) for the "
        "investigation alone; `diff` ends at the reviewed diff and never pushes; `pr` "
        "publishes an approved diff",
    )
    constraints: tuple[str, ...] = setting(
        default=(),
        read=_STRINGS,
        doc="extra rules added to the prompt's constraints block for this service",
    )
    resolve_after_minutes: float = setting(
        default=60.0,
        read=_SECONDS,
        doc="a merged fix's error is `resolved` once the agent saw the service start after "
        "the merge and the error then stayed away this long; an occurrence after that start "
        "is a regression",
    )
    escalate_factor: float = setting(
        default=5.0,
        read=number(minimum=1.0),
        doc="a skipped error becomes `escalating` when its last 10 minutes bring this many "
        "times its rate of the hour before (and at least this many occurrences)",
    )
    auto_merge: AutoMergePolicy = section(
        AutoMergePolicy, "auto-merge of this service's fix PRs ([services.auto_merge])"
    )

    def cross_check(self) -> None:
        if self.auto_merge.enabled and self.stop_at != "pr":
            raise Invalid(
                f"auto-merge merges pull requests, but stop_at = {self.stop_at!r} never opens "
                'one (set stop_at = "pr" or leave auto-merge off)',
                "auto_merge.enabled",
            )


@config_table
class ClaudeConfig:
    """How the Claude Code CLI is run for a fix attempt."""

    command: str = setting(default="claude", read=_TEXT, doc="the Claude Code CLI")
    model: str | None = setting(default=None, read=_TEXT, doc="passed as `--model`")
    max_turns: int = setting(default=30, read=integer(minimum=1), doc="turns one attempt may take")
    verify_rounds: int = setting(
        default=2,
        read=integer(minimum=0, maximum=10),
        doc="further rounds in the same Claude session when the tests fail on its edits, each "
        "given the failing output",
    )
    fallback_model: str | None = setting(
        default=None,
        read=_TEXT,
        doc="passed as `--fallback-model`: the model the CLI switches to when the main one is "
        "overloaded",
    )
    max_budget_usd: float = setting(
        default=2.0,
        read=_SECONDS,
        doc="one attempt's spending limit, passed as `--max-budget-usd`",
    )
    daily_budget_usd: float = setting(
        default=20.0,
        read=_SECONDS,
        doc="what the attempts of one UTC day may cost together (their recorded costs); once "
        "reached, approved attempts wait in the queue until the limit is raised and the "
        "config reloaded (`R` in the console, SIGUSR1 to `autofix serve`), or the next UTC day",
    )
    timeout_seconds: float = setting(
        default=900.0,
        read=_SECONDS,
        doc="time one attempt may take; a timeout kills the whole process tree",
    )
    # None: the rules console/fix/sandbox/claude_policy.py derives from the service.
    allowed_tools: tuple[str, ...] | None = setting(
        default=None,
        read=many(_TEXT, "permission rules"),
        shown="`Read(./**)`, `Edit(./**)` (the worktree; Glob and Grep follow Read, Write "
        "follows Edit) and `Bash(<test_command>)`",
        doc="allow rules of the console's settings file; their tools are the CLI's `--tools`; "
        "a bare path tool means the worktree; `Write(...)`, `Glob(...)`, `Grep(...)` path "
        "rules are refused (Claude Code never matches them)",
    )
    disallowed_tools: tuple[str, ...] = setting(
        default=DEFAULT_DISALLOWED_TOOLS,
        read=_STRINGS,
        doc="added to the settings file's deny rules",
    )
    extra_env: dict[str, str] = setting(
        default_factory=dict,
        read=env_table(text(empty_ok=True)),
        shown="`{}`",
        doc="variables added to the CLI's environment; the CLI otherwise gets only PATH, HOME, "
        "TERM, TMPDIR, the locale (LANG, LANGUAGE, LC_*) and its own credentials "
        "(ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL, CLAUDE_CONFIG_DIR), "
        "never the rest of the console's environment",
    )

    def cross_check(self) -> None:
        for rule in self.allowed_tools or ():
            name = rule.split("(", 1)[0].strip()
            if "(" in rule and name in _UNMATCHED_PATH_TOOLS:
                raise Invalid(
                    f"{rule!r} never matches: Claude Code matches paths only on Read and Edit "
                    f"rules (use {_UNMATCHED_PATH_TOOLS[name]}(...))",
                    "allowed_tools",
                )


@config_table
class GitHubConfig:
    """Where and how pull requests are opened."""

    api_url: str = setting(
        default="https://api.github.com",
        read=url(),
        doc="the GitHub API; for GitHub Enterprise e.g. `https://ghe.example.com/api/v3`",
    )
    token: str | None = setting(
        default=None,
        read=_TEXT,
        shown="`GITHUB_TOKEN`, then `gh auth token`",
        doc="token for opening PRs",
    )
    draft: bool = setting(default=False, read=boolean(), doc="open PRs as drafts")
    labels: tuple[str, ...] = setting(
        default=("autofix",), read=_STRINGS, doc="labels put on the PRs"
    )
    poll_seconds: float = setting(
        default=60.0,
        read=_SECONDS,
        doc="how often the console asks GitHub about its open PRs (merged? closed?); an "
        "unchanged PR is answered 304 to its ETag, which the rate limit does not count",
    )


@config_table
class TelegramConfig:
    """The phone workflow. The bot token never sits in this file: it comes from the
    environment variable ``token_env`` or the file ``token_file``."""

    enabled: bool = setting(
        default=False,
        read=boolean(),
        shown="`true` when the section exists",
        doc="the phone workflow",
    )
    token_env: str = setting(
        default="AUTOFIX_TELEGRAM_TOKEN",
        read=_TEXT,
        doc="the environment variable the bot token is read from (never from this file)",
    )
    token_file: Path | None = setting(
        default=None, read=_PATH, doc="a file the bot token is read from instead"
    )
    allowed_user_ids: tuple[int, ...] = setting(
        default=(),
        read=many(integer(), "Telegram numeric ids"),
        shown="required when enabled",
        doc="who may approve, skip or retry",
    )
    chat_ids: tuple[int, ...] = setting(
        default=(),
        read=many(integer(), "Telegram numeric ids"),
        shown="the allowed users' private chats",
        doc="where cards go; the only chats the bot answers in",
    )
    api_base_url: str = setting(
        default="https://api.telegram.org", read=url(), doc="Bot API server"
    )

    @classmethod
    def prepare_table(cls, table: dict[str, Any]) -> dict[str, Any]:
        """A ``[telegram]`` section that says anything turns the workflow on by default."""
        if "token" in table:
            raise Invalid(
                "the bot token is not kept in the config; "
                "put it in the environment variable named by token_env, or in token_file",
                "token",
            )
        return {"enabled": bool(table), **table}

    def cross_check(self) -> None:
        if self.enabled and not self.allowed_user_ids:
            raise Invalid(
                "list at least one Telegram user id allowed to decide", "allowed_user_ids"
            )


@config_table
class WorktreeConfig:
    """What happens to a fix attempt's worktree and branch."""

    delete_branch_on_discard: bool = setting(
        default=False,
        read=boolean(),
        doc="delete the branch when a skipped or failed attempt's worktree is removed",
    )
    keep_ready: bool = setting(
        default=True,
        read=boolean(),
        doc="keep a spare checkout of each service's base at `<repo>/.worktrees/ready`, so an "
        "attempt starts without checking the repository out (one more checkout on disk per "
        "service)",
    )


def _unique_names(items: Sequence[HostConfig | ServiceConfig], section: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            raise Invalid(
                f"duplicate name {item.name!r} (already used by {section}[{seen[item.name]}])",
                f"{section}[{i}].name",
            )
        seen[item.name] = i


@config_table
class ConsoleConfig:
    """The whole console config file."""

    state_dir: Path = setting(
        default_factory=default_state_dir,
        read=_PATH,
        shown='`"~/.local/share/autofix"` (under `$XDG_DATA_HOME` when set)',
        doc="the console's SQLite store (`console.db`) when `store` is unset",
    )
    store: str | None = setting(
        default=None,
        read=url_without_password(
            ("postgresql", "postgres"), "postgresql://autofix@db.example.com/autofix"
        ),
        shown="unset: the SQLite file in `state_dir`",
        doc="a PostgreSQL database a team's consoles share (`postgresql://user@host/db`, "
        "psycopg's DSN form; needs the `team` extra); its password is never written here",
    )
    store_password_env: str | None = setting(
        default=None,
        read=env_name(),
        doc="the environment variable the store's password is read from",
    )
    store_password_file: Path | None = setting(
        default=None,
        read=_PATH,
        doc="a file the store's password is read from instead (wins over the variable)",
    )
    auto_approve: tuple[str, ...] = setting(
        default=(),
        read=many(one_of(SEVERITIES), "severities", distinct=True),
        doc="severities (`low` ... `critical`) whose fix attempts start automatically; the "
        "diff still needs a person",
    )
    concurrency: int = setting(
        default=1, read=integer(minimum=1, maximum=64), doc="fix attempts running at once"
    )
    hosts: tuple[HostConfig, ...] = tables(HostConfig, "the agents to read ([[hosts]])")
    services: tuple[ServiceConfig, ...] = tables(
        ServiceConfig, "the services to fix ([[services]])"
    )
    claude: ClaudeConfig = section(ClaudeConfig, "the Claude Code CLI")
    github: GitHubConfig = section(GitHubConfig, "pull requests")
    worktree: WorktreeConfig = section(WorktreeConfig, "worktrees")
    telegram: TelegramConfig = section(TelegramConfig, "the Telegram bot")

    def cross_check(self) -> None:
        _unique_names(self.hosts, "hosts")
        _unique_names(self.services, "services")
        for key in ("store_password_env", "store_password_file"):
            if getattr(self, key) is not None and self.store is None:
                raise Invalid("is for a PostgreSQL store; set `store` too", key)

    @property
    def store_address(self) -> str | Path:
        """Where the store is: the PostgreSQL DSN when ``store`` is set, else the SQLite file."""
        return self.store if self.store is not None else self.db_path

    @property
    def db_path(self) -> Path:
        return self.state_dir / "console.db"

    def service(self, name: str) -> ServiceConfig | None:
        """The service an error names, or None when the agent reports one not configured here."""
        for service in self.services:
            if service.name == name:
                return service
        return None


def parse_config(data: dict[str, Any]) -> ConsoleConfig:
    """Build a validated config from a parsed TOML document (tests build documents directly)."""
    return parse_table(ConsoleConfig, data)


def load_config(path: str | os.PathLike[str] | None = None) -> ConsoleConfig:
    """Read and validate the config file; every failure is a ConfigError naming the file."""
    p = Path(path) if path is not None else default_config_path()
    return load_table(p.expanduser(), ConsoleConfig)
