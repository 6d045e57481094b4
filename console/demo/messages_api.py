"""A scripted Anthropic Messages API, served over real loopback HTTP.

The real Claude Code CLI is pointed at it with ``ANTHROPIC_BASE_URL`` and talks to it as to
the real API (streamed SSE turns, side requests, token counts). What the model says is a
script: a fixed list of turns (the tests script each conversation and then inspect what the
CLI really sent back: tool results, refusals, the tool list), or a function that reads the
request and answers it (``autofix demo``'s model, console/demo/model.py, which makes prepared
fixes when no logged-in ``claude`` is there). Nothing about the CLI is faked; only the
remote model is.

The turn number of a request is the number of assistant messages already in it, so a turn
the CLI retries is answered the same way again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "claude-opus-4-8"


@dataclass(frozen=True)
class Text:
    """A text block the scripted model writes."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A tool_use block the scripted model emits; the CLI decides whether it runs."""

    name: str
    input: dict[str, Any]


def verdict_call(
    outcome: str = "fixed",
    *,
    root_cause: str = "The handler reads a field of a value that can be missing.",
    summary: str = "Handle the missing value and add a regression test.",
    risk: str = "low",
    files: list[dict[str, str]] | None = None,
    **more: Any,
) -> ToolCall:
    """The model's closing call with its verdict: the tool the CLI adds for
    ``--json-schema`` (see console/fix/verdict.py for the fields)."""
    return ToolCall(
        "StructuredOutput",
        {
            "outcome": outcome,
            "root_cause": root_cause,
            "summary": summary,
            "risk": risk,
            "files": files or [],
            **more,
        },
    )


@dataclass(frozen=True)
class ApiError:
    """An HTTP error answer for a turn, shaped like the real API's error body."""

    status: int
    error_type: str
    message: str
    # Sent with the answer, e.g. ``retry-after`` or ``anthropic-ratelimit-requests-reset``.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """Accept the request and never answer it (until the server closes)."""


Turn = list[Text | ToolCall] | ApiError | Stall
# Answers one streamed request (its JSON body) with the model's next turn.
Script = Callable[[dict[str, Any]], Turn]


@dataclass
class Request:
    """One request as the CLI sent it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class MessagesApi:
    """The server: start it, hand ``env()`` to the CLI, read ``requests`` afterwards.

    ``turns`` is the conversation turn by turn, or a :data:`Script` that decides each turn
    from the request."""

    turns: list[Turn] | Script
    # Tokens each turn reports using (the CLI prices them); the demo's model reports none.
    input_tokens: int = 1200
    output_tokens: int = 42
    requests: list[Request] = field(default_factory=list)
    unknown: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _closing: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> MessagesApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_HEAD(self) -> None:
                api._record(self, None)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                api._record(self, None, unknown=True)
                self._json(404, _error_body("not_found_error", "not scripted"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                if not isinstance(body, dict):
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                path = self.path.split("?", 1)[0]
                if path == "/v1/messages/count_tokens":
                    api._record(self, body)
                    self._json(200, {"input_tokens": api.input_tokens})
                    return
                if path != "/v1/messages":
                    api._record(self, body, unknown=True)
                    self._json(404, _error_body("not_found_error", f"no route {path}"))
                    return
                api._record(self, body)
                if not body.get("stream"):
                    self._json(200, _message(_side_text(body), "end_turn", body))
                    return
                turn = api._turn_for(body)
                if isinstance(turn, Stall):
                    api._closing.wait(120)
                    self.close_connection = True
                    return
                if isinstance(turn, ApiError):
                    self._json(
                        turn.status, _error_body(turn.error_type, turn.message), turn.headers
                    )
                    return
                self._stream(turn, body)

            def _json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", "req_standin")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, blocks: list[Text | ToolCall], body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("request-id", "req_standin")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                for event, data in _sse_events(blocks, body, api):
                    chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
                    self.wfile.write(chunk)
                    self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> MessagesApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """The streamed turn requests (the real conversation), in order."""
        return [
            r.body
            for r in self.requests
            if r.body is not None and r.method == "POST" and r.body.get("stream")
        ]

    def tool_results(self) -> dict[str, dict[str, Any]]:
        """Every tool_result block the CLI sent back, by tool_use id."""
        found: dict[str, dict[str, Any]] = {}
        for body in self.conversation:
            for message in body.get("messages", []):
                content = message.get("content")
                if message.get("role") != "user" or not isinstance(content, list):
                    continue
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        found[block["tool_use_id"]] = block
        return found

    def _record(
        self, handler: BaseHTTPRequestHandler, body: dict[str, Any] | None, unknown: bool = False
    ) -> None:
        request = Request(handler.command, handler.path, dict(handler.headers.items()), body)
        with self._lock:
            self.requests.append(request)
            if unknown:
                self.unknown.append(request)

    def _turn_for(self, body: dict[str, Any]) -> Turn:
        if callable(self.turns):
            return self.turns(body)
        done = assistant_turns(body)
        if done < len(self.turns):
            return self.turns[done]
        return [Text("(script exhausted)")]

    def endpoint_env(self) -> dict[str, str]:
        """What points the CLI here (a key it sends back, no retries, no side traffic)."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "scripted-model",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "DISABLE_AUTOUPDATER": "1",
        }

    def env(self, home: str) -> dict[str, str]:
        """The environment that points the CLI here and keeps every user setting out."""
        return {"HOME": home, "CLAUDE_CONFIG_DIR": f"{home}/.claude", **self.endpoint_env()}


def tool_id(index: int) -> str:
    """Stable tool_use ids per block so tests can find the CLI's answer to each call."""
    return f"toolu_{index:02d}"


def assistant_turns(body: dict[str, Any]) -> int:
    """How many turns the model has already taken in this conversation."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")


def _sse_events(
    blocks: list[Text | ToolCall], body: dict[str, Any], api: MessagesApi
) -> Iterator[tuple[str, dict[str, Any]]]:
    turn = assistant_turns(body)
    message = _message("", None, body)
    message["id"] = f"msg_{turn}"
    message["content"] = []
    message["usage"] = {
        "input_tokens": api.input_tokens,
        "output_tokens": min(1, api.output_tokens),
    }
    yield "message_start", {"type": "message_start", "message": message}
    stop_reason = "end_turn"
    for index, block in enumerate(blocks):
        if isinstance(block, Text):
            start: dict[str, Any] = {"type": "text", "text": ""}
            delta: dict[str, Any] = {"type": "text_delta", "text": block.text}
        else:
            stop_reason = "tool_use"
            use_id = tool_id(turn * 10 + index + 1)
            start = {"type": "tool_use", "id": use_id, "name": block.name, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.input)}
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": start,
            },
        )
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": api.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _message(text: str, stop_reason: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_side",
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or MODEL,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }


def _side_text(body: dict[str, Any]) -> str:
    # Side requests (titles, summaries) only need a short plausible answer.
    return "Fix request"


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}
