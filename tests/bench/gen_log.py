"""Synthetic production-like log for timing the scanner: mostly INFO, ~1% errors with stacks.

The shapes are copied from what the sample service prints through console.error, pino,
winston and bunyan, so the scanner's fast path sees the same mix of plain and JSON lines
it meets in production.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

_ROUTES = ("/api/users/42", "/api/inventory", "/api/products/list", "/api/payments", "/api/orders")
_METHODS = ("GET", "GET", "GET", "POST", "PUT")
_ERRORS = (
    ("TypeError", "Cannot read properties of undefined (reading 'id')"),
    ("Error", "connect ECONNREFUSED 127.0.0.1:5432"),
    ("SyntaxError", "Unexpected token 'o', \"not json\" is not valid JSON"),
    ("Error", "STRIPE_SECRET_KEY is not set"),
    ("RangeError", 'unknown report kind "monthly"'),
)
_FRAMES = (
    "    at getUserProfile (/srv/pa/lib/users.js:16:21)",
    "    at Object.run (/srv/pa/app.js:25:69)",
    "    at dispatch (/srv/pa/app.js:78:50)",
    "    at serveOne (/srv/pa/app.js:87:26)",
    "    at Layer.handle [as handle_request] (/srv/pa/node_modules/express/lib/layer.js:95:5)",
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
)


def _timestamp(i: int) -> str:
    seconds = i // 50
    clock = f"{(seconds // 3600) % 24:02d}:{(seconds // 60) % 60:02d}:{seconds % 60:02d}"
    return f"2026-11-26T{clock}.{i % 1000:03d}Z"


def _info_line(rng: random.Random, i: int) -> str:
    kind = rng.random()
    route = rng.choice(_ROUTES)
    if kind < 0.45:
        return f"{_timestamp(i)} INFO {rng.choice(_METHODS)} {route} 200 {rng.random() * 40:.1f}ms"
    if kind < 0.5:
        return f"{_timestamp(i)} INFO sync done errors=0 retried={rng.randint(0, 3)}"
    record = {
        "level": 30,
        "time": 1795659201103 + i,
        "pid": 5705,
        "hostname": "web-1",
        "name": "pa",
        "req": {"method": rng.choice(_METHODS), "url": route},
        "msg": f"request completed in {rng.randint(1, 90)}ms",
    }
    return json.dumps(record, separators=(",", ":"))


def _error_lines(rng: random.Random, i: int) -> list[str]:
    error_type, message = rng.choice(_ERRORS)
    frames = list(_FRAMES[: rng.randint(2, len(_FRAMES))])
    route = f"{rng.choice(_METHODS)} {rng.choice(_ROUTES)}"
    if rng.random() < 0.5:
        return [f"ERROR {route} {error_type}: {message}", *frames]
    stack = "\n".join([f"{error_type}: {message}", *frames])
    method, url = route.split(" ")
    record = {
        "level": 50,
        "time": 1795659201103 + i,
        "pid": 5705,
        "hostname": "web-1",
        "name": "pa",
        "err": {"type": error_type, "message": message, "stack": stack},
        "req": {"method": method, "url": url},
        "msg": "request failed",
    }
    return [json.dumps(record, separators=(",", ":"))]


def write_batches(
    path: str | Path, size_mb: float, lines: Callable[[random.Random, int], list[str]], seed: int
) -> None:
    """Write about ``size_mb`` MiB of ``lines(rng, i)`` for i = 1, 2, ... to ``path``.

    Whole batches are written, so the file ends after the batch that reaches the size.
    """
    rng = random.Random(seed)
    limit = int(size_mb * 1024 * 1024)
    written = 0
    i = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < limit:
            batch: list[str] = []
            for _ in range(1000):
                i += 1
                batch.extend(lines(rng, i))
            text = "\n".join(batch) + "\n"
            out.write(text)
            written += len(text.encode("utf-8"))


def generate(path: str | Path, size_mb: float, error_ratio: float = 0.01, seed: int = 0) -> int:
    """Write about ``size_mb`` MiB of log to ``path``; returns how many error records it holds.

    Deterministic for a given seed so timings from different runs compare like with like.
    """
    errors = 0

    def lines(rng: random.Random, i: int) -> list[str]:
        nonlocal errors
        if rng.random() < error_ratio:
            errors += 1
            return _error_lines(rng, i)
        return [_info_line(rng, i)]

    write_batches(path, size_mb, lines, seed)
    return errors


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "bench.log"
    size = float(sys.argv[2]) if len(sys.argv) > 2 else 200.0
    print(generate(target, size))
