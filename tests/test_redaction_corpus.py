"""No secret of the redaction corpus leaves the host, and the text around them survives.

The corpus (tests/redaction/) is what a Node.js service really prints: console.error of
errors with property blocks, and pino, winston and bunyan JSON written by the libraries
themselves. Each case lists the secrets that must vanish and the text that must stay.
They are checked on the records the agent builds, on ``scan`` output, and, with a real
``run`` daemon, on ``stream`` output, every byte of the state directory (agent.db, -wal,
-shm) and the daemon's stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.parse import parse_lines
from agent.record import ErrorRecord
from agent.redact import REDACTED, Redactor, env_values, redact_record
from agent.scan import Scanner
from tests.conftest import TESTS, require_node_modules, require_tool

AGENT = [sys.executable, "-m", "agent.cli"]
CORPUS = TESTS / "redaction" / "corpus"
GENERATOR = TESTS / "redaction" / "generate.js"
FORMATS = ("text", "pino", "winston", "bunyan")


def load_cases(directory: Path = CORPUS) -> list[dict]:
    return json.loads((directory / "cases.json").read_text())


CASES = load_cases()
ENV = {name: value for case in CASES for name, value in case["env"].items()}
SECRETS = [(case["id"], s) for case in CASES for s in case["secrets"]]
# values_from_env applies where a config is read (the daemon); scan has none.
SHAPE_SECRETS = [(case["id"], s) for case in CASES if not case["env"] for s in case["secrets"]]


def _leaks(text: str, secrets: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(cid, secret[:24]) for cid, secret in secrets if secret in text]


def _text_of(record: ErrorRecord) -> str:
    frames = [f"{f.function} {f.path}" for f in record.frames]
    return "\n".join(
        [record.error_type, record.message, *record.stack, record.route or "", record.raw, *frames]
    )


def test_corpus_covers_every_kind_of_secret_the_agent_must_stop() -> None:
    distinct = {secret for _, secret in SECRETS}
    assert len(distinct) >= 70
    ids = {case["id"] for case in CASES}
    for needed in (
        "password-confirm-json-body",
        "new-password-repeat-props",
        "new-password-repeat-snake-form",
        "pem-in-props-continuation-lines",
        "url-password-with-slash",
        "telegram-bot-token-in-url",
        "azure-account-key",
        "azure-sas-sig",
        "ocp-apim-subscription-key",
        "discord-webhook-url",
        "gitlab-token-bare",
        "sendgrid-key-bare",
        "npm-token-bare",
        "huggingface-token-bare",
        "set-cookie-array",
        "cookie-session-id",
        "pass-in-query-string",
        "reset-token-in-route",
        "unicode-escaped-json-body",
        "lookalike-keyboard-primary-key",
        "lookalike-token-401",
    ):
        assert needed in ids


def test_committed_corpus_is_what_the_real_logging_libraries_write(tmp_path: Path) -> None:
    node = require_tool("node")
    require_node_modules()
    subprocess.run([node, str(GENERATOR), str(tmp_path)], check=True, capture_output=True)
    for name in [f"{fmt}.log" for fmt in FORMATS] + ["cases.json"]:
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name


@pytest.mark.parametrize("fmt", FORMATS)
def test_records_of_the_corpus_keep_no_secret_and_lose_no_context(fmt: str) -> None:
    logged = (CORPUS / f"{fmt}.log").read_text()
    records = parse_lines(logged.splitlines())
    redactor = Redactor(values=env_values(ENV, ENV))
    before = "\n".join(_text_of(r) for r in records)
    after = "\n".join(_text_of(redact_record(r, redactor)) for r in records)
    # Nearly every secret the library wrote reaches a record (bunyan's serializer drops an
    # error's extra properties; the lines Node prints after a multi-line message are not
    # part of any record), so the check below is not vacuous.
    written = [(cid, s) for cid, s in SECRETS if s in logged or json.dumps(s)[1:-1] in logged]
    reached = [(cid, s) for cid, s in SECRETS if s in before]
    assert len(reached) >= 0.85 * len(written) >= 0.6 * len(SECRETS)
    assert _leaks(after, SECRETS) == []
    lost = [
        (case["id"], keep)
        for case in CASES
        for keep in case["keep"]
        if after.count(keep) != before.count(keep)
    ]
    assert lost == []
    assert after.count(REDACTED) >= len(reached)


def test_scan_output_of_the_corpus_holds_no_secret(tmp_path: Path) -> None:
    files = [str(CORPUS / f"{fmt}.log") for fmt in FORMATS]
    proc = subprocess.run(
        [*AGENT, "scan", "--settle-seconds", "0", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _leaks(proc.stdout + proc.stderr, SHAPE_SECRETS) == []
    groups = [json.loads(line) for line in proc.stdout.splitlines()]
    messages = {g["message"] for g in groups}
    assert "cannot fetch token: 401 Unauthorized" in messages
    assert "invalid keyboard layout 'de-neo' for primaryKey user_id" in messages
    routes = {g["route"] for g in groups}
    assert "GET /api/password/reset/[REDACTED]" in routes


def _expected_groups() -> int:
    total = 0
    for fmt in FORMATS:
        scanner = Scanner()
        scanner.scan_path(str(CORPUS / f"{fmt}.log"), fmt)
        total += len(scanner.results())
    return total


def _run_daemon(config: Path, stderr: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``autofix-agent run`` with ``env`` added, its stdout and stderr in one file."""
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [*AGENT, "run", "--config", str(config)],
            stdout=err,
            stderr=err,
            env={**os.environ, **env},
        )


@pytest.fixture
def corpus_agent(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes], Path]]:
    """A real ``run`` daemon over copies of the corpus, one source per format."""
    logs = tmp_path / "logs"
    logs.mkdir()
    sources = []
    for fmt in FORMATS:
        (logs / f"{fmt}.log").write_bytes((CORPUS / f"{fmt}.log").read_bytes())
        sources.append(
            f'[[sources]]\nservice = "{fmt}"\npaths = ["{logs / fmt}.log"]\nfrom_beginning = true\n'
        )
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\nhost = "prod-1"\n'
        "[detection]\nsettle_seconds = 0\nmax_settle_seconds = 1\nupdate_seconds = 0.2\n"
        'min_severity = "low"\n'
        f"[redaction]\nvalues_from_env = {json.dumps(sorted(ENV))}\n"
        "[stream]\nheartbeat_seconds = 0.5\n" + "".join(sources)
    )
    stderr = tmp_path / "agent.err"
    proc = _run_daemon(config, stderr, ENV)
    try:
        yield config, proc, stderr
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _stream_until(config: Path, wanted: int, timeout: float) -> list[dict]:
    """The ``error`` events of ``stream --since 0`` once ``wanted`` of them have arrived."""
    proc = subprocess.Popen(
        [*AGENT, "stream", "--since", "0", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stdin is not None
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(events) < wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event["type"] == "error":
                events.append(event)
    finally:
        proc.stdin.close()
        proc.wait(15)
        proc.stdout.close()
    return events


def test_stream_state_directory_and_stderr_of_a_real_daemon_hold_no_secret(
    corpus_agent: tuple[Path, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    config, proc, stderr = corpus_agent
    wanted = _expected_groups()
    events = _stream_until(config, wanted, timeout=120)
    assert len(events) == wanted, f"{len(events)} of {wanted} groups relayed"
    assert proc.poll() is None, stderr.read_text()[-2000:]
    streamed = "\n".join(json.dumps(e, ensure_ascii=False) for e in events)
    assert _leaks(streamed, SECRETS) == []
    assert any(e["message"] == "cannot fetch token: 401 Unauthorized" for e in events)
    # Every byte the daemon keeps on disk, while it runs (WAL and shared memory present).
    state = tmp_path / "state"
    files = sorted(p for p in state.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"agent.db"}
    raw = b"".join(p.read_bytes() for p in files)
    leaked = [(cid, s[:24]) for cid, s in SECRETS if s.encode() in raw]
    assert leaked == []
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    raw = b"".join(p.read_bytes() for p in sorted(state.iterdir()) if p.is_file())
    assert [(cid, s[:24]) for cid, s in SECRETS if s.encode() in raw] == []
    said = stderr.read_text()
    assert "error seq=" in said, "the daemon logs each relayed event's message"
    assert _leaks(said, SECRETS) == []


def test_a_failing_command_sources_stderr_reaches_the_daemons_stderr_redacted(
    tmp_path: Path,
) -> None:
    token = "ghp_" + "Q7x2Lm9Zr4Tb8Wc1Nd6Kf3Hy5Pj0Vs2Ga8Eu"
    password = "envOnly-" + "Zk39Qp7Lx2Wm"
    script = tmp_path / "source.sh"
    script.write_text(
        f"echo 'auth failed for https://ci:{password}@git.example.com token {token}' >&2\nexit 3\n"
    )
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\nhost = "prod-1"\n'
        '[redaction]\nvalues_from_env = ["DB_PASSWORD"]\n'
        f'[[sources]]\nservice = "jobs"\ncommand = ["sh", "{script}"]\n'
    )
    stderr = tmp_path / "agent.err"
    proc = _run_daemon(config, stderr, {"DB_PASSWORD": password})
    try:
        deadline = time.monotonic() + 30
        while "last stderr line" not in stderr.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    said = stderr.read_text()
    assert "last stderr line" in said, said[-2000:]
    assert token not in said and password not in said
    assert "git.example.com" in said and REDACTED in said
