"""`autofix init` as a new user runs it: questions or flags, a real sshd's host key shown
and trusted only on a yes, the starter config written, then `check` on it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sshd import SshServer, ssh_server_fixture  # noqa: F401  (provides ssh_server)

from console.init import Destination, InitError
from tests.conftest import require_tool
from tests.engine_world import agent_stream_command
from tests.service_repo import isolate_git, make_service_repo

AUTOFIX = [sys.executable, "-m", "console.cli"]
COMPARE = (
    "  Compare it with what the host itself says, e.g. "
    "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run there."
)


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(tmp_path, monkeypatch)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)


def init(*args: str, answers: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUTOFIX, "init", *args], input=answers, capture_output=True, text=True, timeout=180
    )


def fingerprint(server: SshServer) -> str:
    """What `ssh-keygen -lf` on the host says about its key: the fingerprint to compare."""
    listed = subprocess.run(
        [require_tool("ssh-keygen"), "-lf", f"{server.host_key}.pub"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()[1]


def test_init_from_flags_trusts_the_shown_key_writes_the_config_and_checks_it(
    tmp_path: Path, ssh_server
) -> None:
    server: SshServer = ssh_server()
    repo, _ = make_service_repo(tmp_path)
    agent = agent_stream_command(tmp_path)
    known_hosts = tmp_path / "ssh" / "known_hosts"
    config = tmp_path / "xdg" / "autofix" / "config.toml"
    proc = init(
        "--config", str(config), "--non-interactive", "--trust-host-key",
        "--repo", str(repo), "--service", "PA",
        "--host", f"{server.user}@127.0.0.1:{server.port}", "--key", str(server.client_key),
        "--known-hosts", str(known_hosts), "--agent-command", agent,
    )  # fmt: skip
    where = f"127.0.0.1:{server.port}"
    lines = proc.stdout.splitlines()
    assert lines[:6] == [
        f"{where} offers the host key ssh-ed25519 {fingerprint(server)}",
        COMPARE,
        f"  added to {known_hosts} as [127.0.0.1]:{server.port}",
        f"wrote {config}",
        f"autofix check --config {config}:",
        "ok   config: 1 host(s), 1 service(s)",
    ], proc.stdout + proc.stderr
    assert lines[6].startswith(f"ok   host 127.0.0.1 ({server.user}@{where}): agent "), lines
    assert "host key known" in lines[6]
    assert known_hosts.read_text() == (
        f"[127.0.0.1]:{server.port} {' '.join(server.host_public_key.split()[:2])}\n"
    )
    written = tomllib.loads(config.read_text())
    assert written["hosts"] == [
        {
            "name": "127.0.0.1",
            "target": "127.0.0.1",
            "port": server.port,
            "user": server.user,
            "key": str(server.client_key),
            "known_hosts": str(known_hosts),
            "agent_command": agent,
        }
    ]
    assert written["services"][0] == {
        "name": "PA",
        "repo": str(repo),
        "base_branch": "main",
        "test_command": "npm test",
    }
    assert config.read_text().startswith("# LevAutoFix console config, written by `autofix init`")
    # A second run keeps the config it finds.
    again = init("--config", str(config), "--non-interactive", "--repo", str(repo))
    assert (again.returncode, again.stderr) == (
        2,
        f"autofix init: {config} exists; --force replaces it\n",
    )


def test_init_asks_and_a_no_leaves_known_hosts_untouched(tmp_path: Path, ssh_server) -> None:
    server: SshServer = ssh_server()
    repo, _ = make_service_repo(tmp_path)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    config = tmp_path / "console.toml"
    answers = f"{repo}\nPA\n{server.user}@127.0.0.1:{server.port}\n{server.client_key}\nno\n"
    proc = init("--config", str(config), "--known-hosts", str(known_hosts), answers=answers)
    where = f"127.0.0.1:{server.port}"
    assert proc.stdout.splitlines()[:8] == [
        f"Repository of the service (a local git checkout) [.]: {repo}",
        f"Service name, as the agent reports it [{repo.name}]: PA",
        "Prod host running autofix-agent, [user@]host[:port] (empty: none yet): "
        f"{server.user}@{where}",
        f"SSH key for the agent's stream [~/.ssh/autofix_ed25519]: {server.client_key}",
        f"{where} offers the host key ssh-ed25519 {fingerprint(server)}",
        COMPARE,
        f"  Add it to {known_hosts}? (yes/no) [no]: no",
        f"  not added to {known_hosts}; the link refuses the host until it is there",
    ], proc.stdout
    assert known_hosts.read_text() == ""
    [host_line] = [line for line in proc.stdout.splitlines() if line.startswith("FAIL host")]
    assert f"host key for {where} is not in {known_hosts}" in host_line
    assert proc.returncode == 1


def test_init_without_trust_in_a_script_says_how_to_add_the_key(tmp_path: Path, ssh_server) -> None:
    server: SshServer = ssh_server()
    repo, _ = make_service_repo(tmp_path)
    known_hosts = tmp_path / "known_hosts"
    proc = init(
        "--config", str(tmp_path / "c.toml"), "--non-interactive", "--repo", str(repo),
        "--host", f"127.0.0.1:{server.port}", "--known-hosts", str(known_hosts),
    )  # fmt: skip
    assert (
        f"  not added to {known_hosts} (--trust-host-key adds it); the link refuses the host "
        "until it is there"
    ) in proc.stdout.splitlines(), proc.stdout
    assert not known_hosts.exists()
    assert tomllib.loads((tmp_path / "c.toml").read_text())["hosts"][0]["user"] == "autofix"


def test_init_refuses_a_repo_that_is_not_a_checkout_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    proc = init("--config", str(config), "--non-interactive", "--repo", str(tmp_path))
    assert (proc.returncode, proc.stderr) == (
        2,
        f"autofix init: repo {tmp_path}: not a git checkout (no .git in it)\n",
    )
    assert not config.exists()


def test_init_refuses_an_unreachable_host_by_name(tmp_path: Path) -> None:
    repo, _ = make_service_repo(tmp_path)
    proc = init(
        "--config", str(tmp_path / "c.toml"), "--non-interactive", "--repo", str(repo),
        "--host", "127.0.0.1:1",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("autofix init: cannot reach 127.0.0.1:1: "), proc.stderr
    assert not (tmp_path / "c.toml").exists()


_HOST = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True)


@given(host=_HOST, port=st.integers(1, 65535), user=_HOST)
def test_a_typed_destination_reads_back_as_its_parts(host: str, port: int, user: str) -> None:
    assert Destination.parse(f"{user}@{host}:{port}") == Destination(host, port, user)
    assert Destination.parse(f"{host}") == Destination(host, 22, "autofix")
    assert Destination.parse(f"[{host}]:{port}").known_hosts_name == (
        host if port == 22 else f"[{host}]:{port}"
    )


@given(st.text(max_size=60))
def test_any_typed_host_is_read_or_refused_with_a_reason(text: str) -> None:
    try:
        parsed = Destination.parse(text)
    except InitError as exc:
        assert repr(text) in str(exc)
    else:
        assert parsed.target and not any(c.isspace() for c in parsed.target)
        assert 0 < parsed.port < 65536


def test_the_starter_config_is_commented_and_loads_for_odd_answers(tmp_path: Path) -> None:
    """Answers with quotes, backslashes and non-ASCII still make a config `load_config` reads."""
    from console.config import load_config
    from console.init import Answers, starter_config

    repo = tmp_path / 'a "quoted" \\ repo é'
    answers = Answers(repo, 'PA "x"', "main", Destination("h", 22, "u"), "~/k", "~/kh")
    path = tmp_path / "c.toml"
    path.write_text(starter_config(answers))
    loaded = load_config(path)
    assert loaded.services[0].name == 'PA "x"'
    assert str(loaded.services[0].repo) == str(repo)
    assert os.path.basename(str(loaded.hosts[0].key)) == "k"
