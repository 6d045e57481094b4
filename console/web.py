"""``autofix web``: the console in a browser, served by textual-serve behind a token.

textual-serve is an aiohttp application: ``/`` is the page (a template that loads
xterm.js), ``/ws`` the websocket for which it starts one console process per browser
session and relays its terminal, ``/static`` the page's files and ``/download`` what the
app hands the browser. A :class:`TokenGate` middleware stands in front of every one of
them: a request passes only with the random token printed at start, given as
``?token=`` (the printed URL) or as the cookie the page's answer sets, so the page's own
requests (its scripts, the websocket) carry it without it in their URLs. Tokens are
compared in constant time. The websocket must also come from the page's own origin, so
another site open in the same browser cannot drive the console.

The console run for each session is ``autofix --config FILE`` of this installation; the
console's state-directory lock lets one session (or one terminal console) run at a time,
and a session opened meanwhile shows who holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import secrets
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

from console.statelock import StateBusy, hold

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
COOKIE = "autofix_web_token"
REFUSED = (
    "403 Forbidden: open the console with the URL `autofix web` printed when it started "
    "(it holds the access token)\n"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the console on this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warning(host: str) -> str | None:
    """What to tell a person who binds the console beyond this machine, or None."""
    if is_loopback(host):
        return None
    return (
        f"autofix web: warning: listening on {host}, beyond this machine: anyone who can "
        "reach this port and learns the token can act as you in the console (approve and "
        "push fixes). The connection is plain HTTP; put it behind TLS (an SSH tunnel or a "
        "reverse proxy) before using it over a network."
    )


class TokenGate:
    """The aiohttp middleware that refuses every request without the token."""

    def __init__(self, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the web token must be at least 16 characters")
        self.token = token
        self._expected = token.encode()

    def _matches(self, given: str | None) -> bool:
        # compare_digest takes as long for any wrong token of a length, so timing tells
        # nothing about how much of a guess was right.
        return given is not None and hmac.compare_digest(given.encode(), self._expected)

    def allows(self, request: web.Request) -> bool:
        return self._matches(request.query.get("token")) or self._matches(
            request.cookies.get(COOKIE)
        )

    @staticmethod
    def same_origin(request: web.Request) -> bool:
        """A websocket opened by the page itself: its Origin names this server. (Browsers
        always send Origin on a websocket; a client without one is not a page.)"""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == request.host

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.allows(request) or (request.path == "/ws" and not self.same_origin(request)):
            log.warning("refused %s %s from %s", request.method, request.path, request.remote)
            return web.Response(status=403, text=REFUSED, headers=_HEADERS)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(_HEADERS)
            if self._matches(request.query.get("token")):
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response


# The page's URL holds the token: never send it on as a referrer, never keep it in a cache.
_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class WebConsole(Server):
    """textual-serve's server with the gate in front of every route.

    The page's script and websocket URLs are built from the address the browser used
    (textual-serve builds them from the bound address, which is no address at all for
    ``0.0.0.0``), and the start-up banner is left out: :func:`serve_web` prints the URL.
    """

    def __init__(
        self, command: str, host: str, port: int, token: str, state_dir: Path | None = None
    ) -> None:
        super().__init__(command, host=host, port=port, title="LevAutoFix")
        self.gate = TokenGate(token)
        self.state_dir = state_dir

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.insert(0, self.gate.middleware)
        return app

    async def on_startup(self, app: web.Application) -> None:
        return None

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """A session is a console, and one console runs per state directory: while one
        runs, a new session's page says who has it instead of staying blank."""
        if self.state_dir is not None:
            try:
                hold(self.state_dir, "autofix web").release()  # asks only; the console takes it
            except StateBusy as exc:
                websocket = web.WebSocketResponse(heartbeat=15)
                await websocket.prepare(request)
                await websocket.send_bytes(f"\r\n  autofix: {exc}\r\n".encode())
                async for _ in websocket:  # keep the words on the page until it goes
                    pass
                return websocket
        return await super().handle_websocket(request)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        router = request.app.router
        secure = request.scheme == "https"
        websocket = f"{'wss' if secure else 'ws'}://{request.host}{router['websocket'].url_for()}"
        static = f"{request.scheme}://{request.host}{router['static'].url_for(filename='/')}"
        try:
            font_size = int(request.query.get("fontsize", "16"))
        except ValueError:
            font_size = 16
        return {
            "font_size": font_size,
            "app_websocket_url": websocket,
            "config": {"static": {"url": static.rstrip("/") + "/"}},
            "application": {"name": self.title},
        }


def console_command(config_path: Path) -> str:
    """The shell command textual-serve runs per session: this installation's console."""
    return shlex.join([sys.executable, "-m", "console.cli", "--config", str(config_path)])


async def serve_web(
    config_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    state_dir: Path | None = None,
    token: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Serve the console until SIGINT or SIGTERM (or ``stop``); print the URL with its token.

    ``port`` 0 takes a free port; the printed URL names the one bound. ``state_dir`` is the
    config's, whose lock tells a new session that a console already runs.
    """
    out, err = out or sys.stdout, err or sys.stderr
    token = token or secrets.token_urlsafe(32)
    server = WebConsole(console_command(config_path), host, port, token, state_dir)
    runner = web.AppRunner(await server._make_app(), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            print(f"autofix web: cannot listen on {host}:{port}: {exc.strerror}", file=err)
            return 1
        bound = runner.addresses[0][1]
        warning = bind_warning(host)
        if warning:
            print(warning, file=err, flush=True)
        shown = f"[{host}]" if ":" in host else host
        print(f"autofix web: the console is at http://{shown}:{bound}/?token={token}",
              file=out, flush=True)  # fmt: skip
        print("autofix web: Ctrl+C stops it", file=out, flush=True)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
