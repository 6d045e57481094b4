"""The intake's HTTP reader against hostile bytes on a real loopback socket.

A real :class:`agent.daemon.Daemon` (SQLite outbox in a temporary directory) serves its
otlp source on an ephemeral port in a thread of its own; hypothesis sends it arbitrary
bytes, often shaped like the start of a request. Whatever arrives, the answer is an HTTP
status line or a closed connection, and a well-formed request right after is stored.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import load_config
from agent.daemon import Daemon


class _Served:
    """A daemon's otlp intake listening on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, root: Path) -> None:
        config = root / "agent.toml"
        config.write_text(
            f'state_dir = "{root / "state"}"\n[detection]\nsettle_seconds = 0\n'
            'min_severity = "low"\n[[sources]]\notlp = "127.0.0.1:1"\n'
        )
        self._config = load_config(config)
        self.db = self._config.db_path
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.daemon: Daemon | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "the intake never listened"

    def _listening(self, said: str) -> None:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", said)
        assert match, said
        self.port = int(match[1])
        self._ready.set()

    def _run(self) -> None:
        async def main() -> None:
            self.daemon = Daemon(self._config)
            intake = self.daemon.intakes[0]
            intake.port = 0  # an ephemeral port, read back from what it says
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            try:
                await intake.serve(self._listening)
            finally:
                self.daemon.outbox.close()

        asyncio.run(main())

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(20)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    server = _Served(tmp_path_factory.mktemp("otlp-http"))
    yield server
    server.stop()


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, and read what comes back until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def _store_one(port: int, message: str) -> int:
    body = json.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {"severityNumber": 17, "body": {"stringValue": f"Error: {message}"}}
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/logs", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


_starts = st.sampled_from(
    [
        b"",
        b"POST /v1/logs HTTP/1.1\r\n",
        b"POST /v1/logs HTTP/1.1\r\nContent-Type: application/json\r\n",
        b"POST /v1/logs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n",
        b"POST /v1/logs HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ]
)
_pieces = st.lists(
    st.binary(max_size=40)
    | st.sampled_from([b"\r\n", b"\r\n\r\n", b": ", b"0\r\n\r\n", b"ffffffff\r\n", b"{}", b"\x00"]),
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=_starts, pieces=_pieces)
def test_any_bytes_get_an_http_answer_or_a_close_and_the_intake_keeps_storing(
    served: _Served, start: bytes, pieces: list[bytes]
) -> None:
    answer = _exchange(served.port, start + b"".join(pieces))
    if answer:
        assert re.match(rb"HTTP/1\.1 [1-5]\d\d ", answer), answer[:200]
        assert b"HTTP/1.1 500 " not in answer, answer[:300]


def test_after_hostile_connections_a_real_request_is_still_stored(served: _Served) -> None:
    for data in (b"\xff" * 20_000, b"POST /v1/logs HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"):
        assert _exchange(served.port, data).startswith(b"HTTP/1.1 4")
    assert _store_one(served.port, "still here") == 200
    conn = sqlite3.connect(served.db)
    try:
        stored = conn.execute("SELECT count FROM groups WHERE message = 'still here'").fetchall()
    finally:
        conn.close()
    assert stored == [(1,)]
