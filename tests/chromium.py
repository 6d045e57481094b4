"""A real headless Chromium driven over the DevTools protocol on a loopback websocket.

Chromium is started with ``--remote-debugging-port=0`` and says on stderr where its
DevTools websocket listens; :class:`Browser` speaks the protocol there (JSON commands with
ids, events without) through aiohttp's websocket client. A page is one target attached in
flat mode, so its commands carry a session id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        command: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        await self._ws.send_str(json.dumps(command))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def new_page(self) -> str:
        """A blank page; returns its session id (for :meth:`send`)."""
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        session = str(attached["sessionId"])
        await self.send("Page.enable", session)
        await self.send("Network.enable", session)
        await self.send("Runtime.enable", session)
        return session

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", session, expression=expression, returnByValue=True
        )
        return result.get("result", {}).get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


@contextlib.asynccontextmanager
async def headless_chromium(binary: str) -> AsyncIterator[Browser]:
    """A headless Chromium of its own profile, stopped (and its profile removed) after."""
    profile = Path(tempfile.mkdtemp(prefix="autofix-chromium-"))
    process = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking",
         f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "--window-size=1280,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = await asyncio.wait_for(asyncio.to_thread(_devtools_url, process), 60)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, max_msg_size=0)
            browser = Browser(ws)
            try:
                yield browser
            finally:
                await browser.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        found = _LISTENING.search(line)
        if found:
            # Keep reading what it logs, so a full pipe never stalls the browser.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return found.group(1)
    raise RuntimeError("Chromium exited before its DevTools listened:\n" + "".join(seen))
