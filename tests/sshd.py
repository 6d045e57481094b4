"""A real OpenSSH server on loopback, started per test, for driving the console's SSH link.

Everything an operator would set up by hand is generated in a temporary directory: an
ed25519 host key, a client key, an ``authorized_keys`` file (optionally with a forced
``command="...",restrict`` entry, as recommended for prod hosts) and a ``known_hosts`` file
that trusts exactly this server at ``[127.0.0.1]:PORT``.

Use it from a test module (pytest puts ``tests/`` on ``sys.path``)::

    from sshd import SshServer, ssh_server_fixture  # noqa: F401  (provides ``ssh_server``)

    def test_something(ssh_server):
        server = ssh_server()                       # or ssh_server(forced_command="...")
        ... server.port, server.client_key, server.known_hosts ...

Remote commands run with sshd's minimal PATH and in the user's home directory, so give them
absolute paths (``sys.executable``, ``<checkout>/.venv/bin/autofix-agent``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import require_tool

START_TIMEOUT_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, comment: str) -> str:
    """Make an ed25519 key pair and return the public key line."""
    keygen = require_tool("ssh-keygen")
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return path.with_suffix(".pub").read_text().strip()


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc (sshd puts each session in its own group)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces; the ppid follows it.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    result: list[int] = []
    queue = [pid]
    while queue:
        for child in _children(queue.pop()):
            result.append(child)
            queue.append(child)
    return result


@dataclass
class SshServer:
    """One running sshd and the files a client needs to reach it."""

    directory: Path
    forced_command: str | None = None
    port: int = 0
    host_key: Path = field(init=False)
    host_public_key: str = field(init=False)
    client_key: Path = field(init=False)
    authorized_keys: Path = field(init=False)
    known_hosts: Path = field(init=False)
    log: Path = field(init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host_key = self.directory / "ssh_host_ed25519_key"
        self.client_key = self.directory / "client_ed25519"
        self.authorized_keys = self.directory / "authorized_keys"
        self.known_hosts = self.directory / "known_hosts"
        self.log = self.directory / "sshd.log"

    @property
    def user(self) -> str:
        return pwd.getpwuid(os.getuid()).pw_name

    def start(self) -> SshServer:
        """Generate keys and config, start sshd in the foreground and wait until it listens."""
        sshd = require_tool("sshd")
        self.host_public_key = _keygen(self.host_key, "levautofix-test-host")
        client_public = _keygen(self.client_key, "levautofix-test-client")
        self.set_forced_command(self.forced_command, client_public)
        if not self.port:
            self.port = _free_port()
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {' '.join(self.host_public_key.split()[:2])}\n"
        )
        config = self.directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    f"PidFile {self.directory / 'sshd.pid'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "MaxStartups 50",
                    "",
                ]
            )
        )
        # Debian's sshd refuses to start without its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = self.log.open("ab")
        self._process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._wait_listening()
        return self

    def set_forced_command(self, command: str | None, client_public: str | None = None) -> None:
        """Rewrite authorized_keys; sshd reads it on every login, so this applies at once."""
        if client_public is None:
            client_public = self.client_key.with_suffix(".pub").read_text().strip()
        self.forced_command = command
        if command is None:
            self.authorized_keys.write_text(client_public + "\n")
            return
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        self.authorized_keys.write_text(f'command="{quoted}",restrict {client_public}\n')

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with {self._process.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on port {self.port}: {self.log.read_text()}")

    def session_pids(self) -> list[int]:
        """Every process below the listener: per-connection sshd processes and their commands."""
        if self._process is None or self._process.poll() is not None:
            return []
        return _descendants(self._process.pid)

    def kill_sessions(self) -> int:
        """Drop every open connection the hard way, as a crashed or rebooted host would."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        """Stop the listener and every session it forked, so no test leaves processes behind."""
        if self._process is None:
            return
        self.kill_sessions()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(name="ssh_server")
def ssh_server_fixture(tmp_path: Path) -> Iterator[Callable[..., SshServer]]:
    """Factory: ``ssh_server(forced_command=None)`` starts one more sshd; all stop at teardown."""
    servers: list[SshServer] = []

    def start(forced_command: str | None = None, name: str | None = None) -> SshServer:
        directory = tmp_path / (name or f"sshd{len(servers)}")
        server = SshServer(directory, forced_command=forced_command)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
