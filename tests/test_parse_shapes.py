"""Prefixes and record shapes: each form the agent reads, pinned by one line of it.

The whole logs these lines come from (written by the real libraries) are checked in
tests/test_corpus.py; here each rule is pinned on its own so a failure names the rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.parse import parse_lines, strip_prefix
from tests.conftest import feed_in_chunks

FRAME = "    at Object.orderTotal (/srv/app/lib/shop.js:14:16)"


@pytest.mark.parametrize(
    ("line", "body", "stamp"),
    [
        ("Dec 01 08:40:42 shop-1 node[4242]: TypeError: x", "TypeError: x", "-12-01T08:40:42"),
        ("2026-11-30T10:00:00+0000 shop-1 node[7]: ERROR boom", "ERROR boom", "2026-11-30T10:00"),
        ("[08:42:26.443] ERROR (1234): boom", "ERROR (1234): boom", None),
        (
            "[Nest] 30408  - 11/23/2026, 10:00:00 PM   ERROR [ExceptionsHandler] boom",
            "ERROR [ExceptionsHandler] boom",
            "2026-11-23T22:00:00",
        ),
        ("0|shop  | 2026-11-26T02:07:29: x", "x", "2026-11-26T02:07:29"),
        ("[2026-12-01T10:45:46.202] [ERROR] shop - x", "[ERROR] shop - x", "2026-12-01T10:45:46"),
    ],
)
def test_prefixes_in_every_common_shape_are_removed(
    line: str, body: str, stamp: str | None
) -> None:
    got_body, got_stamp = strip_prefix(line)
    assert got_body == body
    if stamp is None:
        assert got_stamp is None
    else:
        assert got_stamp is not None and stamp in got_stamp


@pytest.mark.parametrize(
    ("lines", "kind", "message", "route"),
    [
        # NestJS: the context tag is not part of the message.
        (
            [
                "[Nest] 30408  - 12/01/2026, 10:34:14 AM   ERROR [ExceptionsHandler] "
                "TypeError: Cannot read properties of undefined (reading 'lines')",
                FRAME,
            ],
            "TypeError",
            "Cannot read properties of undefined (reading 'lines')",
            None,
        ),
        # log4js: the category is dropped and the class found after the route.
        (
            [
                "[2026-12-01T10:45:46.202] [ERROR] shop - GET /orders/ORD-57/total failed: "
                "TypeError: Cannot read x",
                FRAME,
            ],
            "TypeError",
            "Cannot read x",
            "GET /orders/ORD-57/total",
        ),
        # winston printf: a label before the level, the stack on the next lines.
        (
            [
                "2026-12-01T10:45:45.348Z [shop] error: profile 9 has no tenant",
                "Error: profile 9 has no tenant",
                FRAME,
            ],
            "Error",
            "profile 9 has no tenant",
            None,
        ),
        # Koa: the whole stack indented.
        (
            ["", "  RangeError: cannot reserve 3", "      " + FRAME.strip()],
            "RangeError",
            "cannot reserve 3",
            None,
        ),
        # Handler labels are not the error class.
        (
            ["uncaughtException: TypeError: x is not a function", FRAME],
            "TypeError",
            "x is not a function",
            None,
        ),
        # A marker before the header.
        ([" \u2a2f TypeError: boom", FRAME], "TypeError", "boom", None),
        # A plain line naming the class after the route (TypeScript's own handler).
        (
            ["POST /orders/ORD-2/charge?user=5 failed: PaymentError: card declined", FRAME],
            "PaymentError",
            "card declined",
            "POST /orders/ORD-2/charge",
        ),
        # hapi: the error indented under its Debug line.
        (
            ["Debug: internal, implementation, error ", "    RangeError: only 0 left", FRAME],
            "RangeError",
            "only 0 left",
            None,
        ),
    ],
)
def test_record_shapes_give_class_message_route_and_frames(
    lines: list[str], kind: str, message: str, route: str | None
) -> None:
    (record,) = parse_lines(lines)
    assert (record.error_type, record.message, record.route) == (kind, message, route)
    assert record.frames and record.frames[0].function == "Object.orderTotal"


def test_pino_pretty_dump_gives_the_stack_and_the_route() -> None:
    lines = [
        "[10:45:43.291] ERROR (10360): cannot reserve 3 of sku SKU6194: only 0 left",
        "    req: {",
        '      "method": "POST",',
        '      "url": "/stock/SKU6194/reserve?qty=3"',
        "    }",
        "    err: {",
        '      "type": "RangeError",',
        '      "message": "cannot reserve 3 of sku SKU6194: only 0 left",',
        '      "stack":',
        "          RangeError: cannot reserve 3 of sku SKU6194: only 0 left",
        "              " + FRAME.strip(),
        "    }",
        "[10:45:43.299] INFO (10360): next",
    ]
    (record,) = parse_lines(lines)
    assert (record.error_type, record.route) == ("RangeError", "POST /stock/SKU6194/reserve")
    assert record.message == "cannot reserve 3 of sku SKU6194: only 0 left"
    assert record.frames[0].function == "Object.orderTotal"


def test_winston_simple_json_tail_gives_the_stack_and_the_route() -> None:
    line = (
        'error: card declined {"method":"POST","name":"PaymentError","stack":"PaymentError: '
        "card declined\\n" + FRAME + '","url":"/orders/ORD-1/charge"}'
    )
    (record,) = parse_lines([line])
    assert (record.error_type, record.message, record.route) == (
        "PaymentError",
        "card declined",
        "POST /orders/ORD-1/charge",
    )
    assert record.frames[0].function == "Object.orderTotal"


@pytest.mark.parametrize(
    "line",
    [
        "error budget ok: 30 requests, 0 errors",
        "[Nest] 1  - 12/01/2026, 10:34:14 AM     LOG [Shop] error budget ok: 3 requests",
        "[10:45:43.438] INFO (10360): error budget ok: 30 requests, 0 errors",
        "2026-12-01T10:45:45.400Z [shop] info: error budget ok",
        "[2026-12-01T10:45:46.263] [INFO] shop - error budget ok",
        "Dec 01 08:40:42 shop-1 node[4242]: retrying after error on attempt 2",
        "GET /orders/7 failed: TypeError: no frames follow, so nothing is known",
        "  TypeError: an indented line alone is no record",
    ],
)
def test_innocent_lines_in_these_shapes_give_nothing(line: str) -> None:
    assert feed_in_chunks((line + "\nINFO next\n").encode(), []) == []


CORPUS_LOGS = sorted((Path(__file__).resolve().parent / "corpus" / "logs").glob("*.deploy.log"))


@settings(max_examples=150, deadline=None)
@given(
    log=st.sampled_from(CORPUS_LOGS),
    cuts=st.lists(st.floats(0, 1, exclude_min=True, exclude_max=True), max_size=6),
)
def test_random_splits_of_real_logs_across_feeds_give_the_same_records(
    log: Path, cuts: list[float]
) -> None:
    data = log.read_bytes()
    points = sorted({int(c * len(data)) for c in cuts} - {0})
    assert feed_in_chunks(data, points) == feed_in_chunks(data, [])


@pytest.mark.parametrize(
    ("header", "error_type"),
    [
        ("Error [PaymentError]: card declined for order ORD-1", "PaymentError"),
        (
            "TypeError [ERR_INVALID_ARG_TYPE]: The argument must be a string",
            "TypeError [ERR_INVALID_ARG_TYPE]",
        ),
        (" \u2a2f Error [PaymentError]: card declined for order ORD-1", "PaymentError"),
    ],
)
def test_a_class_named_in_brackets_after_error_is_the_class_but_an_error_code_is_kept(
    header: str, error_type: str
) -> None:
    (record,) = parse_lines([header, "    at chargeCard (/srv/app/lib/shop.js:18:9)"])
    assert record.error_type == error_type
