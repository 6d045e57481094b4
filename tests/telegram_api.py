"""A loopback stand-in for the Telegram Bot API methods the console's bot calls.

It is a real HTTP server on 127.0.0.1 (random port) that python-telegram-bot reaches through
its ``base_url``: requests arrive as ``POST /bot<token>/<method>`` with form, JSON or
multipart bodies, and answers carry the Bot API's JSON (``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": ..., "description": ...}``).

It keeps the chat's messages so that edits can be checked (and a same-content edit is
refused with "message is not modified", as Telegram does), parses HTML like Telegram
(unknown tags or a bare ``<``/``&`` are "can't parse entities"), enforces the 4096-character
text, 1024-character caption and 64-byte callback data limits, serves ``getUpdates`` as a
long poll, lets the test inject user messages and button taps (in private chats or groups)
and raw entries of any shape, records every call, and can answer the next calls with 429, an
error text of the test's choosing or any raw body, or drop their connection to play a flaky
network.

Like Telegram, it numbers updates one after another and ``offset`` confirms by that number;
a raw entry keeps its number even when its JSON has no usable ``update_id``.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import LoopbackServer

BOT_ID = 7000001
OWN_NUMBER = object()  # in a raw entry: "use the number this update gets"
BOT_USERNAME = "autofix_test_bot"
_JSON_FIELDS = {"reply_markup", "entities", "allowed_updates", "commands", "link_preview_options"}
_INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "reply_to_message_id"}
_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
    "span", "tg-spoiler", "tg-emoji", "blockquote",
}  # fmt: skip
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TOKEN = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>|&(#x[0-9a-fA-F]+|#\d+|\w+);|[<>&]"
)


class ParseError(ValueError):
    """Text Telegram would refuse with "Bad Request: can't parse entities: ..."."""


def telegram_length(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str) -> str:
    """The plain text Telegram would show for an HTML-mode message, or :class:`ParseError`."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(text[pos : match.start()])
        pos = match.end()
        closing, tag, _attrs, entity = (
            match.group(1),
            match.group(2),
            match.group(3),
            match.group(4),
        )
        offset = len(text[: match.start()].encode())
        if tag is not None:
            tag = tag.lower()
            if tag not in _TAGS:
                raise ParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')
            if closing:
                if not stack or stack[-1] != tag:
                    raise ParseError(
                        f'Can\'t find end tag corresponding to start tag "{tag}" '
                        f"at byte offset {offset}"
                    )
                stack.pop()
            else:
                stack.append(tag)
        elif entity is not None:
            if entity.startswith("#x"):
                out.append(chr(int(entity[2:], 16)))
            elif entity.startswith("#"):
                out.append(chr(int(entity[1:])))
            elif entity in _ENTITIES:
                out.append(_ENTITIES[entity])
            else:
                raise ParseError(f'Unsupported HTML entity "&{entity};" at byte offset {offset}')
        else:
            raise ParseError(
                f"Unexpected {match.group(0)!r} at byte offset {offset}; it must be escaped"
            )
    out.append(text[pos:])
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


@dataclass
class Call:
    """One Bot API request as the stand-in received it (parameters already decoded)."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    scripted: bool = False  # answered by a failure the test scripted


@dataclass
class Message:
    chat_id: int
    message_id: int
    text: str
    reply_markup: dict[str, Any] | None
    date: int
    document: dict[str, Any] | None = None
    caption: str | None = None

    def buttons(self) -> list[dict[str, Any]]:
        markup = self.reply_markup or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]

    def button(self, label: str) -> dict[str, Any]:
        for b in self.buttons():
            if b["text"] == label:
                return b
        raise AssertionError(f"no button {label!r} in {[b['text'] for b in self.buttons()]}")


@dataclass
class _Failure:
    method: str
    kind: str  # "429", "drop", "error" or "raw"
    retry_after: int = 1
    status: int = 400
    body: bytes = b""


class TelegramApi:
    """In-memory Bot API for one test; use as a context manager."""

    def __init__(self, token: str = "123456:TEST-token_for-the-stand-in") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], Message] = {}
        self._updates: list[tuple[int, Any]] = []  # (number, JSON as served)
        self._update_ids = itertools.count(1001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._callback_ids = itertools.count(5_000_000_001)
        self._failures: list[_Failure] = []
        self.webhook_url = ""  # set by a test: a webhook left from another deployment
        self._cond = threading.Condition()
        self._closing = False
        self._http = LoopbackServer(self._handler_class())

    @property
    def url(self) -> str:
        return self._http.url

    def __enter__(self) -> TelegramApi:
        self._http.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._http.stop()

    # -- what a person does on the phone ------------------------------------------------

    def send_text(self, user_id: int, text: str, **who: Any) -> int:
        """A user types ``text`` to the bot (where and as whom: see :meth:`message_json`);
        returns the update id."""
        return self._push({"message": self.message_json(user_id, text, **who)})

    def message_json(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Lev",
        username: str | None = None,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """The ``message`` object of an update carrying ``text`` (to send as is or mangle):
        from ``user_id``, in their private chat with the bot or in the group ``chat_id`` (a
        negative id, as Telegram gives supergroups)."""
        entities = []
        command = re.match(r"/[A-Za-z0-9_]+(@\w+)?", text)
        if command:
            entities.append({"type": "bot_command", "offset": 0, "length": command.end()})
        chat: dict[str, Any]
        if chat_id is None or chat_id == user_id:
            chat = {"id": user_id, "type": "private", "first_name": first_name}
        else:
            chat = {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "from": _user(user_id, first_name, username=username),
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        return message

    def push_raw(self, *entries: Any) -> list[int]:
        """Queue ``getUpdates`` entries exactly as given (any JSON value, however broken);
        each takes the next update number, which replaces an ``"update_id": OWN_NUMBER``.
        Returns those numbers."""
        with self._cond:
            numbers = []
            for entry in entries:
                number = next(self._update_ids)
                if isinstance(entry, dict) and entry.get("update_id") is OWN_NUMBER:
                    entry = {**entry, "update_id": number}
                self._updates.append((number, entry))
                numbers.append(number)
            self._cond.notify_all()
        return numbers

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by an offset."""
        with self._cond:
            return len(self._updates)

    def tap(self, user_id: int, message: Message, data: str, *, first_name: str = "Lev") -> str:
        """A user taps a button whose callback data is ``data``; returns the query id."""
        query_id = str(next(self._callback_ids))
        self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": _user(user_id, first_name),
                    "message": self._message_json(message),
                    "chat_instance": f"-{message.chat_id}77",
                    "data": data,
                }
            }
        )
        return query_id

    def plant(self, chat_id: int, text: str, reply_markup: dict[str, Any] | None = None) -> Message:
        """A message as if the bot had sent it there earlier (say, before a config change)."""
        with self._cond:
            message = Message(
                chat_id, self._next_message_id(chat_id), text, reply_markup, int(time.time())
            )
            self.messages[(chat_id, message.message_id)] = message
            return message

    # -- scripting failures -------------------------------------------------------------

    def rate_limit_next(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 Too Many Requests."""
        with self._cond:
            self._failures.extend(_Failure(method, "429", retry_after) for _ in range(times))

    def fail_next(
        self, method: str, description: str, *, status: int = 400, times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this Bot API error text."""
        with self._cond:
            self._failures.extend(
                _Failure(method, "error", status=status, body=description.encode())
                for _ in range(times)
            )

    def answer_raw_next(
        self, method: str, body: bytes, *, status: int = 200, times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with exactly ``body``."""
        with self._cond:
            self._failures.extend(
                _Failure(method, "raw", status=status, body=body) for _ in range(times)
            )

    def drop_next(self, method: str, times: int = 1) -> None:
        """Close the connection of the next ``times`` calls of ``method`` without answering."""
        with self._cond:
            self._failures.extend(_Failure(method, "drop") for _ in range(times))

    # -- reading what the bot did -------------------------------------------------------

    def calls_to(self, method: str, *, ok_only: bool = True) -> list[Call]:
        with self._cond:
            return [
                c for c in self.calls if c.method == method and (not ok_only or c.status == 200)
            ]

    def scripted_calls(self, method: str) -> list[Call]:
        """Calls of ``method`` that got a scripted failure instead of an answer."""
        with self._cond:
            return [c for c in self.calls if c.method == method and c.scripted]

    def chat(self, chat_id: int) -> list[Message]:
        """The bot's messages in a chat, oldest first."""
        with self._cond:
            return sorted(
                (m for (c, _), m in self.messages.items() if c == chat_id),
                key=lambda m: m.message_id,
            )

    def answer_to(self, query_id: str) -> Call | None:
        for call in self.calls_to("answerCallbackQuery"):
            if str(call.params.get("callback_query_id")) == query_id:
                return call
        return None

    # -- request handling ---------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stand_in._handle(self)

            def do_POST(self) -> None:
                stand_in._handle(self)

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", split.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if match is None:
            return self._send(handler, 404, _error(404, "Not Found"))
        token, method = match.group(1), match.group(2)
        if token != self.token:
            return self._send(handler, 401, _error(401, "Unauthorized"))
        try:
            params, files = _decode(
                handler.headers.get("Content-Type", ""), raw, parse_qs(split.query)
            )
        except ValueError as exc:
            return self._send(handler, 400, _error(400, f"Bad Request: {exc}"))
        call = Call(method, params, files)
        with self._cond:
            self.calls.append(call)
            failure = next((f for f in self._failures if f.method == method), None)
            if failure is not None:
                self._failures.remove(failure)
                call.scripted = True
        if failure is not None and failure.kind == "drop":
            call.status = 0
            handler.close_connection = True
            return
        if failure is not None and failure.kind == "raw":
            call.status = failure.status
            return self._send_bytes(handler, failure.status, failure.body)
        if failure is not None and failure.kind == "error":
            call.status = failure.status
            return self._send(
                handler, failure.status, _error(failure.status, failure.body.decode())
            )
        if failure is not None:
            call.status = 429
            return self._send(
                handler,
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {failure.retry_after}",
                    "parameters": {"retry_after": failure.retry_after},
                },
            )
        route = getattr(self, f"_m_{method}", None)
        if route is None:
            call.status = 404
            return self._send(handler, 404, _error(404, "Not Found: method not found"))
        status, result = route(params, files)
        call.status = status
        if status != 200:
            return self._send(handler, status, _error(status, str(result)))
        self._send(handler, 200, {"ok": True, "result": result})

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        self._send_bytes(handler, status, json.dumps(payload).encode())

    def _send_bytes(self, handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        try:
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stopped poll)
            handler.close_connection = True

    # -- methods ------------------------------------------------------------------------

    def _m_getMe(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        me = _user(BOT_ID, "AutoFix", is_bot=True)
        me.update(username=BOT_USERNAME, can_join_groups=True, supports_inline_queries=False)
        me["can_read_all_group_messages"] = False
        return 200, me

    def _m_deleteWebhook(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        self.webhook_url = ""
        return 200, True

    def _m_getWebhookInfo(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        with self._cond:
            waiting = len(self._updates)
        return 200, {"url": self.webhook_url, "has_custom_certificate": False,
                     "pending_update_count": waiting}  # fmt: skip

    def _m_setMyCommands(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        commands = params.get("commands")
        if not isinstance(commands, list):
            return 400, "Bad Request: commands must be a list"
        return 200, True

    def _m_getUpdates(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset > 0:
                self._updates = [u for u in self._updates if u[0] >= offset]
            while not self._updates and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return 200, [entry for _, entry in self._updates[:limit]]

    def _m_sendMessage(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            return 400, "Bad Request: chat not found"
        text = str(params.get("text", ""))
        problem = _check_text(text, params.get("parse_mode"), 4096, "message is too long")
        problem = problem or _check_markup(params.get("reply_markup"))
        if problem:
            return 400, problem
        with self._cond:
            message = Message(
                chat_id,
                self._next_message_id(chat_id),
                text,
                params.get("reply_markup"),
                int(time.time()),
            )
            self.messages[(chat_id, message.message_id)] = message
            return 200, self._message_json(message)

    def _m_editMessageText(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        text = str(params.get("text", ""))
        problem = _check_text(text, params.get("parse_mode"), 4096, "message is too long")
        problem = problem or _check_markup(params.get("reply_markup"))
        if problem:
            return 400, problem
        with self._cond:
            message = self.messages.get((params.get("chat_id"), params.get("message_id")))  # type: ignore[arg-type]
            if message is None:
                return 400, "Bad Request: message to edit not found"
            markup = params.get("reply_markup")
            if message.text == text and _same_markup(message.reply_markup, markup):
                return 400, (
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message"
                )
            message.text = text
            message.reply_markup = markup
            return 200, self._message_json(message)

    def _m_editMessageReplyMarkup(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        problem = _check_markup(params.get("reply_markup"))
        if problem:
            return 400, problem
        with self._cond:
            message = self.messages.get((params.get("chat_id"), params.get("message_id")))  # type: ignore[arg-type]
            if message is None:
                return 400, "Bad Request: message to edit not found"
            markup = params.get("reply_markup")
            if _same_markup(message.reply_markup, markup):
                return 400, "Bad Request: message is not modified"
            message.reply_markup = markup
            return 200, self._message_json(message)

    def _m_answerCallbackQuery(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        if not params.get("callback_query_id"):
            return 400, "Bad Request: query is too old and response timeout expired"
        if len(str(params.get("text") or "")) > 200:
            return 400, "Bad Request: MESSAGE_TOO_LONG"
        return 200, True

    def _m_sendDocument(self, params: dict[str, Any], files: Any) -> tuple[int, Any]:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            return 400, "Bad Request: chat not found"
        document = params.get("document")
        if isinstance(document, str) and document.startswith("attach://"):
            document = files.get(document[len("attach://") :])
        elif "document" in files:
            document = files["document"]
        if not isinstance(document, tuple):
            return 400, "Bad Request: there is no document in the request"
        caption = params.get("caption")
        if caption is not None:
            problem = _check_text(
                str(caption), params.get("parse_mode"), 1024, "message caption is too long"
            )
            if problem:
                return 400, problem
        name, content = document
        with self._cond:
            message = Message(
                chat_id,
                self._next_message_id(chat_id),
                "",
                params.get("reply_markup"),
                int(time.time()),
                document={
                    "file_id": f"DOC{len(self.messages)}",
                    "file_unique_id": f"U{len(self.messages)}",
                    "file_name": name,
                    "mime_type": "text/x-diff",
                    "file_size": len(content),
                    "content": content,
                },
                caption=caption,
            )
            self.messages[(chat_id, message.message_id)] = message
            return 200, self._message_json(message)

    # -- helpers ------------------------------------------------------------------------

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _push(self, update: dict[str, Any]) -> int:
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append((update_id, {"update_id": update_id, **update}))
            self._cond.notify_all()
        return update_id

    def _message_json(self, message: Message) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "from": _user(BOT_ID, "AutoFix", is_bot=True),
            "chat": (
                {"id": message.chat_id, "type": "private", "first_name": "Lev"}
                if message.chat_id > 0
                else {"id": message.chat_id, "type": "supergroup", "title": "Group"}
            ),
            "date": message.date,
        }
        if message.document is not None:
            data["document"] = {k: v for k, v in message.document.items() if k != "content"}
            if message.caption:
                data["caption"] = parse_html(message.caption)
        else:
            data["text"] = parse_html(message.text)
        if message.reply_markup:
            data["reply_markup"] = message.reply_markup
        return data


def _user(
    user_id: int, first_name: str, *, is_bot: bool = False, username: str | None = None
) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": is_bot, "first_name": first_name, "language_code": "en"}
    if username is not None:
        user["username"] = username
    return user


def _error(code: int, description: str) -> dict[str, Any]:
    return {"ok": False, "error_code": code, "description": description}


def _check_text(text: str, parse_mode: Any, limit: int, too_long: str) -> str | None:
    plain = text
    if parse_mode == "HTML":
        try:
            plain = parse_html(text)
        except ParseError as exc:
            return f"Bad Request: can't parse entities: {exc}"
    if not plain.strip():
        return "Bad Request: message text is empty"
    if telegram_length(plain) > limit:
        return f"Bad Request: {too_long}"
    return None


def _check_markup(markup: Any) -> str | None:
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        return "Bad Request: can't parse reply keyboard markup JSON object"
    for row in rows:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                return "Bad Request: BUTTON_DATA_INVALID"
    return None


def _same_markup(a: Any, b: Any) -> bool:
    empty = ({"inline_keyboard": []}, None)
    if a in empty and b in empty:
        return True
    return bool(a == b)


def _decode(
    content_type: str, raw: bytes, query: dict[str, list[str]]
) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Parameters as the Bot API accepts them: query string, form, JSON or multipart."""
    fields: dict[str, str] = {k: v[-1] for k, v in query.items()}
    files: dict[str, tuple[str, bytes]] = {}
    if content_type.startswith("application/json") and raw:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("the JSON body must be an object")
        return body, files
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields.update({k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()})
    elif content_type.startswith("multipart/form-data"):
        parser = email.parser.BytesParser(policy=email.policy.HTTP)
        message = parser.parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                files[str(name)] = (filename, payload)
            else:
                fields[str(name)] = payload.decode()
    return {k: _coerce(k, v) for k, v in fields.items()}, files


def _coerce(name: str, value: str) -> Any:
    if name in _JSON_FIELDS:
        return json.loads(value)
    if name in _INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value
    if value in ("true", "false"):
        return value == "true"
    return value


def unescape(text: str) -> str:
    """Plain text of an HTML-mode message, for assertions on what a person reads."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))
