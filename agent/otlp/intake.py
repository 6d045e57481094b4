"""The OTLP/HTTP logs endpoint: ``POST /v1/logs`` in, records committed, then 200.

A team's Vector, Fluent Bit or OpenTelemetry Collector forwards log records here instead
of the agent tailing files. Each request is answered only after what it carried is
committed to the outbox, so a shipper that gets its 200 may drop the batch. A shipper
that does not get it (a dropped connection, a timeout) sends the same batch again; the
request's digest is committed in the same transaction as its counts, so the copy is
answered 200 and counted nothing: at-least-once delivery in, every occurrence counted once.

What a client may send is bounded (the body on the wire and after gzip or deflate, the
head, the time to send it, the connections at once) and whatever is wrong with a request
is answered with the status that says so and a reason (400 malformed, 404 another path,
405 another method, 411 no length, 413 too large, 415 an unknown type or encoding); the
endpoint keeps serving. Decoding and parsing run in a worker thread, so a large batch
does not hold up the other sources; storing runs on the event loop like theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from agent.guard import Skipped
from agent.otlp.http import MAX_HEAD_BYTES, HttpError, Request, Response, read_request
from agent.otlp.payload import (
    PROTOBUF_MISSING,
    LogEntry,
    PayloadError,
    ProtobufUnavailable,
    decode_json,
    decode_protobuf,
    protobuf_response,
    status_protobuf,
)
from agent.otlp.records import Found, RecordReader

LOGS_PATH = "/v1/logs"
MAX_BODY_BYTES = 8 << 20
MAX_DECODED_BYTES = 16 << 20
MAX_CONNECTIONS = 32
# A kept-alive connection may wait this long between requests, a body this long to arrive.
IDLE_SECONDS = 120.0
BODY_SECONDS = 30.0
# After refusing a request unread, what the client still sends is read and dropped.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 << 20

JSON_TYPE = "application/json"
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
# google.rpc.Code values for the Status body of an error answer.
_RPC_CODES = {400: 3, 404: 5, 405: 12, 408: 4, 411: 3, 413: 8, 415: 3, 431: 8, 500: 13, 503: 14}


@dataclass(frozen=True)
class Delivery:
    """What storing one request did: occurrences counted and refused, or a known copy."""

    stored: int = 0
    refused: int = 0
    reason: str = ""
    duplicate: bool = False


# (receipt, records) -> what was stored; raises when the database fails (the client retries).
Store = Callable[[str, list[Found]], Delivery]
# (kind, detail) -> an operator message, rate-limited per kind by the caller.
Report = Callable[[str, str], None]


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _kind(content_type: str) -> str | None:
    """``json`` or ``protobuf`` for a Content-Type, None for anything else."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_TYPE:
        return "json"
    if media in PROTOBUF_TYPES:
        return "protobuf"
    return None


def decoded_body(body: bytes, encoding: str, limit: int = MAX_DECODED_BYTES) -> bytes:
    """The body without its Content-Encoding (gzip, deflate), never longer than ``limit``."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        tries = [zlib.MAX_WBITS | 16]
    elif encoding == "deflate":
        tries = [zlib.MAX_WBITS, -zlib.MAX_WBITS]  # zlib-wrapped, as specified, or raw
    else:
        raise HttpError(
            415, f"Content-Encoding {encoding[:40]!r} is not supported (gzip, deflate or none)"
        )
    problem = ""
    for wbits in tries:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            problem = f"the body is not valid {encoding} data: {exc}"
            continue
        if len(out) > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes once decompressed")
        if not inflater.eof:
            problem = f"the {encoding} data is truncated"
            continue
        return out
    raise HttpError(400, problem)


class OtlpIntake:
    """One ``otlp`` source: serves ``POST /v1/logs`` on ``host:port`` until cancelled."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        label: str,
        store: Store,
        report: Report,
        max_line_bytes: int,
    ) -> None:
        self.host = host
        self.port = port
        self.label = label
        self._store = store
        self._report = report
        self._max_line_bytes = max_line_bytes
        self._connections = 0
        # One batch is decoded and stored at a time: memory stays bounded by one body's
        # worth of objects, and the outbox has one writer anyway.
        self._one_at_a_time = asyncio.Semaphore(1)

    async def serve(self, on_listening: Callable[[str], None] | None = None) -> None:
        """Listen and serve until cancelled; a bind failure raises (the daemon restarts it)."""
        server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_HEAD_BYTES, reuse_address=True
        )
        if on_listening is not None:
            where = ", ".join(_address(s.getsockname()) for s in server.sockets)
            warning = (
                ""
                if is_loopback(self.host)
                else " (not a loopback address: anyone who can reach it can send records; "
                "keep it behind a firewall or bind 127.0.0.1)"
            )
            on_listening(
                f"{self.label}: receiving OTLP/HTTP logs on http://{where}{LOGS_PATH}{warning}"
            )
        async with server:
            await server.serve_forever()

    # --- connections ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _address(writer.get_extra_info("peername"))
        self._connections += 1
        try:
            if self._connections > MAX_CONNECTIONS:
                busy = Response(503, b"too many connections; retry later\n")
                writer.write(busy.encode(close=True))
                await writer.drain()
                return
            await self._serve_connection(reader, writer, peer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # nothing a client sends may stop the endpoint
            self._report("connection", f"a connection from {peer} failed: {exc!r}"[:500])
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        while True:
            try:
                request = await read_request(
                    reader,
                    writer,
                    max_body=MAX_BODY_BYTES,
                    head_timeout=IDLE_SECONDS,
                    body_timeout=BODY_SECONDS,
                )
            except HttpError as exc:
                self._refused(peer, exc)
                writer.write(self._error(exc, None).encode(close=True))
                await writer.drain()
                await _linger(reader, writer)
                return
            if request is None:
                return
            response = await self.handle(request, peer)
            close = not request.keep_alive or response.status >= 500
            writer.write(response.encode(close=close))
            await writer.drain()
            if close:
                return

    # --- requests ------------------------------------------------------------------------

    async def handle(self, request: Request, peer: str = "-") -> Response:
        """The answer to one request; every failure becomes an error answer."""
        kind = _kind(request.headers.get("content-type", ""))
        try:
            if request.path != LOGS_PATH:
                raise HttpError(
                    404, f"no such path {request.path[:200]!r}; OTLP logs go to {LOGS_PATH}"
                )
            if request.method != "POST":
                raise HttpError(405, f"{request.method[:20]} is not allowed here; use POST")
            if kind is None:
                raise HttpError(
                    415,
                    f"Content-Type {request.headers.get('content-type', '')[:80]!r} is not "
                    f"supported: send {JSON_TYPE} or application/x-protobuf",
                )
            body = decoded_body(request.body, request.headers.get("content-encoding", ""))
            receipt = hashlib.sha256(kind.encode() + b"\0" + body).hexdigest()
            async with self._one_at_a_time:
                delivery = await self._take(kind, body, receipt, peer)
        except HttpError as exc:
            self._refused(peer, exc)
            return self._error(exc, kind)
        except Exception as exc:
            self._report("request", f"a request from {peer} failed: {exc!r}"[:500])
            return self._error(HttpError(500, "the agent failed to read this request"), kind)
        if delivery.duplicate:
            self._report(
                "retry",
                f"a batch from {peer} was already stored (a retry after a lost answer); "
                "answered 200 without counting it again",
            )
        if delivery.refused:
            self._report(
                "not stored",
                f"{delivery.refused} record(s) from {peer} could not be stored: {delivery.reason}",
            )
        return self._success(kind, delivery)

    async def _take(self, kind: str, body: bytes, receipt: str, peer: str) -> Delivery:
        """Decode and parse in a worker thread, then store on the loop."""
        try:
            found, skipped = await asyncio.to_thread(self._read, kind, body)
        except ProtobufUnavailable:
            raise HttpError(415, PROTOBUF_MISSING) from None
        except PayloadError as exc:
            raise HttpError(400, str(exc)[:1000]) from None
        if skipped:
            self._report(
                "unreadable",
                f"skipped {len(skipped)} line(s) of a batch from {peer} that the parser "
                f"failed on: {skipped[-1].reason}",
            )
        try:
            return self._store(receipt, found)
        except Exception as exc:
            self._report(
                "store",
                f"could not store a batch from {peer} ({exc}); "
                "it was refused with 503 so the sender retries",
            )
            raise HttpError(503, "the agent could not store the records; retry later") from None

    def _read(self, kind: str, body: bytes) -> tuple[list[Found], list[Skipped]]:
        """The error records of a body and the lines the parser skipped (worker thread)."""
        entries: list[LogEntry] = decode_json(body) if kind == "json" else decode_protobuf(body)
        reader = RecordReader(self._max_line_bytes)
        found = reader.found(entries)
        return found, reader.assembler.take_skipped()

    def _refused(self, peer: str, exc: HttpError) -> None:
        self._report(
            f"http {exc.status}", f"refused a request from {peer}: {exc.status} {exc.reason}"
        )

    @staticmethod
    def _success(kind: str, delivery: Delivery) -> Response:
        if kind == "protobuf":
            body = protobuf_response(delivery.refused, delivery.reason)
            return Response(200, body, PROTOBUF_TYPES[0])
        answer: dict[str, object] = {}
        if delivery.refused:
            answer["partialSuccess"] = {
                "rejectedLogRecords": str(delivery.refused),
                "errorMessage": delivery.reason,
            }
        return Response(200, json.dumps(answer).encode(), JSON_TYPE)

    @staticmethod
    def _error(exc: HttpError, kind: str | None) -> Response:
        """An error answer: a ``google.rpc.Status`` in the request's encoding, else text."""
        code = _RPC_CODES.get(exc.status, 2)
        headers = {"Allow": "POST"} if exc.status == 405 else {}
        if exc.status == 503:
            headers["Retry-After"] = "5"
        if kind == "json":
            body = json.dumps({"code": code, "message": exc.reason}).encode()
            return Response(exc.status, body, JSON_TYPE, headers)
        if kind == "protobuf":
            return Response(
                exc.status, status_protobuf(code, exc.reason), PROTOBUF_TYPES[0], headers
            )
        return Response(exc.status, (exc.reason + "\n").encode(), headers=headers)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read and drop what the client still sends (a body refused unread) for a moment
    before closing: closing with unread input resets the connection, and the client
    would see a reset instead of the answer that says why."""
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()
    dropped = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(LINGER_SECONDS):
            while dropped < LINGER_BYTES:
                data = await reader.read(64 * 1024)
                if not data:
                    break
                dropped += len(data)


def _address(name: object) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(name)
