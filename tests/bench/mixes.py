"""The logs the scan benchmark times, each written to a file of a given size.

- ``bench``: :func:`gen_log.generate`, the mixed log the benchmark has always used.
- ``realistic``: a service's day: plain INFO access lines, pino JSON with a nested ``req``
  and ``res``, WARN lines, about one line in ten mentioning "error" innocently
  (``"errors":0``, "error rate 0.1%", "no error", ``level=info`` logfmt), and 1% real
  error records with stacks in the shapes libraries write them.
- ``corpus``: the logs real libraries wrote (``tests/corpus/logs``), one after another,
  repeated until the size is reached.
- ``adversarial``: like ``realistic``, but 30% of the lines mention "error" innocently.

Every generator is deterministic for a seed, so runs compare like with like, and says how
many error records it wrote, so the benchmark can check that scan still finds them all.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from gen_log import generate, write_batches

CORPUS_LOGS = Path(__file__).resolve().parent.parent / "corpus" / "logs"

_ROUTES = (
    "/api/users/42",
    "/api/inventory",
    "/api/products/list?page=2",
    "/api/payments",
    "/api/orders/ORD-1188/total",
    "/healthz",
)
_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_FAULTS = (
    ("TypeError", "Cannot read properties of undefined (reading 'lines')"),
    ("Error", "connect ECONNREFUSED 10.0.3.7:5432"),
    ("SyntaxError", "Unexpected token 'o', \"not json\" is not valid JSON"),
    ("RangeError", "cannot reserve 3 of sku SKU6"),
    ("PaymentError", "card declined for order ORD-77"),
)
_FRAMES = (
    "    at Object.orderTotal (/srv/app/lib/shop.js:14:16)",
    "    at Object.run (/srv/app/lib/traffic.js:17:21)",
    "    at fail (/srv/app/lib/traffic.js:119:22)",
    "    at /srv/app/server.js:23:14",
    "    at Layer.handleRequest (/srv/app/node_modules/router/lib/layer.js:169:33)",
    "    at next (/srv/app/node_modules/router/lib/route.js:163:13)",
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
)
_HOST = {"pid": 5705, "hostname": "web-1"}


def _stamp(i: int) -> str:
    seconds = i // 40
    clock = f"{(seconds // 3600) % 24:02d}:{(seconds // 60) % 60:02d}:{seconds % 60:02d}"
    return f"2026-11-26T{clock}.{i % 1000:03d}Z"


def _epoch_ms(i: int) -> int:
    return 1795659201103 + i * 25


def _json(record: dict[str, object]) -> str:
    return json.dumps(record, separators=(",", ":"))


def _access(rng: random.Random, i: int) -> str:
    route = rng.choice(_ROUTES)
    status = rng.choice((200, 200, 200, 201, 204, 304, 404))
    return f"{_stamp(i)} INFO {rng.choice(_METHODS)} {route} {status} {rng.random() * 40:.1f}ms"


def _pino_request(rng: random.Random, i: int) -> str:
    method = rng.choice(_METHODS)
    return _json(
        {
            "level": 30,
            "time": _epoch_ms(i),
            **_HOST,
            "req": {
                "id": i,
                "method": method,
                "url": rng.choice(_ROUTES),
                "headers": {"host": "shop.example.com", "user-agent": "Mozilla/5.0"},
                "remoteAddress": "10.0.0.12",
            },
            "res": {"statusCode": rng.choice((200, 200, 201, 304))},
            "responseTime": rng.randint(1, 90),
            "msg": "request completed",
        }
    )


def _warn(rng: random.Random, i: int) -> str:
    kind = rng.random()
    if kind < 0.5:
        return f"{_stamp(i)} WARN slow query {rng.randint(500, 3000)}ms on orders"
    if kind < 0.8:
        return _json({"level": 40, "time": _epoch_ms(i), **_HOST, "msg": "cache miss, refilling"})
    return f'time={_stamp(i)} level=warn msg="pool near limit" used={rng.randint(80, 99)}'


def _innocent(rng: random.Random, i: int) -> str:
    """A line a quiet level wrote that mentions "error" (or "exception") anyway."""
    kind = rng.randrange(8)
    if kind == 0:
        return _json(
            {
                "level": 30,
                "time": _epoch_ms(i),
                **_HOST,
                "msg": "sync done",
                "errors": 0,
                "retried": rng.randint(0, 3),
            }
        )
    if kind == 1:
        return f"{_stamp(i)} INFO error rate {rng.random():.1f}% over the last 5m"
    if kind == 2:
        return f"{_stamp(i)} INFO health check passed, no error"
    if kind == 3:
        return f'time={_stamp(i)} level=info msg="retry ok" error=none attempt={rng.randint(1, 3)}'
    if kind == 4:
        return _json(
            {
                "level": 30,
                "time": _epoch_ms(i),
                **_HOST,
                "req": {"method": "GET", "url": "/api/errors/summary"},
                "msg": "request completed",
            }
        )
    if kind == 5:
        return f"{_stamp(i)} WARN retrying after error on attempt {rng.randint(1, 3)}"
    if kind == 6:
        return _json(
            {"level": 40, "time": _epoch_ms(i), **_HOST, "msg": "exception handler registered"}
        )
    return f"{_stamp(i)} INFO error budget ok: {rng.randint(1, 90)} requests, 0 errors"


def _fault(rng: random.Random, i: int) -> list[str]:
    """One real error record with its stack, in one of the shapes libraries write."""
    error_type, message = rng.choice(_FAULTS)
    frames = list(_FRAMES[: rng.randint(3, len(_FRAMES))])
    method, route = rng.choice(_METHODS), rng.choice(_ROUTES).split("?")[0]
    kind = rng.randrange(4)
    if kind == 0:  # console.error(err), Express's default handler
        return [f"{error_type}: {message}", *frames]
    if kind == 1:  # a level line with the route, the stack under it
        return [f"{_stamp(i)} ERROR {method} {route} {error_type}: {message}", *frames]
    stack = "\n".join([f"{error_type}: {message}", *frames])
    if kind == 2:  # pino
        return [
            _json(
                {
                    "level": 50,
                    "time": _epoch_ms(i),
                    **_HOST,
                    "err": {"type": error_type, "message": message, "stack": stack},
                    "req": {"method": method, "url": route},
                    "msg": "request failed",
                }
            )
        ]
    return [  # winston json
        _json(
            {
                "level": "error",
                "message": message,
                "stack": stack,
                "method": method,
                "url": route,
                "timestamp": _stamp(i),
            }
        )
    ]


def _quiet(rng: random.Random, i: int) -> str:
    kind = rng.random()
    if kind < 0.45:
        return _access(rng, i)
    if kind < 0.9:
        return _pino_request(rng, i)
    return _warn(rng, i)


def _service_mix(path: Path, size_mb: float, seed: int, innocent_ratio: float) -> int:
    faults = 0

    def lines(rng: random.Random, i: int) -> list[str]:
        nonlocal faults
        roll = rng.random()
        if roll < 0.01:
            faults += 1
            return _fault(rng, i)
        if roll < 0.01 + innocent_ratio:
            return [_innocent(rng, i)]
        return [_quiet(rng, i)]

    write_batches(path, size_mb, lines, seed)
    return faults


def realistic(path: Path, size_mb: float, seed: int = 0) -> int | None:
    return _service_mix(path, size_mb, seed, 0.1)


def adversarial(path: Path, size_mb: float, seed: int = 0) -> int | None:
    return _service_mix(path, size_mb, seed, 0.3)


def corpus(path: Path, size_mb: float, seed: int = 0) -> int | None:
    """The real libraries' logs in name order, again and again; ``seed`` is not used.

    No count is promised: where one log ends and the next begins, the formats meet in ways
    no service writes.
    """
    logs = sorted(CORPUS_LOGS.glob("*.log"))
    if not logs:
        raise SystemExit(f"no corpus logs in {CORPUS_LOGS}")
    block = b"".join(log.read_bytes().rstrip(b"\n") + b"\n" for log in logs)
    limit = int(size_mb * 1024 * 1024)
    with open(path, "wb") as out:
        written = 0
        while written < limit:
            out.write(block)
            written += len(block)
    return None


def bench(path: Path, size_mb: float, seed: int = 0) -> int | None:
    return generate(path, size_mb, seed=seed)


# Each writes its log and returns how many error records it holds (None: not known).
MIXES: dict[str, Callable[[Path, float, int], int | None]] = {
    "bench": bench,
    "realistic": realistic,
    "corpus": corpus,
    "adversarial": adversarial,
}
