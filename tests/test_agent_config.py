"""A bad agent config names the key and the problem; a good one loads with defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config, parse_config

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
        ({"detection": {"min_severity": "urgent"}}, "detection.min_severity: must be one of"),
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
