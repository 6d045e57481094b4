"""The demo's moving parts: the Node.js service (restarted like PM2 would), a traffic
generator that makes some requests fail, and the real agent tailing the service's logs.

Every process runs in its own process group so that stopping the demo stops everything
it started, grandchildren included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from console.demo.workspace import Workspace

# (weight, method, path, body): healthy traffic plus the service's real bugs.
TRAFFIC: tuple[tuple[float, str, str, str | None], ...] = (
    (4.0, "GET", "/api/health", None),
    (2.0, "GET", "/api/users/1", None),
    (2.0, "GET", "/api/users/{id}", None),  # unknown ids: TypeError
    (1.0, "GET", "/api/inventory", None),  # connection refused: critical
    (1.0, "POST", "/api/products/list", "{{ids: [{id}]"),  # invalid JSON
    (1.0, "GET", "/api/payments", None),  # missing secret
    (0.05, "GET", "/api/reports?kind=weekly", None),  # unhandled rejection: the process dies
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoProcesses:
    """Starts and stops everything the demo runs besides the console itself."""

    ws: Workspace
    node: str
    rate_per_second: float = 3.0
    port: int = field(default_factory=free_port)
    restarts: int = 0
    requests: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _stopping: bool = False

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._supervise_service(), name="demo-service"))
        await self._start_agent()
        self._tasks.append(asyncio.create_task(self._traffic(), name="demo-traffic"))

    async def _spawn(self, name: str, argv: list[str], out: Path, err: Path) -> None:
        with out.open("ab") as stdout, err.open("ab") as stderr:
            self._procs[name] = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )

    async def _start_agent(self) -> None:
        log = self.ws.root / "agent.log"
        argv = [sys.executable, "-m", "agent.cli", "run", "--config", str(self.ws.agent_config)]
        await self._spawn("agent", argv, log, log)

    async def _supervise_service(self) -> None:
        """Run the service and restart it when it crashes, as a process manager would."""
        app = self.ws.repo / "app.js"
        argv = [self.node, str(app), "--port", str(self.port), "--log-dir", str(self.ws.logs)]
        while not self._stopping:
            # Node's own crash reports go to stderr, which a process manager appends to
            # the error log: that is where the agent finds them.
            await self._spawn(
                "service", argv, self.ws.logs / "pa-out.txt", self.ws.logs / "pa-error.log"
            )
            await self._procs["service"].wait()
            if self._stopping:
                return
            self.restarts += 1
            await asyncio.sleep(1.0)

    async def _traffic(self) -> None:
        rng = random.Random()
        weights = [w for w, *_ in TRAFFIC]
        base = f"http://127.0.0.1:{self.port}"
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as client:
            while not self._stopping:
                await asyncio.sleep(rng.expovariate(self.rate_per_second))
                _, method, path, body = rng.choices(TRAFFIC, weights)[0]
                ident = str(rng.randint(100, 99999))
                url = path.replace("{id}", ident)
                content = body.replace("{id}", ident).replace("{{", "{") if body else None
                with contextlib.suppress(httpx.HTTPError):
                    await client.request(method, url, content=content)
                    self.requests += 1

    async def stop(self) -> None:
        """Stop the traffic, the service and the agent; nothing the demo started survives."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
