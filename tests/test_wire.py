"""The stream protocol round-trips and refuses anything that is not exactly the protocol."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.wire import (
    PROTOCOL_VERSION,
    SEVERITIES,
    ErrorEvent,
    Heartbeat,
    Hello,
    WireError,
    decode,
    encode,
    encode_unsequenced,
    iso,
    with_seq,
)

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


_TEXT = st.text(max_size=40)
EVENTS = st.builds(
    ErrorEvent,
    type=st.sampled_from(["error", "update"]),
    seq=st.integers(1, 2**63 - 1),
    host=_TEXT,
    service=_TEXT,
    fingerprint=st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
    count=st.integers(1, 2**63 - 1),
    severity=st.sampled_from(SEVERITIES),
    message=_TEXT,
    error_type=_TEXT,
    stack=st.lists(_TEXT, max_size=5),
    route=st.none() | _TEXT,
    first_seen=_TEXT,
    last_seen=_TEXT,
)
# With in_app as an agent sends it: empty (an older agent) or one flag per stack line.
EVENTS = EVENTS.flatmap(
    lambda e: st.one_of(
        st.just(e),
        st.lists(st.sampled_from([True, False, None]), min_size=len(e.stack), max_size=len(e.stack))
        .filter(bool)
        .map(lambda flags: replace(e, in_app=flags)),
    )
)


@given(EVENTS)
def test_the_stored_payload_with_its_seq_spliced_in_is_exactly_the_encoded_line(
    event: ErrorEvent,
) -> None:
    payload = encode_unsequenced(event)
    assert '"seq"' not in payload.split(",", 1)[0]
    line = with_seq(payload, event.seq)
    assert line == encode(event)
    assert decode(line) == event


@given(EVENTS, st.booleans(), st.booleans())
def test_an_event_line_decodes_to_its_event_whatever_fields_beside_it(
    event: ErrorEvent, drop_in_app: bool, extra: bool
) -> None:
    fields = json.loads(encode(event))
    if drop_in_app:
        del fields["in_app"]  # an agent from before in_app
    if extra:
        fields["newer_field"] = [1, 2]  # a newer agent's
    decoded = decode(json.dumps(fields, ensure_ascii=False))
    assert decoded == (replace(event, in_app=[]) if drop_in_app else event)
    assert not hasattr(decoded, "newer_field")


def test_every_line_is_compact_and_starts_with_its_type() -> None:
    hello = Hello(protocol=PROTOCOL_VERSION, agent_version="0.1.0", host="h", sources=["PA: x"])
    beat = Heartbeat(host="h", last_seq=9, time="2026-11-26T02:00:00.000Z")
    for event in (hello, EVENT, beat):
        line = encode(event)
        assert line.startswith(f'{{"type":"{event.type}",')
        assert json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":")) == line


def test_a_payload_stored_in_another_key_order_still_becomes_the_same_line() -> None:
    fields = json.loads(encode_unsequenced(EVENT))
    reordered = json.dumps(dict(reversed(list(fields.items()))))
    assert with_seq(reordered, EVENT.seq) == encode(EVENT)
    assert decode(with_seq(reordered, 99)) == replace(EVENT, seq=99)


@given(st.floats(0, 4_102_444_800, allow_nan=False))
def test_iso_is_utc_with_milliseconds_and_sorts_like_the_time(ts: float) -> None:
    text = iso(ts)
    assert len(text) == 24 and text.endswith("Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    exact = datetime.fromtimestamp(ts, UTC)
    assert parsed == exact.replace(microsecond=exact.microsecond // 1000 * 1000)
    assert iso(ts) <= iso(ts + 0.001)
    assert iso(0) == "1970-01-01T00:00:00.000Z"


def test_a_line_from_an_agent_without_in_app_decodes_with_no_frames_known() -> None:
    fields = json.loads(encode(EVENT))
    del fields["in_app"]
    assert decode(json.dumps(fields)) == EVENT
    assert decode(json.dumps(fields)).in_app == []


@pytest.mark.parametrize("flags", [[True], [True, "yes"], "true", [True, False, None], [1, 0]])
def test_in_app_must_hold_one_flag_per_stack_line(flags: object) -> None:
    fields = json.loads(encode(EVENT))
    fields["in_app"] = flags
    with pytest.raises(WireError, match="'in_app' must be empty or hold true, false or null"):
        decode(json.dumps(fields))


def test_in_app_flags_travel_with_the_event() -> None:
    event = replace(EVENT, in_app=[None, True])
    assert decode(encode(event)) == event
    assert json.loads(encode(event))["in_app"] == [None, True]
