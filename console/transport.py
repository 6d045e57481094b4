"""How a link reaches an agent's stream: a local child process or a command over SSH.

Both give the link the same three calls (:class:`Stream`): read bytes, say why the stream
ended, close. Failures are raised sorted by who can fix them: :class:`Retry` when
reconnecting can cure it (the network, the agent went away), :class:`NeedsPerson` when a
host key, a key file or a setting must be fixed first. Host keys are checked strictly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncssh

from console.children import exited, release, spawn

if TYPE_CHECKING:
    from console.config import HostConfig

READ_CHUNK_BYTES = 64 * 1024
STDERR_KEEP_BYTES = 4096
# How long a local agent SIGKILLed at a stop may take to be reaped before the stop goes on.
_KILLED_SECONDS = 5.0


class Retry(Exception):
    """The link broke in a way that reconnecting can cure."""


class NeedsPerson(Exception):
    """Retrying soon cannot help: a host key, a key file or a setting must be fixed."""


class Stream(Protocol):
    """An agent's stream as the link reads it."""

    async def read(self, size: int) -> bytes: ...
    async def close(self) -> None: ...
    async def describe_end(self) -> str: ...


class _StderrTail:
    """Keeps the end of the agent's stderr, which usually says why it exited."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data.extend(chunk)
        del self.data[:-STDERR_KEEP_BYTES]

    def text(self) -> str:
        lines = self.data.decode("utf-8", errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])


class _LocalStream:
    """The agent as a child process on this machine (``local = true``)."""

    def __init__(self, process: asyncio.subprocess.Process, grace: float) -> None:
        self._process = process
        self._grace = grace
        self._stderr = _StderrTail()
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, argv: list[str], grace: float) -> _LocalStream:
        try:
            process = await spawn(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise Retry(f"agent command not found: {argv[0]}") from None
        except PermissionError:
            raise Retry(f"agent command is not executable: {argv[0]}") from None
        return cls(process, grace)

    async def _drain_stderr(self) -> None:
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(READ_CHUNK_BYTES):
            self._stderr.add(chunk)

    async def read(self, size: int) -> bytes:
        assert self._process.stdout is not None
        return await self._process.stdout.read(size)

    async def close(self) -> None:
        process = self._process
        if process.returncode is None:
            self._signal(signal.SIGTERM)
            if not await exited(process, self._grace):
                self._signal(signal.SIGKILL)
                await exited(process, _KILLED_SECONDS)
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(1.0):
                await self._stderr_task
        self._stderr_task.cancel()
        release(process)

    def _signal(self, sig: signal.Signals) -> None:
        # The child leads its own process group, so this reaches only what we started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)

    async def describe_end(self) -> str:
        """Why stdout ended; waits a moment for the exit status and last words on stderr."""
        await exited(self._process, 1.0)
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._stderr_task)
        code = self._process.returncode
        said = self._stderr.text()
        what = "agent is still running" if code is None else f"agent exited with status {code}"
        return f"{what}: {said}" if said else what


class _HostKeyWitness(asyncssh.SSHClient):
    """Remembers the key a server offered when known_hosts did not vouch for it.

    asyncssh consults this only after the known_hosts check failed; answering False keeps
    the check strict while letting the error message show what was offered.
    """

    def __init__(self) -> None:
        self.offered: asyncssh.SSHKey | None = None
        self.addr: str = ""

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        self.addr = addr
        return False


class _SshStream:
    """The agent on a remote host, reached over SSH with strict host key checking."""

    def __init__(
        self, conn: asyncssh.SSHClientConnection, process: asyncssh.SSHClientProcess[bytes]
    ) -> None:
        self._conn = conn
        self._process = process
        self._stderr = _StderrTail()
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, host: HostConfig, command: str) -> _SshStream:
        target = host.target or host.name
        where = f"{target}:{host.port}"
        known_hosts = Path(host.known_hosts).expanduser()
        if not known_hosts.is_file():
            raise NeedsPerson(
                f"known_hosts file {known_hosts} does not exist; host keys are checked strictly, "
                f"so add {where}'s key there after verifying it"
            )
        options: dict[str, Any] = {}
        if host.key is not None:
            key_path = Path(host.key).expanduser()
            try:
                options["client_keys"] = [asyncssh.read_private_key(str(key_path))]
            except (OSError, asyncssh.KeyImportError) as exc:
                raise NeedsPerson(f"cannot use key {key_path}: {exc}") from None
            options["agent_path"] = None
        witness = _HostKeyWitness()
        try:
            conn = await asyncssh.connect(
                target,
                port=host.port,
                username=host.user,
                known_hosts=str(known_hosts),
                client_factory=lambda: witness,
                keepalive_interval=host.keepalive_seconds,
                keepalive_count_max=3,
                connect_timeout=host.connect_timeout_seconds,
                **options,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise NeedsPerson(_host_key_message(witness, target, host.port, known_hosts)) from None
        except asyncssh.PermissionDenied as exc:
            raise NeedsPerson(
                f"{host.user or 'the user'}@{where} refused the login ({exc.reason}); "
                f"check the key {host.key} and the host's authorized_keys"
            ) from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise Retry(f"cannot connect to {where}: {_describe(exc)}") from None
        try:
            process = await conn.create_process(command, encoding=None)
        except (OSError, asyncssh.Error) as exc:
            conn.close()
            raise Retry(f"{where} did not start the agent: {_describe(exc)}") from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, process)

    async def _drain_stderr(self) -> None:
        with contextlib.suppress(OSError, asyncssh.Error):
            while chunk := await self._process.stderr.read(READ_CHUNK_BYTES):
                self._stderr.add(chunk)

    async def read(self, size: int) -> bytes:
        try:
            return await self._process.stdout.read(size)
        except (OSError, asyncssh.Error) as exc:
            raise Retry(f"connection lost: {_describe(exc)}") from None

    async def close(self) -> None:
        self._process.close()
        self._conn.close()
        with contextlib.suppress(asyncio.TimeoutError, OSError, asyncssh.Error):
            async with asyncio.timeout(3.0):
                await self._conn.wait_closed()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task

    async def describe_end(self) -> str:
        """Why stdout ended; waits a moment for the exit status and last words on stderr."""
        with contextlib.suppress(asyncio.TimeoutError, OSError, asyncssh.Error):
            async with asyncio.timeout(1.0):
                await self._process.wait_closed()
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._stderr_task)
        status = self._process.exit_status
        sig = self._process.exit_signal
        if sig is not None:
            what = f"agent killed by signal {sig[0]}"
        elif status is None or status == -1:
            what = "connection closed"
        else:
            what = f"agent exited with status {status}"
        said = self._stderr.text()
        return f"{what}: {said}" if said else what


def _host_key_message(witness: _HostKeyWitness, target: str, port: int, known_hosts: Path) -> str:
    where = f"{target}:{port}"
    offered = witness.offered.get_fingerprint() if witness.offered else "an unreadable key"
    try:
        entries = asyncssh.read_known_hosts(str(known_hosts))
        known = entries.match(target, witness.addr, port)[0]
    except (OSError, ValueError) as exc:
        return f"cannot read known_hosts {known_hosts}: {exc}"
    if known:
        recorded = ", ".join(dict.fromkeys(key.get_fingerprint() for key in known))
        return (
            f"host key CHANGED for {where}: {known_hosts} has {recorded} but the server offered "
            f"{offered}; possible MITM, refusing to connect until a person checks the host"
        )
    return (
        f"host key for {where} is not in {known_hosts} (server offered {offered}); "
        f"verify it out of band and add it, e.g. '[{target}]:{port} <type> <key>'"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, asyncssh.DisconnectError) and exc.reason:
        text = exc.reason
    return text


async def open_stream(host: HostConfig, seq: int, grace: float = 3.0) -> Stream:
    """Start ``<agent_command> --since seq`` on the host, locally or over SSH."""
    try:
        argv = shlex.split(host.agent_command)
    except ValueError as exc:
        raise NeedsPerson(f"agent_command: {exc}") from None
    if not argv:
        raise NeedsPerson("agent_command is empty")
    argv += ["--since", str(seq)]
    if host.local:
        if host.agent_config is not None:
            argv += ["--config", str(host.agent_config)]
        return await _LocalStream.start(argv, grace)
    return await _SshStream.start(host, shlex.join(argv))
