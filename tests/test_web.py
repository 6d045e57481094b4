"""``autofix web`` in a real headless Chromium: the page loads, the console's errors table
arrives through textual-serve's websocket and is drawn, and nothing is served without the
token printed at start (the page, its scripts, the websocket: 403).

The browser is driven over the DevTools protocol on loopback (tests/chromium.py). xterm.js
draws the terminal on a canvas, so what the page shows is read where it enters the page:
a script added before the page's own wraps ``WebSocket`` and keeps the terminal bytes the
console sent, which are then read as text without their escape sequences.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.web import TokenGate, bind_warning, is_loopback
from tests.chromium import headless_chromium
from tests.conftest import require_tool
from tests.snapshot_store import fill_store

CONFIG = """state_dir = "{state}"

[[hosts]]
name = "prod-1"
target = "127.0.0.1"
port = 1
user = "deploy"

[[services]]
name = "PA"
repo = "{repo}"
github_repo = "acme/pa"
"""
# Kept by the page, before textual.js opens its websocket: every byte the console sends.
RECORD_TERMINAL = """
(() => {
  const Native = window.WebSocket;
  const decoder = new TextDecoder();
  window.__terminal = "";
  function Recorded(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("message", (event) => {
      window.__terminal += typeof event.data === "string"
        ? "" : decoder.decode(event.data, { stream: true });
    });
    return ws;
  }
  Recorded.prototype = Native.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Recorded[name] = Native[name];
  window.WebSocket = Recorded;
})();
"""
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


@pytest.fixture
def chromium() -> str:
    return require_tool("chromium")


@pytest.fixture
def web_console(tmp_path: Path):
    """`autofix web --port 0` on a store with the snapshot stores' errors; yields the URL
    it printed (token included) and stops it (and its console sessions) afterwards."""
    state = tmp_path / "state"
    config = tmp_path / "console.toml"
    config.write_text(CONFIG.format(state=state, repo=tmp_path / "repo"))
    asyncio.run(fill_store(state / "console.db"))
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "web", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{43}", line)
        assert found, f"no URL printed: {line!r} {process.stderr.read() if process.stderr else ''}"
        yield found.group(0)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def test_the_console_in_chromium_shows_the_errors_table(chromium, web_console) -> None:
    async with headless_chromium(chromium) as browser:
        page = await browser.new_page()
        await browser.send("Page.addScriptToEvaluateOnNewDocument", page, source=RECORD_TERMINAL)
        await browser.send("Page.navigate", page, url=web_console)
        screen = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            screen = ESCAPES.sub("", await browser.evaluate(page, "window.__terminal") or "")
            if all(word in screen for word in ("Errors", "RangeError", "awaiting approval")):
                break
            await asyncio.sleep(0.5)
        for shown in ("Errors", "Service", "TypeError", "RangeError", "awaiting approval",
                      "prod-1", "Queue"):  # fmt: skip
            assert shown in screen, f"{shown!r} not on the page:\n{screen[-3000:]}"
        drawn = await browser.evaluate(
            page, "document.body.classList.contains('-first-byte') && "
            "!!document.querySelector('.textual-terminal canvas')",
        )  # fmt: skip
        assert drawn, "the terminal was not drawn on the page"

        # A second session while the first runs: the page says who holds the console.
        second = await browser.new_page()
        await browser.send("Page.addScriptToEvaluateOnNewDocument", second, source=RECORD_TERMINAL)
        await browser.send("Page.navigate", second, url=web_console)
        said = ""
        deadline = time.monotonic() + 30
        while "is in use by" not in said and time.monotonic() < deadline:
            said = ESCAPES.sub("", await browser.evaluate(second, "window.__terminal") or "")
            await asyncio.sleep(0.3)
        assert "is in use by process" in said and "quit that one first" in said, said


async def test_chromium_is_refused_the_console_without_the_token(chromium, web_console) -> None:
    base = web_console.split("?", 1)[0]
    async with headless_chromium(chromium) as browser:
        page = await browser.new_page()
        await browser.send("Page.navigate", page, url=base)
        status = None
        deadline = time.monotonic() + 30
        while status is None and time.monotonic() < deadline:
            for event in browser.events:
                params = event.get("params", {})
                if (event.get("method") == "Network.responseReceived"
                        and params.get("type") == "Document"):  # fmt: skip
                    status = params["response"]["status"]
            await asyncio.sleep(0.2)
        assert status == 403
        text = await browser.evaluate(page, "document.body.innerText")
        assert "autofix web" in text and "token" in text


async def test_every_route_refuses_a_request_without_the_right_token(web_console) -> None:
    base, token = web_console.split("?token=")
    wrong = ("A" if token[0] != "A" else "B") + token[1:]
    # unsafe: the jar keeps cookies from an IP address (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for path in ("", "static/js/textual.js", "download/x", "ws"):
            for query in ("", f"?token={wrong}"):
                async with http.get(f"{base}{path}{query}") as answer:
                    assert answer.status == 403, (path, query)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{base}ws")
        assert refused.value.status == 403
        # The token's cookie lets the page's own requests through, but a websocket from
        # another origin is refused even with it.
        async with http.get(web_console) as answer:
            assert answer.status == 200
        async with http.get(f"{base}static/js/textual.js") as answer:
            assert answer.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await http.ws_connect(f"{base}ws", origin="http://evil.example")
        assert foreign.value.status == 403


@given(st.ip_addresses())
def test_only_a_loopback_bind_goes_without_a_warning(address) -> None:
    host = str(address)
    assert (bind_warning(host) is None) == address.is_loopback
    assert is_loopback(host) == address.is_loopback


def test_names_that_are_not_addresses_are_warned_about_except_localhost() -> None:
    assert bind_warning("localhost") is None
    assert bind_warning("0.0.0.0") is not None and "0.0.0.0" in bind_warning("0.0.0.0")
    assert bind_warning("example.org") is not None


@given(st.text(max_size=64))
def test_the_gate_takes_the_token_and_nothing_else(guess) -> None:
    gate = TokenGate("x" * 20 + "token-of-the-run")
    assert gate._matches(guess) == (guess == gate.token)
    assert not gate._matches(None)


def test_a_bad_config_is_named_before_anything_listens(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", repo=tmp_path) + "\nbogus = 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "web", "--config", str(config), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "bogus" in done.stderr and "the console is at" not in done.stdout
