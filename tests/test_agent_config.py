"""A bad agent config names the key and the problem; a good one loads with defaults."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.classify import classify
from agent.config import AgentConfig, ConfigError, JournaldConfig, load_config, parse_config
from agent.configschema import (
    ReferenceRow,
    config_table,
    one_of,
    parse_table,
    reference_markdown,
    reference_rows,
    setting,
    tables,
    text,
)
from agent.redact import Redactor
from agent.wire import SEVERITIES
from tests.config_documents import any_documents, parsed_and_loaded_alike

GOOD = """
state_dir = "{state}"
host = "prod-1"
[detection]
settle_seconds = 30
max_settle_seconds = 300
min_severity = "medium"

[[sources]]
service = "PA"
paths = ["/var/log/pa/*.log"]
from_beginning = false
"""


# Every key with a valid value: the property tests below start their documents from it.
EVERY_KEY = tomllib.loads("""
state_dir = "/tmp/agent-state"
host = "prod-1"
[detection]
settle_seconds = 5
max_settle_seconds = 60
update_seconds = 2.5
min_severity = "low"
critical_patterns = ["ledger"]
extra_critical_patterns = ["payment (gateway|provider) down"]
high_count = 9
medium_count = 2
max_line_bytes = 4096
[retention]
max_age_days = 2
max_events = 500
[redaction]
extra_patterns = ['sk_live_\\w+']
values_from_env = ["DB_PASSWORD"]
[stream]
heartbeat_seconds = 1
[[sources]]
service = "billing"
from_beginning = true
[sources.journald]
units = ["billing.service"]
identifiers = "billing"
matches = ["PRIORITY=3"]
files = ["/tmp/j/system.journal"]
journalctl = "/usr/bin/journalctl"
[[sources]]
service = "PA"
paths = ["/var/log/pa/*.log"]
app_root = "/srv/pa"
[[sources]]
service = "worker"
command = "docker logs -f worker"
[[sources]]
service = "archive"
journald = { directory = "/tmp/j" }
""")  # fmt: skip


def test_the_document_with_every_key_is_valid() -> None:
    config = parse_config(EVERY_KEY)
    assert [s.service for s in config.sources] == ["billing", "PA", "worker", "archive"]
    assert config.sources[0].journald is not None
    assert config.sources[0].journald.identifiers == ("billing",)
    assert config.sources[3].journald == JournaldConfig(directory="/tmp/j")
    assert config.sources[2].command == ("docker", "logs", "-f", "worker")
    assert config.redaction.extra_patterns == ("sk_live_\\w+",)


def test_the_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(GOOD.format(state=tmp_path / "state"))
    config = load_config(path)
    assert config.host == "prod-1"
    assert config.sources[0].paths == ("/var/log/pa/*.log",)
    assert config.detection.min_severity == "medium"
    assert config.db_path == tmp_path / "state" / "agent.db"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"detection": {"settle_seconds": "30"}}, "detection.settle_seconds: must be a number"),
        ({"detection": {"min_severity": "urgent"}}, "detection.min_severity: expected one of"),
        ({"detection": {"settle_seconds": 60, "max_settle_seconds": 10}}, "max_settle_seconds"),
        ({"detection": {"critical_patterns": ["("]}}, r"critical_patterns\[0\]: not a valid"),
        ({"sources": [{"paths": ["/x"]}]}, r"sources\[0\].service: missing"),
        ({"sources": [{"service": "A"}]}, r"sources\[0\].paths: a source needs"),
        ({"sources": [{"service": "A", "paths": [3]}]}, r"sources\[0\].paths\[0\]: must be"),
        ({"sources": [{"service": "A", "paths": ["/x"], "colour": 1}]}, "colour: unknown key"),
        ({"sources": {"service": "A"}}, "sources: must be an array"),
        ({"stat_dir": "/tmp"}, "stat_dir: unknown key"),
        ({"redaction": {"extra_patterns": "x"}}, "redaction.extra_patterns: must be a list"),
    ],
)
def test_bad_values_name_the_key(data: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"detection": {"settle_second": 30}},
            "detection.settle_second: unknown key, did you mean 'settle_seconds'? (expected one "
            "of critical_patterns, extra_critical_patterns, high_count, max_line_bytes, "
            "max_settle_seconds, medium_count, min_severity, record_wait_seconds, settle_seconds, "
            "update_seconds)",
        ),
        (
            {"source": []},
            "source: unknown key, did you mean 'sources'? (expected one of detection, host, "
            "redaction, retention, sources, state_dir, stream)",
        ),
        (
            {"sources": [{"service": "A", "paths": "/x", "wat": 1}]},
            "sources[0].wat: unknown key (expected one of app_root, command, from_beginning, "
            "journald, otlp, paths, service, start_pattern)",
        ),
        (
            {"detection": {"min_severity": "urgent"}},
            'detection.min_severity: expected one of "low", "medium", "high", "critical", '
            'got "urgent"',
        ),
        (
            {"detection": {"min_severity": "hihg"}},
            'detection.min_severity: expected one of "low", "medium", "high", "critical", '
            'got "hihg" (did you mean "high"?)',
        ),
        (
            {"detection": {"min_severity": 3}},
            'detection.min_severity: expected one of "low", "medium", "high", "critical", got 3',
        ),
        (
            {"detection": {"settle_seconds": "30"}},
            'detection.settle_seconds: must be a number, got string "30"',
        ),
        (
            {"detection": {"settle_seconds": float("nan")}},
            "detection.settle_seconds: must be a finite number, got nan",
        ),
        (
            {"detection": {"max_settle_seconds": 10**400}},
            f"detection.max_settle_seconds: must be a finite number, got 1{'0' * 58}…",
        ),
        (
            {"detection": {"settle_seconds": 60, "max_settle_seconds": 10}},
            "detection.max_settle_seconds: must be at least settle_seconds (60.0), got 10.0",
        ),
        (
            {"detection": {"medium_count": 5, "high_count": 4}},
            "detection.high_count: must be at least medium_count (5), got 4",
        ),
        (
            {"detection": {"high_count": True}},
            "detection.high_count: must be an integer, got boolean true",
        ),
        (
            {"retention": {"max_events": 2**63}},
            "retention.max_events: must be at most 9223372036854775807, got 9223372036854775808",
        ),
        ({"host": ""}, "host: must not be empty"),
        (
            {"stream": {"\x1b[2J\x9b": 1}},
            'stream."\\u001b[2J\\u009b": unknown key (expected one of heartbeat_seconds)',
        ),
        (
            {"detection": {"extra_critical_patterns": ["(?i)ledger"]}},
            "detection.extra_critical_patterns[0]: a global flag such as (?i) cannot be used "
            "here, where the patterns are joined into one expression; scope it to a group, "
            "e.g. (?i:...)",
        ),
        (
            {"sources": [{"service": "A", "paths": {"glob": "/x"}}]},
            'sources[0].paths: must be a list of glob patterns, got table { glob = "/x" }',
        ),
        (
            {"sources": [{"service": "A\nB", "paths": ["/x"]}]},
            "sources[0].service: must not contain control characters",
        ),
        (
            {"sources": [{"service": "A", "command": 5}]},
            "sources[0].command: must be a string or a list of strings, got integer 5",
        ),
        (
            {"sources": [{"service": "A", "command": "tail -f 'x"}]},
            "sources[0].command: cannot be split into words: No closing quotation",
        ),
        (
            {"sources": [{"service": "A", "paths": ["/a"]}, {"service": "A", "paths": ["/b"]}]},
            "sources[1].service: another file source already uses 'A'; list all of a "
            "service's paths in one source",
        ),
        (
            {"sources": [{"service": "A", "paths": "/a", "command": "tail -f /b"}]},
            "sources[0].command: a source has one of 'paths', 'command', 'journald' or 'otlp', "
            "not "
            "'paths' and 'command'",
        ),
        (
            {"stream": {"heartbeat_seconds": 0}},
            "stream.heartbeat_seconds: must be at least 0.1, got 0",
        ),
        (
            {"redaction": {"extra_patterns": [""]}},
            "redaction.extra_patterns[0]: must not be empty",
        ),
    ],
)
def test_each_problem_has_one_exact_message_starting_with_the_full_key(
    data: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value) == message


def test_a_string_where_a_list_of_paths_goes_is_a_list_of_one() -> None:
    config = parse_config({"sources": [{"service": "A", "paths": "~/logs/*.log"}]})
    assert config.sources[0].paths == (str(Path.home() / "logs" / "*.log"),)
    with pytest.raises(ConfigError, match=r"^sources\[0\]\.paths: must not be empty$"):
        parse_config({"sources": [{"service": "A", "paths": " "}]})


def test_extra_critical_patterns_come_after_the_defaults_they_extend() -> None:
    detection = parse_config({"detection": {"extra_critical_patterns": ["ledger"]}}).detection
    assert detection.all_critical_patterns[-1] == "ledger"
    assert detection.all_critical_patterns[:-1] == detection.critical_patterns
    replaced = parse_config({"detection": {"critical_patterns": []}}).detection
    assert replaced.all_critical_patterns == ()


def test_an_empty_document_takes_every_declared_default() -> None:
    config = parse_config({})
    assert config == AgentConfig(host=config.host)
    assert config.detection.settle_seconds == 30.0 and config.stream.heartbeat_seconds == 5.0
    assert config.redaction.values_from_env == () and config.retention.max_events == 100_000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_documents(AgentConfig, EVERY_KEY))
def test_any_document_or_its_file_gives_a_config_or_an_error_naming_a_key(
    tmp_path_factory, document
):
    config = parsed_and_loaded_alike(
        parse_config, load_config, AgentConfig, document, tmp_path_factory.mktemp("cfg")
    )
    if config is not None:  # what the daemon builds from a config works with any valid one
        assert all(s.paths or s.command or s.journald for s in config.sources)
        assert classify("Error: ledger mismatch", 1, config.detection) in SEVERITIES
        redactor = Redactor(config.redaction.extra_patterns)
        assert isinstance(redactor.redact("password=hunter2hunter2"), str)


def test_check_exits_2_and_names_the_key_for_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[detection]\nsettle_seconds = "soon"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "detection.settle_seconds" in proc.stderr


def test_check_reports_each_source(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("hi\n")
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[[sources]]\nservice = "PA"\npaths = ["{logs}/*.log"]\n'
        f'[[sources]]\nservice = "J"\ncommand = "no-such-binary-xyz -f"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert "matches 1 file(s)" in proc.stdout
    assert "no-such-binary-xyz" in proc.stdout and "FAIL" in proc.stdout
    assert proc.returncode == 1


def test_not_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("state_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_file_content_gives_a_config_or_an_error_naming_the_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("cfg") / "agent.toml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        assert not re.search(r"[\x00-\x1f\x7f-\x9f]", str(exc)), str(exc)


@config_table
class _Service:
    name: str = setting(required="every service needs a name", read=text(), doc="its name")
    stop_at: str = setting(
        default="pr", read=one_of(("report", "diff", "pr")), doc="where a fix stops | waits"
    )


@config_table
class _Services:
    services: tuple[_Service, ...] = tables(_Service, "the services")


def test_a_key_is_one_declaration_read_checked_defaulted_and_documented() -> None:
    parsed = parse_table(_Services, {"services": [{"name": "a"}, {"name": "b", "stop_at": "diff"}]})
    assert parsed == _Services(services=(_Service(name="a"), _Service(name="b", stop_at="diff")))
    with pytest.raises(ConfigError) as info:
        parse_table(_Services, {"services": [{"name": "a"}, {"name": "b", "stop_at": "push"}]})
    assert (
        str(info.value) == 'services[1].stop_at: expected one of "report", "diff", "pr", got "push"'
    )
    with pytest.raises(ConfigError) as info:
        parse_table(_Services, {"services": [{"stop_at": "pr"}]})
    assert str(info.value) == "services[0].name: missing (every service needs a name)"
    assert reference_rows(_Services) == [
        ReferenceRow("services[].name", "required", "its name"),
        ReferenceRow("services[].stop_at", '`"pr"`', "where a fix stops | waits"),
    ]
    assert reference_markdown(_Services).splitlines()[-1] == (
        '| `services[].stop_at` | `"pr"` | where a fix stops \\| waits |'
    )


def test_a_field_without_a_declaration_or_a_doc_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="declare it with setting"):

        @config_table
        class _Bare:
            count: int = 3

    with pytest.raises(TypeError, match="needs a doc"):
        setting(default=3, read=text(), doc=" ")
    with pytest.raises(TypeError, match="must say why it is required"):
        setting(read=text(), doc="a key with neither a default nor a reason")
