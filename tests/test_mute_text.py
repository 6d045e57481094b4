"""Reading how long to mute one error from what a person typed (the console's m dialog and
Telegram's /mute <error id>)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.mute import MAX_MUTE_OCCURRENCES, MAX_MUTE_SECONDS, DurationError, MuteFor, parse_mute


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("30m", MuteFor(minutes=30)),
        ("1h 30m", MuteFor(minutes=90)),
        ("50x", MuteFor(occurrences=50)),
        ("50 more", MuteFor(occurrences=50)),
        ("2h or 50x", MuteFor(minutes=120, occurrences=50)),
        ("100 occurrences, 1d", MuteFor(minutes=1440, occurrences=100)),
    ],
)
def test_a_duration_a_count_or_both_are_read(text: str, wanted: MuteFor) -> None:
    assert parse_mute(text) == wanted


@pytest.mark.parametrize("text", ["", "soon", "0m", "3x 4x", "0x", "off", "8d"])
def test_anything_else_is_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(DurationError) as refused:
        parse_mute(text)
    assert str(refused.value)


def test_a_mute_says_itself_as_a_person_reads_it() -> None:
    assert str(MuteFor(minutes=150, occurrences=20)) == "2h 30m or 20 more occurrence(s)"


@given(st.text(alphabet=st.sampled_from("0123456789 smhdxoreOR,and\t\u2028-"), max_size=24)
       | st.text(max_size=24))  # fmt: skip
def test_any_text_is_a_bounded_mute_or_a_refusal(text: str) -> None:
    try:
        chosen = parse_mute(text)
    except DurationError:
        return
    assert chosen.minutes is not None or chosen.occurrences is not None
    if chosen.minutes is not None:
        assert 0 < chosen.minutes * 60 <= MAX_MUTE_SECONDS
    if chosen.occurrences is not None:
        assert 0 < chosen.occurrences <= MAX_MUTE_OCCURRENCES
