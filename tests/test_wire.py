"""The stream protocol round-trips and refuses anything that is not exactly the protocol."""

from __future__ import annotations

import json

import pytest

from agent.wire import PROTOCOL_VERSION, ErrorEvent, Heartbeat, Hello, WireError, decode, encode

EVENT = ErrorEvent(
    type="error",
    seq=7,
    host="prod-1",
    service="PA",
    fingerprint="0123456789abcdef",
    count=3,
    severity="high",
    message="Cannot read properties of undefined (reading 'id')",
    error_type="TypeError",
    stack=["TypeError: x", "    at f (/srv/pa/app.js:1:2)"],
    route="GET /api/users/42",
    first_seen="2026-11-26T02:00:00.000Z",
    last_seen="2026-11-26T02:01:00.000Z",
)


def test_every_line_type_round_trips() -> None:
    hello = Hello(protocol=PROTOCOL_VERSION, agent_version="0.1.0", host="h", sources=["PA: x"])
    beat = Heartbeat(host="h", last_seq=9, time="2026-11-26T02:00:00.000Z")
    for event in (hello, EVENT, beat):
        line = encode(event)
        assert "\n" not in line
        assert decode(line) == event
        assert decode(line.encode()) == event


def test_error_type_travels_as_error_type_because_type_names_the_line() -> None:
    obj = json.loads(encode(EVENT))
    assert obj["type"] == "error" and obj["error_type"] == "TypeError"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", "empty line"),
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"seq": 1}', "no 'type'"),
        ('{"type": "gossip"}', "unknown line type 'gossip'"),
        ('{"type": "hello", "protocol": 99, "agent_version": "x", "host": "h"}', "protocol"),
        ('{"type": "heartbeat", "host": "h", "last_seq": "9", "time": "t"}', "'last_seq' must"),
    ],
)
def test_bad_lines_are_refused_with_a_message_naming_the_problem(line: str, problem: str) -> None:
    with pytest.raises(WireError, match=problem):
        decode(line)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("severity", "apocalyptic", "unknown severity"),
        ("fingerprint", "XYZ", "16 lowercase hex"),
        ("seq", 0, "positive"),
        ("seq", True, "boolean"),
        ("count", -1, "positive"),
        ("stack", "not a list", "'stack' must be list"),
        ("route", 5, "'route' must be a string or null"),
    ],
)
def test_bad_event_fields_are_refused(field: str, value: object, problem: str) -> None:
    obj = json.loads(encode(EVENT))
    obj[field] = value
    with pytest.raises(WireError, match=problem):
        decode(json.dumps(obj))


def test_invalid_utf8_and_oversized_lines_are_refused() -> None:
    with pytest.raises(WireError, match="not UTF-8"):
        decode(b'{"type": "\xff"}')
    with pytest.raises(WireError, match="exceeds"):
        decode(b"{" + b" " * (2 * 1024 * 1024) + b"}")
