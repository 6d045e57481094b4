"""Just enough HTTP/1.1 over asyncio streams to receive OTLP exports, with every size bounded.

The agent's base install is the standard library and watchfiles, so there is no web
framework to lean on, and ``http.server`` would need a thread per connection that then has
to hand its records back to the event loop. OTLP/HTTP needs little: ``POST`` with a body
of known length (``Content-Length``, or ``Transfer-Encoding: chunked``), ``Expect:
100-continue`` for clients that wait before sending, keep-alive, and a response.

Everything a client sends is bounded before it is held: the request head by the stream's
limit, the body by ``max_body`` (checked against ``Content-Length`` before reading, and
while reading chunks), the time to send a request by a timeout. A request that breaks
HTTP raises :class:`HttpError` with the status to answer and a reason a person can read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """A request that cannot be served: the status to answer and why, in words."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Request:
    """One request: its method, path (without the query), lower-cased headers and body."""

    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


@dataclass(frozen=True)
class Response:
    """What to answer: the status, the body and its type, and any extra headers."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, *, close: bool) -> bytes:
        reason = _REASONS.get(self.status, "Unknown")
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Length: {len(self.body)}"]
        if self.body or self.status >= 300:
            lines.append(f"Content-Type: {self.content_type}")
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def _head(raw: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, path, version and headers of a request head (without its final CRLF CRLF)."""
    text = raw.decode("latin-1")  # every byte is a latin-1 character
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"not an HTTP/1.x request line: {request_line[:100]!r}")
    method, target, version = parts
    if len(header_lines) > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, f"malformed header line: {line[:100]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    path = target.split("?", 1)[0]
    return method.upper(), path, version, headers


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    """A ``Transfer-Encoding: chunked`` body, refused as soon as it grows past ``max_body``."""
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line[:-2].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(400, f"bad chunk size {size_text[:20]!r}") from None
        if size < 0:
            raise HttpError(400, "bad chunk size")
        if size == 0:
            # Trailers, if any, up to the empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        if len(body) + size > max_body:
            raise HttpError(413, f"the body is larger than {max_body} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise HttpError(400, "a chunk does not end with CRLF")


async def read_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    max_body: int,
    head_timeout: float,
    body_timeout: float,
) -> Request | None:
    """The next request on a connection, or None when the client closed it (or left it
    idle for ``head_timeout``) between requests.

    A body longer than ``max_body`` is refused before it is read, and one that takes
    longer than ``body_timeout`` to arrive is refused too. Raises :class:`HttpError` for
    what breaks HTTP.
    """
    try:
        async with asyncio.timeout(head_timeout):
            raw = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError:
        return None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "the connection closed inside the request head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"the request head is larger than {MAX_HEAD_BYTES} bytes") from None
    method, path, version, headers = _head(raw[:-4])
    request = Request(method, path, version, headers)
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length_text = headers.get("content-length")
    if not chunked and length_text is None:
        if method in ("POST", "PUT", "PATCH"):
            raise HttpError(411, "a Content-Length header is required")
        return request
    length = 0
    if not chunked:
        if not length_text or not length_text.isdigit() or len(length_text) > 18:
            raise HttpError(400, f"bad Content-Length {length_text!r}")
        length = int(length_text)
        if length > max_body:
            raise HttpError(413, f"the body is {length} bytes, more than the {max_body} accepted")
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        async with asyncio.timeout(body_timeout):
            body = (
                await _read_chunked(reader, max_body)
                if chunked
                else await reader.readexactly(length)
            )
    except TimeoutError:
        raise HttpError(408, f"the body did not arrive within {body_timeout:g}s") from None
    except asyncio.IncompleteReadError:
        raise HttpError(400, "the connection closed inside the body") from None
    except asyncio.LimitOverrunError:
        raise HttpError(400, "a chunk size line is too long") from None
    return Request(method, path, version, headers, body)
