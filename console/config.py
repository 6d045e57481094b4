"""The console's TOML configuration, validated once when it is loaded.

Every problem is a :class:`ConfigError` whose message starts with the dotted key
(``services[0].repo: ...``), so the developer can fix the file without reading code. The rest
of the console receives frozen dataclasses and never looks at raw TOML again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent.tomlfile import read_toml
from agent.wire import SEVERITIES

T = TypeVar("T")

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


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what is wrong with it."""


def _xdg_dir(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path(os.path.expanduser(fallback))


def default_config_path() -> Path:
    """Where ``autofix`` looks without ``--config``: the XDG config dir, as desktop tools do."""
    return _xdg_dir("XDG_CONFIG_HOME", "~/.config") / "autofix" / "config.toml"


def default_state_dir() -> Path:
    """Where the console keeps its database when the file does not say: the XDG data dir."""
    return _xdg_dir("XDG_DATA_HOME", "~/.local/share") / "autofix"


@dataclass(frozen=True)
class HostConfig:
    name: str
    local: bool = False
    target: str | None = None
    port: int = 22
    user: str | None = None
    key: Path | None = None
    known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    agent_command: str = "autofix-agent stream"
    agent_config: Path | None = None
    keepalive_seconds: float = 15.0
    connect_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    repo: Path
    base_branch: str = "main"
    remote: str = "origin"
    test_command: str = "npm test"
    test_timeout_seconds: float = 600.0
    sensitive_paths: tuple[str, ...] = DEFAULT_SENSITIVE_PATHS
    github_repo: str | None = None
    app_root: str | None = None
    # Run in a new worktree before Claude (e.g. "npm ci"): worktrees start without deps.
    setup_command: str | None = None
    # A fix whose tests fail is a failed attempt (its diff is kept) rather than a review.
    require_passing_tests: bool = True


@dataclass(frozen=True)
class ClaudeConfig:
    command: str = "claude"
    model: str | None = None
    max_turns: int = 30
    max_budget_usd: float | None = None
    timeout_seconds: float = 900.0
    # Allow rules. None means Read(./**), Edit(./**) and Bash(<the service's test_command>);
    # Glob and Grep follow the Read rule, Write the Edit rule (see
    # console/fix/sandbox/claude_policy.py).
    allowed_tools: tuple[str, ...] | None = None
    disallowed_tools: tuple[str, ...] = DEFAULT_DISALLOWED_TOOLS
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GitHubConfig:
    api_url: str = "https://api.github.com"
    # None means: the GITHUB_TOKEN environment variable, else `gh auth token`.
    token: str | None = None
    draft: bool = False
    labels: tuple[str, ...] = ("autofix",)


@dataclass(frozen=True)
class TelegramConfig:
    """The phone workflow. The bot token never sits in this file: it comes from the
    environment variable ``token_env`` or the file ``token_file``."""

    enabled: bool = False
    token_env: str = "AUTOFIX_TELEGRAM_TOKEN"
    token_file: Path | None = None
    # Only these Telegram user ids may approve, skip or retry.
    allowed_user_ids: tuple[int, ...] = ()
    # Where notifications go (a private chat id equals the user id); default: allowed users.
    chat_ids: tuple[int, ...] = ()
    api_base_url: str = "https://api.telegram.org"


@dataclass(frozen=True)
class WorktreeConfig:
    delete_branch_on_discard: bool = False
    # A spare checkout of each service's base under .worktrees/ready, so an attempt starts
    # with a rename instead of a checkout; it costs one checkout of disk per service.
    keep_ready: bool = True


@dataclass(frozen=True)
class ConsoleConfig:
    state_dir: Path = field(default_factory=default_state_dir)
    auto_approve: tuple[str, ...] = ()
    concurrency: int = 1
    hosts: tuple[HostConfig, ...] = ()
    services: tuple[ServiceConfig, ...] = ()
    claude: ClaudeConfig = field(default_factory=ClaudeConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    worktree: WorktreeConfig = field(default_factory=WorktreeConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "console.db"

    def service(self, name: str) -> ServiceConfig | None:
        """The service an error names, or None when the agent reports one not configured here."""
        for service in self.services:
            if service.name == name:
                return service
        return None


# --- value readers: each checks one key and names it in the error ---------------------------


def _type_name(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else type(value).__name__


def _fail(key: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"{key}: must be {what}, got {_type_name(value)} {value!r}")


def _string(value: Any, key: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(key, "a string", value)
    if not empty_ok and not value.strip():
        raise ConfigError(f"{key}: must not be empty")
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise ConfigError(f"{key}: must not contain control characters")
    return value


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "true or false", value)
    return value


def _integer(value: Any, key: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(key, "an integer", value)
    if value < minimum:
        raise ConfigError(f"{key}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}: must be at most {maximum}, got {value}")
    return value


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(key, "a number", value)
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{key}: must be a positive finite number, got {value}")
    return float(value)


def _path(value: Any, key: str) -> Path:
    return Path(os.path.expanduser(_string(value, key)))


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(key, "a list of strings", value)
    return tuple(_string(item, f"{key}[{i}]") for i, item in enumerate(value))


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(key, "a table", value)
    return value


def _unknown(table: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for name in table:
        if name not in allowed:
            raise ConfigError(
                f"{prefix}{name}: unknown key (expected one of {', '.join(sorted(allowed))})"
            )


def _optional(
    table: dict[str, Any], name: str, prefix: str, read: Callable[[Any, str], T]
) -> T | None:
    if name not in table:
        return None
    return read(table[name], f"{prefix}{name}")


# --- sections -------------------------------------------------------------------------------

_HOST_KEYS = {
    "name",
    "local",
    "target",
    "port",
    "user",
    "key",
    "known_hosts",
    "agent_command",
    "agent_config",
    "keepalive_seconds",
    "connect_timeout_seconds",
}


def _host(raw: Any, index: int) -> HostConfig:
    where = f"hosts[{index}]"
    table = _table(raw, where)
    prefix = f"{where}."
    _unknown(table, _HOST_KEYS, prefix)
    if "name" not in table:
        raise ConfigError(f"{prefix}name: missing (every host needs a name)")
    name = _string(table["name"], f"{prefix}name")
    local = _boolean(table.get("local", False), f"{prefix}local")
    target = _optional(table, "target", prefix, _string)
    if local and target is not None:
        raise ConfigError(f"{prefix}target: a local host runs the agent here and has no target")
    if not local and target is None:
        raise ConfigError(f"{prefix}target: missing (a host needs a target unless local = true)")
    agent_config = _optional(table, "agent_config", prefix, _path)
    if agent_config is not None and not local:
        raise ConfigError(
            f"{prefix}agent_config: only for local hosts; a remote agent reads its own config"
        )
    defaults = HostConfig(name=name)
    known_hosts = _optional(table, "known_hosts", prefix, _path) or defaults.known_hosts
    return HostConfig(
        name=name,
        local=local,
        target=target,
        port=_integer(table.get("port", 22), f"{prefix}port", 1, 65535),
        user=_optional(table, "user", prefix, _string),
        key=_optional(table, "key", prefix, _path),
        known_hosts=known_hosts,
        agent_command=_string(
            table.get("agent_command", defaults.agent_command), f"{prefix}agent_command"
        ),
        agent_config=agent_config,
        keepalive_seconds=_positive(
            table.get("keepalive_seconds", defaults.keepalive_seconds),
            f"{prefix}keepalive_seconds",
        ),
        connect_timeout_seconds=_positive(
            table.get("connect_timeout_seconds", defaults.connect_timeout_seconds),
            f"{prefix}connect_timeout_seconds",
        ),
    )


_SERVICE_KEYS = {
    "name",
    "repo",
    "base_branch",
    "remote",
    "test_command",
    "test_timeout_seconds",
    "sensitive_paths",
    "github_repo",
    "app_root",
    "setup_command",
    "require_passing_tests",
}


def _github_repo(value: Any, key: str) -> str:
    text = _string(value, key)
    if not _GITHUB_REPO.match(text):
        raise ConfigError(f"{key}: must look like owner/name, got {text!r}")
    return text


def _service(raw: Any, index: int) -> ServiceConfig:
    where = f"services[{index}]"
    table = _table(raw, where)
    prefix = f"{where}."
    _unknown(table, _SERVICE_KEYS, prefix)
    for required in ("name", "repo"):
        if required not in table:
            raise ConfigError(f"{prefix}{required}: missing (every service needs name and repo)")
    defaults = ServiceConfig(name="", repo=Path())
    sensitive = defaults.sensitive_paths
    if "sensitive_paths" in table:
        sensitive = _strings(table["sensitive_paths"], f"{prefix}sensitive_paths")
    return ServiceConfig(
        name=_string(table["name"], f"{prefix}name"),
        repo=_path(table["repo"], f"{prefix}repo"),
        base_branch=_string(table.get("base_branch", "main"), f"{prefix}base_branch"),
        remote=_string(table.get("remote", "origin"), f"{prefix}remote"),
        test_command=_string(table.get("test_command", "npm test"), f"{prefix}test_command"),
        test_timeout_seconds=_positive(
            table.get("test_timeout_seconds", 600.0), f"{prefix}test_timeout_seconds"
        ),
        sensitive_paths=sensitive,
        github_repo=_optional(table, "github_repo", prefix, _github_repo),
        app_root=_optional(table, "app_root", prefix, _string),
        setup_command=_optional(table, "setup_command", prefix, _string),
        require_passing_tests=_boolean(
            table.get("require_passing_tests", True), f"{prefix}require_passing_tests"
        ),
    )


def _claude(raw: Any) -> ClaudeConfig:
    table = _table(raw, "claude")
    prefix = "claude."
    _unknown(
        table,
        {
            "command",
            "model",
            "max_turns",
            "max_budget_usd",
            "timeout_seconds",
            "allowed_tools",
            "disallowed_tools",
            "extra_env",
        },
        prefix,
    )
    extra_env: dict[str, str] = {}
    if "extra_env" in table:
        env = _table(table["extra_env"], f"{prefix}extra_env")
        for name, value in env.items():
            key = f"{prefix}extra_env.{name}"
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"{key}: not a valid environment variable name")
            extra_env[name] = _string(value, key, empty_ok=True)
    allowed = _optional(table, "allowed_tools", prefix, _strings)
    for rule in allowed or ():
        name = rule.split("(", 1)[0].strip()
        if "(" in rule and name in _UNMATCHED_PATH_TOOLS:
            raise ConfigError(
                f"{prefix}allowed_tools: {rule!r} never matches: Claude Code matches paths "
                f"only on Read and Edit rules (use {_UNMATCHED_PATH_TOOLS[name]}(...))"
            )
    disallowed = DEFAULT_DISALLOWED_TOOLS
    if "disallowed_tools" in table:
        disallowed = _strings(table["disallowed_tools"], f"{prefix}disallowed_tools")
    return ClaudeConfig(
        command=_string(table.get("command", "claude"), f"{prefix}command"),
        model=_optional(table, "model", prefix, _string),
        max_turns=_integer(table.get("max_turns", 30), f"{prefix}max_turns", 1),
        max_budget_usd=_optional(table, "max_budget_usd", prefix, _positive),
        timeout_seconds=_positive(table.get("timeout_seconds", 900.0), f"{prefix}timeout_seconds"),
        allowed_tools=allowed,
        disallowed_tools=disallowed,
        extra_env=extra_env,
    )


def _github(raw: Any) -> GitHubConfig:
    table = _table(raw, "github")
    prefix = "github."
    _unknown(table, {"api_url", "token", "draft", "labels"}, prefix)
    api_url = _string(table.get("api_url", GitHubConfig.api_url), f"{prefix}api_url")
    if not re.match(r"^https?://[^/\s]+", api_url):
        raise ConfigError(f"{prefix}api_url: must be an http(s) URL, got {api_url!r}")
    labels = GitHubConfig.labels
    if "labels" in table:
        labels = _strings(table["labels"], f"{prefix}labels")
    return GitHubConfig(
        api_url=api_url.rstrip("/"),
        token=_optional(table, "token", prefix, _string),
        draft=_boolean(table.get("draft", False), f"{prefix}draft"),
        labels=labels,
    )


def _ids(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _fail(key, "a list of Telegram numeric ids", value)
    ids = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise _fail(f"{key}[{i}]", "an integer id", item)
        ids.append(item)
    return tuple(ids)


def _telegram(raw: Any) -> TelegramConfig:
    table = _table(raw, "telegram")
    prefix = "telegram."
    if "token" in table:
        raise ConfigError(
            f"{prefix}token: the bot token is not kept in the config; "
            "put it in the environment variable named by token_env, or in token_file"
        )
    _unknown(
        table,
        {"enabled", "token_env", "token_file", "allowed_user_ids", "chat_ids", "api_base_url"},
        prefix,
    )
    enabled = _boolean(table.get("enabled", bool(table)), f"{prefix}enabled")
    allowed = _ids(table.get("allowed_user_ids", []), f"{prefix}allowed_user_ids")
    if enabled and not allowed:
        raise ConfigError(
            f"{prefix}allowed_user_ids: list at least one Telegram user id allowed to decide"
        )
    base = _string(table.get("api_base_url", TelegramConfig.api_base_url), f"{prefix}api_base_url")
    if not re.match(r"^https?://[^/\s]+", base):
        raise ConfigError(f"{prefix}api_base_url: must be an http(s) URL, got {base!r}")
    return TelegramConfig(
        enabled=enabled,
        token_env=_string(table.get("token_env", TelegramConfig.token_env), f"{prefix}token_env"),
        token_file=_optional(table, "token_file", prefix, _path),
        allowed_user_ids=allowed,
        chat_ids=_ids(table.get("chat_ids", []), f"{prefix}chat_ids"),
        api_base_url=base.rstrip("/"),
    )


def _worktree(raw: Any) -> WorktreeConfig:
    table = _table(raw, "worktree")
    _unknown(table, {"delete_branch_on_discard", "keep_ready"}, "worktree.")
    return WorktreeConfig(
        delete_branch_on_discard=_boolean(
            table.get("delete_branch_on_discard", False), "worktree.delete_branch_on_discard"
        ),
        keep_ready=_boolean(table.get("keep_ready", True), "worktree.keep_ready"),
    )


def _auto_approve(value: Any) -> tuple[str, ...]:
    severities = _strings(value, "auto_approve")
    for i, severity in enumerate(severities):
        if severity not in SEVERITIES:
            raise ConfigError(
                f"auto_approve[{i}]: must be one of {', '.join(SEVERITIES)}, got {severity!r}"
            )
    return tuple(dict.fromkeys(severities))


def _unique_names(items: Sequence[HostConfig | ServiceConfig], section: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            raise ConfigError(
                f"{section}[{i}].name: duplicate name {item.name!r} "
                f"(already used by {section}[{seen[item.name]}])"
            )
        seen[item.name] = i


def parse_config(data: dict[str, Any]) -> ConsoleConfig:
    """Build a validated config from a parsed TOML document (tests build documents directly)."""
    table = _table(data, "config")
    _unknown(
        table,
        {
            "state_dir",
            "auto_approve",
            "concurrency",
            "hosts",
            "services",
            "claude",
            "github",
            "worktree",
            "telegram",
        },
        "",
    )
    state_dir = _optional(table, "state_dir", "", _path) or default_state_dir()

    raw_hosts = table.get("hosts", [])
    if not isinstance(raw_hosts, list):
        raise _fail("hosts", "an array of tables ([[hosts]])", raw_hosts)
    hosts = tuple(_host(raw, i) for i, raw in enumerate(raw_hosts))
    _unique_names(hosts, "hosts")

    raw_services = table.get("services", [])
    if not isinstance(raw_services, list):
        raise _fail("services", "an array of tables ([[services]])", raw_services)
    services = tuple(_service(raw, i) for i, raw in enumerate(raw_services))
    _unique_names(services, "services")

    return ConsoleConfig(
        state_dir=state_dir,
        auto_approve=_auto_approve(table.get("auto_approve", [])),
        concurrency=_integer(table.get("concurrency", 1), "concurrency", 1, 64),
        hosts=hosts,
        services=services,
        claude=_claude(table.get("claude", {})),
        github=_github(table.get("github", {})),
        worktree=_worktree(table.get("worktree", {})),
        telegram=_telegram(table.get("telegram", {})),
    )


def load_config(path: str | os.PathLike[str] | None = None) -> ConsoleConfig:
    """Read and validate the config file; every failure is a ConfigError naming the file."""
    p = Path(path) if path is not None else default_config_path()
    p = p.expanduser()
    data = read_toml(p, ConfigError)
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
