"""``--since`` is outside input (the SSH client picks it): only a seq SQLite can hold passes.

Anything else is refused with exit 2 and one line on stderr, never a traceback, both on
the command line and under the forced command that reads ``SSH_ORIGINAL_COMMAND``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.stream import MAX_SEQ, StreamRefused, parse_since, since_from_ssh_command

AGENT = [sys.executable, "-m", "agent.cli"]

BAD_SINCE = [
    "99999999999999999999",
    str(2**63),  # 9223372036854775808: one past SQLite's largest integer
    "²",  # superscript two: str.isdigit() says yes
    "٣",  # Arabic-Indic three: int() says 3
    "1" * 100_000,  # int() refuses more than 4300 digits with a ValueError of its own
    "-1",
    "+5",
    "1_000",
    " 7",
    "",
    "0x10",
    "1e3",
]


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\nhost = "t"\n'
        f'[[sources]]\nservice = "PA"\npaths = ["{tmp_path}/*.log"]\n'
    )
    return config


def _stream(config: Path, argv: list[str], original: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SSH_ORIGINAL_COMMAND"}
    if original is not None:
        env["SSH_ORIGINAL_COMMAND"] = original
    return subprocess.run(
        [*AGENT, "stream", "--config", str(config), *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _assert_refused_in_one_line(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("autofix-agent: refused: --since must be")
    assert "Traceback" not in proc.stderr
    assert len(lines[0]) < 300, "the bad value is shown cut, not echoed whole"


@pytest.mark.parametrize("value", BAD_SINCE, ids=lambda v: repr(v[:12]))
def test_bad_since_on_the_command_line_is_refused_in_one_line(tmp_path: Path, value: str) -> None:
    _assert_refused_in_one_line(_stream(_config(tmp_path), ["--since", value], None))


@pytest.mark.parametrize("value", BAD_SINCE, ids=lambda v: repr(v[:12]))
def test_bad_since_under_the_forced_command_is_refused_in_one_line(
    tmp_path: Path, value: str
) -> None:
    original = f"autofix-agent stream --since {shlex.quote(value)}"
    _assert_refused_in_one_line(_stream(_config(tmp_path), [], original))


def test_largest_seq_is_accepted_and_streams(tmp_path: Path) -> None:
    config = _config(tmp_path)
    env = {**os.environ, "SSH_ORIGINAL_COMMAND": f"autofix-agent stream --since {MAX_SEQ}"}
    proc = subprocess.Popen(
        [*AGENT, "stream", "--config", str(config)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert b'"type":"hello"' in proc.stdout.readline()
    proc.stdin.close()
    assert proc.wait(20) == 0
    proc.stdout.close()
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()
    proc.stderr.close()


def test_parse_since_accepts_exactly_the_ascii_range() -> None:
    assert parse_since("0") == 0
    assert parse_since("007") == 7
    assert parse_since(str(MAX_SEQ)) == MAX_SEQ
    for value in BAD_SINCE:
        with pytest.raises(StreamRefused):
            parse_since(value)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda words: "autofix-agent stream " + " ".join(words),
            st.lists(
                st.one_of(
                    st.sampled_from(["--since", "--config", "--since=", "-", "--", ";", "'"]),
                    st.text(max_size=30),
                    st.integers(min_value=-(2**70), max_value=2**70).map(str),
                ),
                max_size=6,
            ),
        ),
    )
)
def test_forced_command_parser_answers_every_string_with_a_seq_or_a_refusal(original: str) -> None:
    try:
        since = since_from_ssh_command(original, "/etc/autofix-agent/agent.toml")
    except StreamRefused as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 400
    else:
        assert type(since) is int and 0 <= since <= MAX_SEQ
