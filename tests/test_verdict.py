"""The console's own check of Claude's verdict: whatever the model returns, the answer is a
checked Verdict or a VerdictError naming the field, never anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.fix.verdict import (
    OUTCOMES,
    RISKS,
    VERDICT_SCHEMA,
    Verdict,
    VerdictError,
    parse_verdict,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
texts = st.text(min_size=1).filter(str.strip)
valid = st.fixed_dictionaries(
    {
        "outcome": st.sampled_from([o for o in OUTCOMES if o != "needs_human"]),
        "root_cause": texts,
        "summary": texts,
        "risk": st.sampled_from(RISKS),
        "files": st.lists(st.fixed_dictionaries({"path": texts, "why": texts}), max_size=5),
    },
    optional={"questions": st.lists(st.text(), max_size=3)},
)


@given(json_values)
def test_any_json_value_is_a_verdict_or_a_verdict_error(value: Any) -> None:
    try:
        verdict = parse_verdict(value)
    except VerdictError as exc:
        assert str(exc)
    else:
        assert verdict.outcome in OUTCOMES and verdict.risk in RISKS


@given(valid)
def test_a_verdict_matching_the_schema_is_kept_and_reads_back_the_same(value: Any) -> None:
    verdict = parse_verdict(value)
    assert verdict.root_cause == value["root_cause"].strip()[:4000]
    assert [f.path for f in verdict.files] == [f["path"].strip()[:4000] for f in value["files"]]
    assert Verdict.decode(verdict.encode()) == verdict


@given(valid, st.sampled_from(["outcome", "root_cause", "summary", "risk", "files"]))
def test_a_missing_required_field_is_named(value: Any, key: str) -> None:
    del value[key]
    with pytest.raises(VerdictError, match=repr(key)):
        parse_verdict(value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"risk": "extreme"},
            "verdict field 'risk' is 'extreme'; expected one of low, medium, high",
        ),
        ({"summary": "  "}, "verdict field 'summary' is missing or empty"),
        (
            {"files": [{"path": "a.js"}]},
            "verdict field 'files[0]' is not an object of path and why",
        ),
        ({"extra": 1}, "unknown verdict field(s): extra"),
        ({"outcome": "needs_human"}, "verdict needs_human without any 'questions'"),
    ],
)
def test_a_verdict_off_the_schema_is_refused_with_the_reason(
    change: dict[str, Any], reason: str
) -> None:
    value = {"outcome": "fixed", "root_cause": "r", "summary": "s", "risk": "low", "files": []}
    with pytest.raises(VerdictError) as refused:
        parse_verdict({**value, **change})
    assert str(refused.value) == reason


def test_the_schema_requires_what_the_console_requires() -> None:
    assert VERDICT_SCHEMA["required"] == ["outcome", "root_cause", "summary", "risk", "files"]
    assert set(VERDICT_SCHEMA["properties"]) == {*VERDICT_SCHEMA["required"], "questions"}
    assert json.loads(json.dumps(VERDICT_SCHEMA)) == VERDICT_SCHEMA
