"""Outage-class faults are critical at once; everything else is ranked by how often it fires."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from agent.classify import _critical_regex, classify, meets
from agent.config import (
    DEFAULT_CRITICAL_PATTERNS,
    SEED_CRITICAL_PATTERNS,
    DetectionConfig,
    parse_config,
)
from agent.wire import SEVERITIES, WireError

DEFAULT = DetectionConfig()

STACK = (
    "    at Connection.handle (/srv/pa/current/src/db.js:41:13)\n"
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"
)

CRITICAL_TEXTS = [
    # MongoDB driver and Mongoose.
    "MongoNetworkError: connection 2 to 10.0.3.7:27017 closed",
    "MongoServerSelectionError: connect ECONNREFUSED 127.0.0.1:27017",
    "MongooseServerSelectionError: Could not connect to any servers in your MongoDB Atlas cluster",
    "MongoServerError: E11000 duplicate key error collection: shop.users index: email_1",
    "MongoTimeoutError: Server selection timed out after 30000 ms",
    "Error: mongo operation timed out after 10000ms",
    # Connection refused by any backend.
    "Error: connect ECONNREFUSED 127.0.0.1:6379",
    "FetchError: request to http://inventory:8080/items failed, reason: connect ECONNREFUSED",
    # Authentication tokens.
    "JsonWebTokenError: invalid signature",
    "JsonWebTokenError: jwt malformed",
    "TokenExpiredError: jwt expired",
    "Error: jwt expired",
    # Database down.
    "Error: database is down",
    "Error: Database unavailable, retry later",
    "Error: DB connection lost while running query",
    # Memory exhaustion, as node prints it when the heap limit is reached.
    "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    "RangeError: Array buffer allocation failed (ENOMEM)",
]


def test_the_seed_designs_four_patterns_are_defaults_exactly() -> None:
    assert SEED_CRITICAL_PATTERNS == (
        r"mongo.*(?:error|fail|refused|timeout)",
        r"ECONNREFUSED",
        r"jwt.*(?:secret|undefined|invalid)",
        r"database.*(?:down|unavailable|timeout)",
    )
    assert DEFAULT_CRITICAL_PATTERNS[: len(SEED_CRITICAL_PATTERNS)] == SEED_CRITICAL_PATTERNS


@pytest.mark.parametrize(
    "text",
    [
        "MongoServerError: connection pool closed",
        "Error: jwt secret undefined - authentication broken",
        "Error: mongodb write failed",
        "Error: JWT token invalid",
        "Error: database timeout after 5000ms",
    ],
)
def test_the_seed_designs_examples_are_critical_at_count_one(text: str) -> None:
    assert classify(text, 1, DEFAULT) == "critical"
    assert classify(text.swapcase(), 1, DEFAULT) == "critical"


@pytest.mark.parametrize(
    ("count", "expected"), [(1, "low"), (2, "low"), (3, "medium"), (9, "medium"), (10, "high")]
)
def test_the_seed_designs_null_reference_is_ranked_by_its_count(count: int, expected: str) -> None:
    text = "TypeError: Cannot read property tenantId of undefined\n" + STACK
    assert classify(text, count, DEFAULT) == expected


@pytest.mark.parametrize("text", CRITICAL_TEXTS)
def test_default_critical_patterns_are_critical_at_count_one(text: str) -> None:
    assert classify(f"{text}\n{STACK}", 1, DEFAULT) == "critical"


@pytest.mark.parametrize("text", CRITICAL_TEXTS)
def test_critical_matching_ignores_case(text: str) -> None:
    assert classify(text.lower(), 1, DEFAULT) == "critical"
    assert classify(text.upper(), 1, DEFAULT) == "critical"


def test_critical_pattern_matches_in_the_stack_not_only_the_message() -> None:
    text = "Error: query failed\n    at MongoNetworkError.wrap (/srv/pa/src/db.js:3:1)"
    assert classify(text, 1, DEFAULT) == "critical"


@pytest.mark.parametrize(
    "text",
    [
        "TypeError: Cannot read properties of undefined (reading 'id')",
        "SyntaxError: Unexpected token 'x', \"xyz\" is not valid JSON",
        "Error: STRIPE_SECRET_KEY is not set",
        "Error: token count exceeded",
        "Error: ECONNRESET socket hang up",
        "Error: heap snapshot written",
    ],
)
def test_ordinary_errors_are_ranked_by_count(text: str) -> None:
    assert classify(text, 1, DEFAULT) == "low"


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "low"),
        (1, "low"),
        (2, "low"),
        (3, "medium"),
        (9, "medium"),
        (10, "high"),
        (10_000, "high"),
    ],
)
def test_count_thresholds_at_default_boundaries(count: int, expected: str) -> None:
    assert classify("TypeError: x is not a function", count, DEFAULT) == expected


@pytest.mark.parametrize(
    ("count", "expected"), [(4, "low"), (5, "medium"), (49, "medium"), (50, "high")]
)
def test_count_thresholds_follow_config(count: int, expected: str) -> None:
    config = DetectionConfig(medium_count=5, high_count=50)
    assert classify("TypeError: x is not a function", count, config) == expected


def test_equal_thresholds_skip_medium() -> None:
    config = DetectionConfig(medium_count=2, high_count=2)
    assert classify("Error: x", 1, config) == "low"
    assert classify("Error: x", 2, config) == "high"


def test_extra_critical_patterns_from_config_file() -> None:
    config = parse_config(
        {"detection": {"extra_critical_patterns": [r"payment (provider|gateway) down"]}}
    ).detection
    assert classify("Error: Payment Gateway down (503)", 1, config) == "critical"
    assert classify("Error: connect ECONNREFUSED 10.0.0.1:5432", 1, config) == "critical"
    assert classify("Error: payment declined", 1, config) == "low"


def test_replacing_critical_patterns_drops_the_defaults() -> None:
    config = parse_config({"detection": {"critical_patterns": ["ledger mismatch"]}}).detection
    assert classify("Error: LEDGER MISMATCH on account 7", 1, config) == "critical"
    assert classify("Error: connect ECONNREFUSED 10.0.0.1:5432", 1, config) == "low"


def test_no_critical_patterns_ranks_everything_by_count() -> None:
    config = DetectionConfig(critical_patterns=())
    assert classify("FATAL ERROR: JavaScript heap out of memory", 1, config) == "low"
    assert classify("FATAL ERROR: JavaScript heap out of memory", 10, config) == "high"


def test_patterns_compiled_once_per_config() -> None:
    patterns = (r"unique-pattern-for-cache-test-\d+",)
    config = DetectionConfig(critical_patterns=patterns)
    classify("x", 1, config)
    before = _critical_regex.cache_info()
    for _ in range(100):
        classify("unique-pattern-for-cache-test-7", 1, config)
    after = _critical_regex.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 100


def test_default_patterns_are_valid_and_nonempty() -> None:
    assert DEFAULT_CRITICAL_PATTERNS
    assert _critical_regex(DEFAULT_CRITICAL_PATTERNS) is not None


def test_empty_text_is_ranked_by_count() -> None:
    assert classify("", 3, DEFAULT) == "medium"


def _node_stderr(tmp_path: Path, source: str, *flags: str) -> str:
    node = require_tool("node")
    script = tmp_path / "fault.js"
    script.write_text(source)
    proc = subprocess.run(
        [node, *flags, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    return proc.stderr


def test_real_node_heap_exhaustion_is_critical(tmp_path: Path) -> None:
    stderr = _node_stderr(
        tmp_path,
        "const hoard = [];\nfor (;;) hoard.push(new Array(1e4).fill(1));\n",
        "--max-old-space-size=8",
    )
    assert "heap out of memory" in stderr, stderr[-2000:]
    fatal = next(line for line in stderr.splitlines() if line.startswith("FATAL ERROR"))
    assert classify(fatal, 1, DEFAULT) == "critical"


def test_real_node_connection_refused_is_critical(tmp_path: Path) -> None:
    source = """
const net = require('net');
const server = net.createServer().listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  server.close(() => net.connect(port, '127.0.0.1').on('error', (e) => console.error(e)));
});
"""
    stderr = _node_stderr(tmp_path, source)
    assert "ECONNREFUSED" in stderr, stderr
    assert classify(stderr, 1, DEFAULT) == "critical"


def test_real_node_type_error_is_not_critical(tmp_path: Path) -> None:
    stderr = _node_stderr(tmp_path, "try { null.id } catch (e) { console.error(e) }\n")
    assert "TypeError" in stderr, stderr
    assert classify(stderr, 1, DEFAULT) == "low"
    assert classify(stderr, DEFAULT.high_count, DEFAULT) == "high"


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("minimum", SEVERITIES)
def test_meets_follows_severity_order(severity: str, minimum: str) -> None:
    assert meets(severity, minimum) == (SEVERITIES.index(severity) >= SEVERITIES.index(minimum))


def test_meets_rejects_unknown_severity_by_name() -> None:
    with pytest.raises(WireError, match="'urgent'"):
        meets("urgent", "low")
    with pytest.raises(WireError, match="'severe'"):
        meets("high", "severe")
