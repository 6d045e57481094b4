"""What an OTLP request body becomes: the JSON mapping's details, the level rule, and
random bodies that must be answered 200 or 400 without ever stopping the intake.

Requests go to the intake of a real :class:`agent.daemon.Daemon` with its SQLite outbox in
a temporary directory, so what they store is what `run` would store.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import load_config
from agent.daemon import Daemon
from agent.otlp.http import Request
from agent.otlp.payload import PayloadError, decode_json
from agent.otlp.records import RecordReader
from agent.outbox import Outbox
from tests.conftest import require_module


def _daemon(root: Path) -> Daemon:
    config = root / "agent.toml"
    config.write_text(
        f'state_dir = "{root / "state"}"\nhost = "h"\n[detection]\nsettle_seconds = 0\n'
        'min_severity = "low"\n[[sources]]\notlp = "127.0.0.1:4318"\n'
    )
    return Daemon(load_config(config))


def _post(daemon: Daemon, body: bytes, **headers: str) -> tuple[int, bytes]:
    request = Request(
        "POST",
        "/v1/logs",
        "HTTP/1.1",
        {
            "content-type": "application/json",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        },
        body,
    )
    response = asyncio.run(daemon.intakes[0].handle(request))
    return response.status, response.body


def _groups(daemon: Daemon) -> dict[str, int]:
    return {g.message: g.count for g in daemon.outbox.groups()}


def _request(*records: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> bytes:
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": resource or []},
                    "scopeLogs": [{"logRecords": list(records)}],
                }
            ]
        }
    ).encode()


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    made = _daemon(tmp_path)
    yield made
    made.outbox.close()


def test_the_json_mapping_int64_strings_enum_names_hex_ids_and_old_scope_name_are_read() -> None:
    body = json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": "billing"}},
                            {"key": "host.name", "value": {"stringValue": "db-2"}},
                        ]
                    },
                    "instrumentationLibraryLogs": [
                        {
                            "logRecords": [
                                {
                                    "timeUnixNano": "1796032800123000000",
                                    "severityNumber": "SEVERITY_NUMBER_FATAL2",
                                    "traceId": "5b8efff798038103d269b633813fc60c",
                                    "body": {"bytesValue": base64.b64encode(b"boom").decode()},
                                    "attributes": [
                                        {"key": "n", "value": {"intValue": "9007199254740993"}},
                                        {"key": "ok", "value": {"boolValue": True}},
                                        {"key": "d", "value": {"doubleValue": "NaN"}},
                                    ],
                                },
                                {"observedTimeUnixNano": 1796032800000000000, "body": {}},
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()
    first, second = decode_json(body)
    assert (first.service, first.host) == ("billing", "db-2")
    assert (first.time_unix_nano, first.severity_number, first.body) == (
        1796032800123000000,
        22,
        "boom",
    )
    assert first.attributes == {"n": "9007199254740993", "ok": "true", "d": "NaN"}
    assert (second.time_unix_nano, second.severity_number, second.body) == (
        1796032800000000000,
        0,
        "",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "the body: must be an object, got list"),
        (b'{"resourceLogs": {}}', "resourceLogs: must be an array, got dict"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
            "resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano: must be a decimal integer",
        ),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"colour": 1}}]}]}]}',
            "resourceLogs[0].scopeLogs[0].logRecords[0].body: not an AnyValue (keys: colour)",
        ),
        (b"\xff\xfe{}", "the body is not UTF-8 text"),
        (b'{"a": ' + b"1" * 5000 + b"}", "the body is not usable JSON"),
    ],
)
def test_a_body_that_is_not_an_export_request_is_a_payload_error_saying_where(
    body: bytes, reason: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_json(body)
    assert str(caught.value).startswith(reason)


def test_levels_below_error_stay_quiet_and_an_error_level_without_an_error_class_is_one(
    daemon: Daemon,
) -> None:
    stack = "TypeError: x is undefined\n    at f (/srv/a.js:1:2)"
    records = [
        *({"severityNumber": n, "body": {"stringValue": stack}} for n in range(1, 17)),
        {"severityText": "warning", "body": {"stringValue": stack}},
        {"severityText": "INFO", "body": {"stringValue": "ERROR but only the text says so"}},
        {"severityNumber": 17, "body": {"stringValue": "queue stalled for 30s"}},
        {"severityText": "FATAL", "body": {"stringValue": "out of disk"}},
        {"body": {"stringValue": "a line of prose with no level"}},
    ]
    assert _post(daemon, _request(*records)) == (200, b"{}")
    assert _groups(daemon) == {"queue stalled for 30s": 1, "out of disk": 1}
    assert {g.service for g in daemon.outbox.groups()} == {"unknown_service"}


def test_exception_attributes_name_the_error_and_its_stack_is_parsed_like_a_log_file() -> None:
    reader = RecordReader(65536)
    entry = decode_json(
        _request(
            {
                "severityNumber": 17,
                "body": {"stringValue": "request failed"},
                "attributes": [
                    {"key": "exception.type", "value": {"stringValue": "PaymentError"}},
                    {"key": "exception.message", "value": {"stringValue": "card declined"}},
                    {
                        "key": "exception.stacktrace",
                        "value": {
                            "stringValue": "PaymentError: card declined\n"
                            "    at charge (/srv/app/pay.js:10:3)\n"
                            "    at process.processTicksAndRejections (node:internal/x:95:5)\n"
                        },
                    },
                    {"key": "http.method", "value": {"stringValue": "POST"}},
                    {"key": "http.target", "value": {"stringValue": "/orders/7/charge"}},
                ],
            }
        )
    )[0]
    (record,) = reader.records(entry)
    assert (record.error_type, record.message, record.route) == (
        "PaymentError",
        "card declined",
        "POST /orders/7/charge",
    )
    assert [(f.function, f.path, f.line, f.in_app) for f in record.frames] == [
        ("charge", "/srv/app/pay.js", 10, True),
        ("process.processTicksAndRejections", "node:internal/x", 95, False),
    ]


def test_a_retried_batch_counts_once_whatever_its_encoding_and_a_different_one_counts_again(
    daemon: Daemon,
) -> None:
    record = {"severityNumber": 17, "body": {"stringValue": "Error: flaky\n    at g (/a.js:1:1)"}}
    body = _request(record)
    assert _post(daemon, body)[0] == 200
    assert _post(daemon, gzip.compress(body), content_encoding="gzip")[0] == 200
    assert _groups(daemon) == {"flaky": 1}
    assert _post(daemon, _request(record, record))[0] == 200
    assert _groups(daemon) == {"flaky": 3}


def test_a_batch_the_outbox_cannot_commit_is_answered_503_and_its_retry_is_counted_once(
    daemon: Daemon, tmp_path: Path
) -> None:
    record = {"severityNumber": 17, "body": {"stringValue": "Error: locked out"}}
    body = _request(record)
    daemon.outbox._conn.execute("PRAGMA busy_timeout = 200")
    other = sqlite3.connect(tmp_path / "state" / "agent.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        request = Request(
            "POST", "/v1/logs", "HTTP/1.1", {"content-type": "application/json"}, body
        )
        response = asyncio.run(daemon.intakes[0].handle(request))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (response.status, response.headers.get("Retry-After")) == (503, "5")
    assert (
        json.loads(response.body)["message"] == "the agent could not store the records; retry later"
    )
    assert _groups(daemon) == {}
    assert _post(daemon, body) == (200, b"{}")
    assert _post(daemon, body) == (200, b"{}")
    assert _groups(daemon) == {"locked out": 1}


def test_a_receipt_is_forgotten_after_a_day_so_the_same_bytes_count_again(
    daemon: Daemon,
) -> None:
    outbox = daemon.outbox
    day = 86400.0
    assert outbox.ingest_once("digest-1", [], now=1000.0) == []
    assert outbox.ingest_once("digest-1", [], now=1000.0 + day / 2) is None
    outbox.prune(daemon.config, now=1000.0 + day / 2)
    assert outbox.ingest_once("digest-1", [], now=1000.0 + day / 2) is None
    outbox.prune(daemon.config, now=1001.0 + day)
    assert outbox.ingest_once("digest-1", [], now=1001.0 + day) == []


def test_an_older_database_gains_the_host_column_and_keeps_its_groups(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    old = sqlite3.connect(db)
    old.executescript(
        """CREATE TABLE groups (service TEXT NOT NULL, fingerprint TEXT NOT NULL,
               error_type TEXT NOT NULL, message TEXT NOT NULL, stack TEXT NOT NULL, route TEXT,
               count INTEGER NOT NULL, pending INTEGER NOT NULL, first_seen TEXT NOT NULL,
               last_seen TEXT NOT NULL, pending_since REAL, last_arrival REAL NOT NULL,
               relayed INTEGER NOT NULL DEFAULT 0, severity TEXT NOT NULL DEFAULT 'low',
               PRIMARY KEY (service, fingerprint));
           INSERT INTO groups VALUES ('PA', 'f', 'TypeError', 'x', '[]', NULL, 2, 0,
               '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z', NULL, 0, 1, 'low');"""
    )
    old.close()
    outbox = Outbox.open(db, "h")
    try:
        assert [(g.service, g.count) for g in outbox.groups()] == [("PA", 2)]
        columns = {r[1] for r in outbox._conn.execute("PRAGMA table_info(groups)")}
        assert "host" in columns
    finally:
        outbox.close()


# --- hostile bodies ---------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
_keys = st.sampled_from(
    [
        "resourceLogs",
        "scopeLogs",
        "logRecords",
        "resource",
        "attributes",
        "key",
        "value",
        "stringValue",
        "intValue",
        "kvlistValue",
        "arrayValue",
        "values",
        "body",
        "severityNumber",
        "severityText",
        "timeUnixNano",
        "bytesValue",
        "doubleValue",
    ]
)
# Shapes close to a real request, so the walk goes deep before something is wrong.
_near = st.recursive(
    st.none() | st.integers() | st.text(max_size=20) | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=40,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One daemon for many examples: what one body leaves behind must not harm the next."""
    made = _daemon(tmp_path_factory.mktemp("otlp-hypothesis"))
    yield made
    made.outbox.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.one_of(_json, _near))
def test_random_json_bodies_are_answered_200_or_400_and_the_intake_keeps_serving(
    shared: Daemon, value: Any
) -> None:
    status, body = _post(shared, json.dumps(value).encode())
    assert status in (200, 400), body
    if status == 400:
        assert json.loads(body)["message"]
    # Still serving: a real request after any body is stored.
    ok = _request({"severityNumber": 17, "body": {"stringValue": "Error: canary"}})
    assert _post(shared, ok)[0] == 200


_severity = st.one_of(
    st.integers(0, 30), st.sampled_from(["SEVERITY_NUMBER_INFO", "SEVERITY_NUMBER_ERROR3"])
)
_text = st.text(max_size=200) | st.sampled_from(
    ["TypeError: x\n    at f (/a.js:1:2)", "ERROR boom", '{"level":50,"msg":"m"}', "\x00\ud800"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(
        st.fixed_dictionaries(
            {"severityNumber": _severity, "body": st.builds(lambda t: {"stringValue": t}, _text)},
            optional={"severityText": st.text(max_size=10), "timeUnixNano": st.integers(-5, 2**64)},
        ),
        max_size=5,
    )
)
def test_well_formed_requests_are_stored_and_records_below_error_never_count(
    records: list[dict[str, Any]],
) -> None:
    root = Path(tempfile.mkdtemp(prefix="otlp-quiet-"))
    daemon = _daemon(root)
    try:
        quiet = [
            {**r, "body": {"stringValue": f"{r['body']['stringValue']} quiet-{i}"}}
            for i, r in enumerate(records)
            if isinstance(r["severityNumber"], int) and 1 <= r["severityNumber"] <= 16
        ]
        status, said = _post(daemon, _request(*records, *quiet))
        assert status == 200, said
        assert not any(
            "quiet-" in g.message or any("quiet-" in s for s in g.stack)
            for g in daemon.outbox.groups()
        )
    finally:
        daemon.outbox.close()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_protobuf_and_gzip_bytes_are_answered_without_stopping_the_intake(
    shared: Daemon, data: bytes
) -> None:
    require_module("opentelemetry.proto")
    status, said = _post(shared, data, content_type="application/x-protobuf")
    assert status in (200, 400), said
    status, said = _post(shared, b"\x1f\x8b" + data, content_encoding="gzip")
    assert status in (200, 400, 413), said
    assert _post(shared, b"{}")[0] == 200
