"""The console config: a real TOML file in, frozen dataclasses or a ConfigError naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from console.config import (
    ConfigError,
    ConsoleConfig,
    default_config_path,
    load_config,
    parse_config,
)
from tests.config_documents import any_documents, parsed_and_loaded_alike

FULL = """
state_dir = "~/autofix-state"
auto_approve = ["critical", "high"]
concurrency = 2

[[hosts]]
name = "web-1"
target = "10.0.0.5"
port = 2222
user = "deploy"
key = "~/.ssh/id_web"
keepalive_seconds = 5

[[hosts]]
name = "laptop"
local = true
agent_config = "~/agent.toml"

[[services]]
name = "shop-api"
repo = "~/src/shop-api"
base_branch = "develop"
test_command = "npm run test:unit"
sensitive_paths = ["db/**"]
github_repo = "acme/shop-api"

[claude]
model = "claude-sonnet-4-5"
max_turns = 12
max_budget_usd = 2.5
allowed_tools = ["Read", "Edit"]
extra_env = { NODE_ENV = "test" }

[github]
api_url = "http://127.0.0.1:8080/"
draft = true
labels = ["autofix", "bot"]

[worktree]
delete_branch_on_discard = true
keep_ready = false
"""

# FULL with the keys it leaves out, each with a valid value: the property tests start here.
EVERY_KEY = tomllib.loads(
    FULL
    + """
[[services]]
name = "billing"
repo = "/src/billing"
remote = "upstream"
test_timeout_seconds = 120
app_root = "/srv/billing"
setup_command = "npm ci"
require_passing_tests = false

[telegram]
enabled = true
token_env = "BOT_TOKEN"
token_file = "~/.config/autofix/bot-token"
allowed_user_ids = [123456789]
chat_ids = [123456789, -1001234]
api_base_url = "http://127.0.0.1:8081"
"""
)
EVERY_KEY["hosts"][0] |= {"connect_timeout_seconds": 3, "agent_command": "autofix-agent stream"}
EVERY_KEY["hosts"][0] |= {"known_hosts": "~/.ssh/known_hosts"}
EVERY_KEY["claude"] |= {"command": "claude", "timeout_seconds": 60, "disallowed_tools": []}
EVERY_KEY["github"] |= {"token": "ghp_x"}
EVERY_KEY |= {
    "store": "postgresql://autofix@db.example.com:5432/autofix?sslmode=require",
    "store_password_env": "AUTOFIX_STORE_PASSWORD",
    "store_password_file": "~/.config/autofix/store-password",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_full_file_loads_with_paths_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(write(tmp_path, FULL))
    assert cfg.state_dir == tmp_path / "autofix-state"
    assert cfg.db_path == tmp_path / "autofix-state" / "console.db"
    assert cfg.auto_approve == ("critical", "high")
    assert cfg.concurrency == 2
    web, laptop = cfg.hosts
    assert (web.name, web.target, web.port, web.user) == ("web-1", "10.0.0.5", 2222, "deploy")
    assert web.key == tmp_path / ".ssh" / "id_web"
    assert web.keepalive_seconds == 5.0 and web.connect_timeout_seconds == 10.0
    assert laptop.local and laptop.target is None
    assert laptop.agent_config == tmp_path / "agent.toml"
    (svc,) = cfg.services
    assert svc.repo == tmp_path / "src" / "shop-api"
    assert svc.base_branch == "develop" and svc.remote == "origin"
    assert svc.sensitive_paths == ("db/**",)
    assert cfg.service("shop-api") is svc and cfg.service("other") is None
    assert cfg.claude.max_budget_usd == 2.5 and cfg.claude.allowed_tools == ("Read", "Edit")
    assert cfg.claude.extra_env == {"NODE_ENV": "test"}
    assert cfg.claude.disallowed_tools == ("WebFetch", "WebSearch")
    assert cfg.github.api_url == "http://127.0.0.1:8080" and cfg.github.draft
    assert cfg.github.labels == ("autofix", "bot")
    assert cfg.worktree.delete_branch_on_discard and not cfg.worktree.keep_ready


def test_empty_file_gives_the_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    cfg = load_config(write(tmp_path, ""))
    assert cfg == ConsoleConfig(state_dir=tmp_path / ".local" / "share" / "autofix")
    assert cfg.claude.command == "claude" and cfg.claude.max_turns == 30
    assert cfg.claude.allowed_tools is None and cfg.claude.timeout_seconds == 900.0
    assert cfg.github.api_url == "https://api.github.com" and cfg.github.token is None
    assert cfg.auto_approve == () and cfg.hosts == () and cfg.services == ()


def test_service_defaults_match_the_schema():
    cfg = parse_config({"services": [{"name": "api", "repo": "/src/api"}]})
    (svc,) = cfg.services
    assert svc.test_command == "npm test" and svc.test_timeout_seconds == 600.0
    assert {".github/**", "**/migrations/**", "package-lock.json", ".env*"} <= set(
        svc.sensitive_paths
    )
    assert {"package.json", ".npmrc", "jest.config.*"} <= set(svc.sensitive_paths)
    assert svc.github_repo is None and svc.app_root is None


def test_default_config_path_follows_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert default_config_path() == tmp_path / "cfg" / "autofix" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_config_path() == tmp_path / ".config" / "autofix" / "config.toml"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"hosts": [{"name": "a"}]}, "hosts[0].target: missing"),
        ({"hosts": [{"target": "x"}]}, "hosts[0].name: missing"),
        ({"hosts": [{"name": "a", "local": True, "target": "x"}]}, "hosts[0].target: a local"),
        ({"hosts": [{"name": "a", "target": "x", "agent_config": "/a"}]}, "hosts[0].agent_config"),
        ({"hosts": [{"name": "a", "target": "x", "port": "22"}]}, "hosts[0].port: must be an int"),
        (
            {"hosts": [{"name": "a", "target": "x", "port": 70000}]},
            "hosts[0].port: must be at most",
        ),
        ({"hosts": [{"name": "a", "target": "x", "local": "yes"}]}, "hosts[0].local: must be true"),
        ({"hosts": [{"name": "a", "target": "x", "tagret": "y"}]}, "hosts[0].tagret: unknown key"),
        (
            {"hosts": [{"name": "a", "target": "x", "keepalive_seconds": 0}]},
            "hosts[0].keepalive_seconds: must be a positive",
        ),
        ({"hosts": {"name": "a"}}, "hosts: must be an array of tables"),
        ({"services": [{"name": "api"}]}, "services[0].repo: missing"),
        ({"services": [{"repo": "/r"}]}, "services[0].name: missing"),
        ({"services": [{"name": "", "repo": "/r"}]}, "services[0].name: must not be empty"),
        ({"services": [{"name": "a", "repo": 5}]}, "services[0].repo: must be a string"),
        (
            {"services": [{"name": "a", "repo": "/r", "github_repo": "acme"}]},
            "services[0].github_repo: must look like owner/name",
        ),
        (
            {"services": [{"name": "a", "repo": "/r", "sensitive_paths": "x"}]},
            "services[0].sensitive_paths: must be a list",
        ),
        (
            {"services": [{"name": "a", "repo": "/r", "test_timeout_seconds": True}]},
            "services[0].test_timeout_seconds: must be a number, got boolean",
        ),
        (
            {"auto_approve": ["urgent"]},
            'auto_approve[0]: expected one of "low", "medium", "high", "critical", got "urgent"',
        ),
        ({"auto_approve": "high"}, "auto_approve: must be a list"),
        ({"concurrency": 0}, "concurrency: must be at least 1"),
        ({"concurrency": 1.5}, "concurrency: must be an integer"),
        ({"stat_dir": "/x"}, "stat_dir: unknown key"),
        ({"claude": {"max_turns": 0}}, "claude.max_turns: must be at least 1"),
        ({"claude": {"max_budget_usd": -1}}, "claude.max_budget_usd: must be a positive"),
        (
            {"claude": {"extra_env": {"BAD-NAME": "x"}}},
            "claude.extra_env.BAD-NAME: 'BAD-NAME' is not an environment variable name",
        ),
        ({"claude": {"extra_env": {"A": 1}}}, "claude.extra_env.A: must be a string"),
        ({"claude": {"allowed_tools": ["Read", 3]}}, "claude.allowed_tools[1]: must be a string"),
        (
            {"claude": {"allowed_tools": ["Read", "Write(./**)"]}},
            "claude.allowed_tools: 'Write(./**)' never matches",
        ),
        ({"claude": {"allowed_tools": ["Glob(src/**)"]}}, "claude.allowed_tools: 'Glob(src"),
        ({"claude": "fast"}, "claude: must be a table"),
        ({"github": {"api_url": "api.github.com"}}, "github.api_url: must be an http(s) URL"),
        ({"github": {"token": ""}}, "github.token: must not be empty"),
        ({"worktree": {"delete_branch_on_discard": 1}}, "worktree.delete_branch_on_discard"),
        ({"worktree": {"keep_ready": "yes"}}, "worktree.keep_ready"),
    ],
)
def test_bad_value_is_reported_with_its_dotted_key(data, expected):
    assert error_of(data).startswith(expected)


def test_the_document_with_every_key_is_valid():
    cfg = parse_config(EVERY_KEY)
    assert cfg.telegram.enabled and cfg.telegram.chat_ids == (123456789, -1001234)
    assert [s.name for s in cfg.services] == ["shop-api", "billing"]
    assert cfg.services[1].require_passing_tests is False
    assert cfg.claude.disallowed_tools == () and cfg.hosts[0].connect_timeout_seconds == 3.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"hosts": [{"name": "a", "tagret": "x"}]},
            "hosts[0].tagret: unknown key, did you mean 'target'? (expected one of agent_command, "
            "agent_config, connect_timeout_seconds, keepalive_seconds, key, known_hosts, local, "
            "name, port, target, user)",
        ),
        (
            {"telegram": {"alowed_user_ids": [1]}},
            "telegram.alowed_user_ids: unknown key, did you mean 'allowed_user_ids'? (expected "
            "one of allowed_user_ids, api_base_url, chat_ids, enabled, token_env, token_file)",
        ),
        (
            {"claude": {"extra_env": {"A B": "x"}}},
            "claude.extra_env.\"A B\": 'A B' is not an environment variable name (letters, "
            "digits and '_', not starting with a digit)",
        ),
        (
            {"services": [{"name": "a", "repo": "/r", "test_timeout_seconds": True}]},
            "services[0].test_timeout_seconds: must be a number, got boolean true",
        ),
        (
            {"hosts": [{"name": "a", "target": "x", "port": "22"}]},
            'hosts[0].port: must be an integer, got string "22"',
        ),
        (
            {"claude": {"timeout_seconds": float("inf")}},
            "claude.timeout_seconds: must be a positive finite number, got inf",
        ),
        ({"hosts": "web-1"}, 'hosts: must be an array of tables ([[hosts]]), got string "web-1"'),
        ({"hosts": [["web-1"]]}, 'hosts[0]: must be a table, got array ["web-1"]'),
        (
            {"telegram": {"token": "123:abc"}},
            "telegram.token: the bot token is not kept in the config; put it in the environment "
            "variable named by token_env, or in token_file",
        ),
        (
            {"telegram": {"chat_ids": [1]}},
            "telegram.allowed_user_ids: list at least one Telegram user id allowed to decide",
        ),
        (
            {"telegram": {"allowed_user_ids": ["123"]}},
            'telegram.allowed_user_ids[0]: must be an integer, got string "123"',
        ),
        (
            {"services": [{"name": "a\tb", "repo": "/r\n"}]},
            "services[0].repo: must not contain control characters",
        ),
        (
            {"store": "postgresql://autofix:hunter2@db/autofix"},
            "store: holds a password; a secret is never kept in the config (name an environment "
            "variable or a file for it)",
        ),
        (
            {"store": "postgresql://autofix@db/autofix?password=hunter2"},
            "store: holds a password; a secret is never kept in the config (name an environment "
            "variable or a file for it)",
        ),
        (
            {"store": "mysql://autofix@db/autofix"},
            "store: must be a URL like postgresql://autofix@db.example.com/autofix, got "
            "'mysql://autofix@db/autofix'",
        ),
        (
            {"store_password_env": "PGPASS"},
            "store_password_env: is for a PostgreSQL store; set `store` too",
        ),
        (
            {"store": "postgresql://a@db/x", "store_password_env": "1X"},
            "store_password_env: '1X' is not an environment variable name (letters, digits and "
            "'_', not starting with a digit)",
        ),
        (
            {"services": [{"name": "api\x9b31m", "repo": "/r"}]},
            "services[0].name: must not contain control characters",
        ),
    ],
)
def test_each_problem_has_one_exact_message_starting_with_the_full_key(data, message):
    assert error_of(data) == message


def test_a_store_dsn_selects_postgresql_and_its_absence_the_sqlite_file(tmp_path):
    team = parse_config({"store": "postgresql://autofix@db/autofix", "state_dir": str(tmp_path)})
    assert team.store_address == "postgresql://autofix@db/autofix"
    alone = parse_config({"state_dir": str(tmp_path)})
    assert alone.store is None and alone.store_address == tmp_path / "console.db"


def test_a_telegram_section_turns_the_bot_on_unless_it_says_otherwise():
    assert parse_config({"telegram": {"allowed_user_ids": [7]}}).telegram.enabled
    assert not parse_config({"telegram": {"enabled": False}}).telegram.enabled
    assert not parse_config({"telegram": {}}).telegram.enabled
    assert not parse_config({}).telegram.enabled


def test_repeated_auto_approve_severities_count_once():
    assert parse_config({"auto_approve": ["high", "low", "high"]}).auto_approve == ("high", "low")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_documents(ConsoleConfig, EVERY_KEY))
def test_any_document_or_its_file_gives_a_config_or_an_error_naming_a_key(
    tmp_path_factory, document
):
    cfg = parsed_and_loaded_alike(
        parse_config, load_config, ConsoleConfig, document, tmp_path_factory.mktemp("cfg")
    )
    if cfg is not None:
        assert len({h.name for h in cfg.hosts}) == len(cfg.hosts)
        assert all(h.local or h.target for h in cfg.hosts)
        assert not cfg.telegram.enabled or cfg.telegram.allowed_user_ids


def test_duplicate_host_names_are_refused():
    message = error_of({"hosts": [{"name": "web", "target": "a"}, {"name": "web", "target": "b"}]})
    assert message.startswith("hosts[1].name: duplicate name 'web'")
    assert "hosts[0]" in message


def test_duplicate_service_names_are_refused():
    message = error_of({"services": [{"name": "api", "repo": "/a"}, {"name": "api", "repo": "/b"}]})
    assert message.startswith("services[1].name: duplicate name 'api'")


def test_file_errors_name_the_file_and_the_key(tmp_path):
    path = write(tmp_path, '[[services]]\nname = "api"\n')
    with pytest.raises(ConfigError, match=r"config\.toml: services\[0\]\.repo: missing"):
        load_config(path)


def test_invalid_toml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "concurrency = = 2\n"))


def test_missing_and_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'state_dir = "/caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_config_is_frozen():
    cfg = parse_config({})
    with pytest.raises(AttributeError):
        cfg.concurrency = 3  # type: ignore[misc]
