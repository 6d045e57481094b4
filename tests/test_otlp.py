"""OTLP/HTTP intake end to end: real senders -> the real `autofix-agent run` -> `stream`.

The OpenTelemetry Python SDK's own OTLP/HTTP log exporter (protobuf, gzip) sends records
the way an instrumented service or a Collector does; plain HTTP posts send OTLP/JSON the
way Vector and Fluent Bit do. What comes out is read with `autofix-agent stream`.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import os
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.wire import ErrorEvent
from tests.agent_process import AGENT, read_stream, wait_for
from tests.conftest import require_module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, bind: str, service: str | None = None) -> Path:
    path = tmp_path / "agent.toml"
    named = f'service = "{service}"\n' if service else ""
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\nhost = "log-host"\n'
        "[detection]\nsettle_seconds = 0.5\nmax_settle_seconds = 10\nupdate_seconds = 0.3\n"
        'min_severity = "low"\n'
        f'[stream]\nheartbeat_seconds = 0.5\n[[sources]]\n{named}otlp = "{bind}"\n'
    )
    return path


@pytest.fixture
def otlp_agent(tmp_path: Path, agent_factory: Callable) -> Callable[..., tuple[Path, int, object]]:
    """Starts `autofix-agent run` with one otlp source; returns (config, port, agent)."""

    def start(
        host: str = "127.0.0.1", env: dict[str, str] | None = None, service: str | None = None
    ) -> tuple[Path, int, object]:
        port = _free_port()
        config = _config(tmp_path, f"{host}:{port}", service)
        agent = agent_factory(config, tmp_path / "agent.err")
        if env:
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                agent.start()
            finally:
                os.environ.clear()
                os.environ.update(saved)
        else:
            agent.start()
        wait_for(
            lambda: "receiving OTLP/HTTP logs" in agent.said() or not agent.alive(),
            20,
            "the agent never listened",
        )
        assert agent.alive(), agent.said()
        return config, port, agent

    return start


def _errors(config: Path, want: int, timeout: float = 30) -> dict[str, ErrorEvent]:
    lines = read_stream(config, 0, timeout, want)
    events = [e for e in lines if isinstance(e, ErrorEvent) and e.type == "error"]
    return {e.message: e for e in events}


def _counts(lines: list) -> dict[str, int]:
    """Each group's latest count on the stream, by the message of its first event."""
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for event in lines:
        if isinstance(event, ErrorEvent):
            counts[names.setdefault(event.fingerprint, event.message)] = event.count
    return counts


def _counts_reach(config: Path, expected: dict[str, int], timeout: float = 30) -> None:
    """The stream's counts reach exactly ``expected`` (updates may still be settling), and
    stay there: a second read a moment later says the same."""
    lines = read_stream(config, 0, timeout, 10**6, done=lambda seen: _counts(seen) == expected)
    assert _counts(lines) == expected
    time.sleep(1.0)
    assert _counts(read_stream(config, 0, 2, 10**6)) == expected, "counts moved past the total"


# --- the OpenTelemetry SDK -------------------------------------------------------------------


class _SdkLogger:
    """A Python logger whose records the real SDK exports over OTLP/HTTP."""

    def __init__(self, endpoint: str, resource: dict[str, str], compression: str) -> None:
        require_module("opentelemetry.sdk")
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        self.provider = LoggerProvider(resource=Resource.create(resource))
        exporter = OTLPLogExporter(endpoint=endpoint, compression=Compression(compression))
        self.provider.add_log_record_processor(
            BatchLogRecordProcessor(exporter, schedule_delay_millis=200)
        )
        self.logger = logging.getLogger(f"otlp-test-{id(self)}")
        self.logger.handlers = [LoggingHandler(level=logging.DEBUG, logger_provider=self.provider)]
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)

    def flush(self) -> None:
        assert self.provider.force_flush(30_000), "the exporter did not flush"

    def close(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def sdk_logger() -> Iterator[Callable[..., _SdkLogger]]:
    made: list[_SdkLogger] = []

    def make(endpoint: str, resource: dict[str, str], compression: str = "gzip") -> _SdkLogger:
        logger = _SdkLogger(endpoint, resource, compression)
        made.append(logger)
        return logger

    yield make
    for logger in made:
        logger.close()


def charge(order: int) -> None:
    raise ValueError(f"card declined for order {order}")


def reserve(sku: str) -> dict[str, int]:
    stock: dict[str, int] = {}
    return {"left": stock[sku]}


def _log_faults(log: logging.Logger) -> None:
    """3 ValueErrors from charge(), 2 KeyErrors from reserve(), 1 error without an
    exception, and INFO/WARNING records that look like errors but must stay quiet."""
    for order in (1, 2, 3):
        try:
            charge(order)
        except ValueError:
            log.exception("charging failed")
    for _ in range(2):
        try:
            reserve("SKU6")
        except KeyError:
            log.exception("reservation failed")
    log.error("payment provider answered 502")
    for _ in range(4):
        log.info("TypeError: this is only an INFO record")
        log.warning("Error: retrying the payment provider")


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_sdk_exporter_errors_are_one_group_per_fault_with_exact_counts_class_and_stack(
    otlp_agent: Callable, sdk_logger: Callable, compression: str
) -> None:
    config, port, agent = otlp_agent()
    sender = sdk_logger(
        f"http://127.0.0.1:{port}/v1/logs",
        {"service.name": "checkout", "host.name": "web-7"},
        compression,
    )
    _log_faults(sender.logger)
    sender.flush()
    errors = _errors(config, want=3)
    by_type = {e.error_type: e for e in errors.values()}
    assert sorted(by_type) == ["Error", "KeyError", "ValueError"], errors
    charged = by_type["ValueError"]
    _counts_reach(
        config,
        {charged.message: 3, by_type["KeyError"].message: 2, by_type["Error"].message: 1},
    )
    assert charged.service == "checkout" and charged.host == "web-7"
    assert charged.stack[0] == "Traceback (most recent call last):"
    assert any("in charge" in line for line in charged.stack), charged.stack
    assert by_type["KeyError"].error_type == "KeyError"
    assert any("in reserve" in line for line in by_type["KeyError"].stack)
    plain = by_type["Error"]
    assert (plain.message, plain.stack) == ("payment provider answered 502", [])
    assert agent.alive()


# --- a retried batch --------------------------------------------------------------------------


class _DroppingProxy:
    """A loopback HTTP proxy that forwards each request to the agent and, for the first
    ``drop`` of them, closes the client's connection instead of passing the answer on:
    the agent has stored the batch, the sender never hears so and sends it again."""

    def __init__(self, upstream_port: int, drop: int = 1) -> None:
        self.upstream_port = upstream_port
        self.drop = drop
        self.forwarded: list[int] = []
        self.dropped = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        with client, reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    byte = reader.read(1)
                    if not byte:
                        return
                    head += byte
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int(
                    next((v for k, v in headers.items() if k.lower() == "content-length"), "0")
                )
                body = reader.read(length)
                upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
                keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(method, path, body=body, headers=keep)
                answer = upstream.getresponse()
                payload = answer.read()
                upstream.close()
                self.forwarded.append(answer.status)
                if self.dropped < self.drop:
                    self.dropped += 1
                    client.shutdown(socket.SHUT_RDWR)
                    return
                out = [f"HTTP/1.1 {answer.status} {answer.reason}"]
                out += [f"{k}: {v}" for k, v in answer.getheaders() if k.lower() != "connection"]
                client.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)

    def close(self) -> None:
        self._server.close()


def test_a_batch_retried_after_its_answer_was_dropped_is_counted_once(
    otlp_agent: Callable, sdk_logger: Callable
) -> None:
    config, port, agent = otlp_agent()
    proxy = _DroppingProxy(port)
    try:
        sender = sdk_logger(f"http://127.0.0.1:{proxy.port}/v1/logs", {"service.name": "checkout"})
        for order in range(5):
            try:
                charge(order)
            except ValueError:
                sender.logger.exception("charging failed")
        sender.flush()
    finally:
        proxy.close()
    assert proxy.dropped == 1 and proxy.forwarded[:2] == [200, 200], proxy.forwarded
    errors = _errors(config, want=1)
    assert [e.error_type for e in errors.values()] == ["ValueError"]
    (charged,) = errors.values()
    _counts_reach(config, {charged.message: 5})
    assert "already stored (a retry after a lost answer)" in agent.said()


# --- refused requests ---------------------------------------------------------------------------


def _post(
    port: int,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    path: str = "/v1/logs",
    method: str = "POST",
) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            method, path, body=body, headers={"Content-Type": content_type, **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _raw(port: int, data: bytes) -> bytes:
    """Send raw bytes, read the answer until the agent closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def _json_request(*records: dict, resource: dict[str, str] | None = None) -> bytes:
    attributes = [
        {"key": k, "value": {"stringValue": v}}
        for k, v in ({"service.name": "shop"} if resource is None else resource).items()
    ]
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": attributes},
                    "scopeLogs": [{"scope": {"name": "x"}, "logRecords": list(records)}],
                }
            ]
        }
    ).encode()


def _stack_record(message: str, function: str, **extra: object) -> dict:
    stack = f"TypeError: {message}\n    at {function} (/srv/app/lib/{function}.js:12:5)\n"
    return {
        "timeUnixNano": "1796032800000000000",
        "severityNumber": 17,
        "body": {"stringValue": stack},
        **extra,
    }


def test_malformed_and_oversized_requests_are_refused_with_the_right_status_and_serving_goes_on(
    otlp_agent: Callable,
) -> None:
    config, port, agent = otlp_agent(host="0.0.0.0")
    assert "not a loopback address" in agent.said()
    status, said = _post(port, b"{not json")
    assert status == 400 and "not JSON" in json.loads(said)["message"]
    status, said = _post(port, b'{"resourceLogs": [{"scopeLogs": {"logRecords": []}}]}')
    assert (status, json.loads(said)["message"]) == (
        400,
        "resourceLogs[0].scopeLogs: must be an array, got dict",
    )
    status, said = _post(port, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400, said
    status, said = _post(port, b"x" * (9 << 20))
    assert status == 413 and "more than the 8388608 accepted" in said
    bomb = gzip.compress(b" " * (40 << 20))
    status, said = _post(port, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and "once decompressed" in said
    status, said = _post(port, b"\x1f\x8b\x08garbage", headers={"Content-Encoding": "gzip"})
    assert status == 400 and "not valid gzip data" in said
    status, said = _post(port, b"{}", headers={"Content-Encoding": "br"})
    assert status == 415 and "'br' is not supported" in said
    status, said = _post(port, b"{}", content_type="text/plain")
    assert status == 415 and "application/json" in said
    assert _post(port, b"{}", path="/v1/traces")[0] == 404
    assert _post(port, b"", method="GET")[0] == 405
    answer = _raw(
        port, b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 411 ")
    answer = _raw(port, b"POST /v1/logs HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert _raw(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )
    # A client that waits for "100 Continue" before it sends the body (curl does).
    body = _json_request(_stack_record("sent after continue", "patient"))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n{}")
    # Still serving, and what was refused left nothing behind.
    status, said = _post(port, _json_request(_stack_record("after the storm", "storm")))
    assert (status, said) == (200, "{}")
    errors = _errors(config, want=2)
    assert sorted(errors) == ["after the storm", "sent after continue"]
    assert agent.alive()
    assert "refused a request from 127.0.0.1" in agent.said()


# --- JSON from shippers -------------------------------------------------------------------


def test_otlp_json_posted_by_plain_http_as_vector_and_fluent_bit_send_it(
    otlp_agent: Callable,
) -> None:
    config, port, _ = otlp_agent(service="fallback")
    pino = {
        "level": 50,
        "time": 1796032800000,
        "msg": "cannot reserve 3 of SKU6",
        "err": {
            "type": "StockError",
            "message": "cannot reserve 3 of SKU6",
            "stack": "StockError: cannot reserve 3 of SKU6\n"
            "    at reserve (/srv/shop/stock.js:40:11)",
        },
    }

    def kv(key: str, value: object) -> dict:
        if isinstance(value, dict):
            return {
                "key": key,
                "value": {"kvlistValue": {"values": [kv(k, v) for k, v in value.items()]}},
            }
        if isinstance(value, int):
            return {"key": key, "value": {"intValue": str(value)}}
        return {"key": key, "value": {"stringValue": value}}

    fluent_bit = {  # a map body, no severityNumber, the level as text, int64 as strings
        "timeUnixNano": "1796032800000000000",
        "observedTimeUnixNano": "1796032800100000000",
        "severityText": "error",
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "body": {"kvlistValue": {"values": [kv(k, v) for k, v in pino.items()]}},
    }
    vector = _stack_record(  # severity as an enum name, the route from HTTP attributes
        "Cannot read properties of undefined (reading 'id')",
        "getUser",
        severityNumber="SEVERITY_NUMBER_ERROR",
        attributes=[
            {"key": "http.request.method", "value": {"stringValue": "GET"}},
            {"key": "http.route", "value": {"stringValue": "/users/:id"}},
        ],
    )
    info = {"severityNumber": 9, "body": {"stringValue": "TypeError: quiet at INFO"}}
    unnamed = {  # no severity at all and no service.name: the text decides, the source names it
        "body": {"stringValue": "ERROR GET /health failed: RangeError: probe out of range"}
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        # One kept-alive connection; the second request chunked, the third gzipped.
        conn.request(
            "POST",
            "/v1/logs",
            body=_json_request(
                fluent_bit, info, resource={"service.name": "shop", "host.name": "fb-1"}
            ),
            headers={"Content-Type": "application/json"},
        )
        first = conn.getresponse()
        assert (first.status, first.read()) == (200, b"{}")
        conn.request(
            "POST",
            "/v1/logs",
            body=iter([_json_request(vector, resource={"service.name": "api"})]),
            headers={"Content-Type": "application/json; charset=utf-8"},
            encode_chunked=True,
        )
        second = conn.getresponse()
        assert (second.status, second.read()) == (200, b"{}")
        conn.request(
            "POST",
            "/v1/logs",
            body=zlib.compress(_json_request(unnamed, resource={})),
            headers={"Content-Type": "application/json", "Content-Encoding": "deflate"},
        )
        third = conn.getresponse()
        assert (third.status, third.read()) == (200, b"{}")
    finally:
        conn.close()
    errors = _errors(config, want=3)
    stock = errors["cannot reserve 3 of SKU6"]
    assert (stock.service, stock.host, stock.error_type) == ("shop", "fb-1", "StockError")
    assert stock.first_seen == "2026-11-30T10:00:00.000Z"
    assert "    at reserve (/srv/shop/stock.js:40:11)" in stock.stack
    user = errors["Cannot read properties of undefined (reading 'id')"]
    assert (user.service, user.route, user.host) == ("api", "GET /users/:id", "log-host")
    probe = errors["probe out of range"]
    assert (probe.service, probe.error_type, probe.route) == (
        "fallback",
        "RangeError",
        "GET /health",
    )
    _counts_reach(
        config,
        {"cannot reserve 3 of SKU6": 1, user.message: 1, probe.message: 1},
    )


def test_protobuf_without_the_otlp_extra_is_refused_with_415_naming_the_extra(
    otlp_agent: Callable, sdk_logger: Callable, tmp_path: Path
) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    # The agent's interpreter as a host without the extra: opentelemetry cannot be imported.
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('opentelemetry', 'google'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    env = {"PYTHONPATH": f"{hide}{os.pathsep}{Path.cwd()}"}
    config, port, _ = otlp_agent(env=env)
    check = subprocess.run(
        [*AGENT, "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert (
        f"ok   sources[0] otlp 127.0.0.1:{port}: in use (by the running agent?); " in check.stdout
    )
    assert "accepts JSON only (install levautofix[otlp] for protobuf)" in check.stdout
    require_module("opentelemetry.proto")
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

    body = ExportLogsServiceRequest(resource_logs=[ResourceLogs()]).SerializeToString()
    status, said = _post(port, body, "application/x-protobuf")
    assert status == 415 and "levautofix[otlp]" in said, said
    status, said = _post(port, _json_request(_stack_record("json still works", "json")))
    assert status == 200
    assert list(_errors(config, want=1)) == ["json still works"]
