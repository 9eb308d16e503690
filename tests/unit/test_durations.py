from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.durations import (
    MAX_DURATION,
    DurationError,
    format_duration,
    looks_like_duration,
    parse_duration,
)

EXAMPLES = "use e.g. 90m, 2h, 1h30m, 1d or PT2H"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("45s", timedelta(seconds=45)),
        ("1d2h", timedelta(days=1, hours=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1d5s", timedelta(days=1, seconds=5)),
        ("1H30M", timedelta(hours=1, minutes=30)),
        ("+2h", timedelta(hours=2)),
        ("  2h\n", timedelta(hours=2)),
        ("007m", timedelta(minutes=7)),
        ("PT2H", timedelta(hours=2)),
        ("pt90m", timedelta(minutes=90)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT45S", timedelta(seconds=45)),
        ("P1W", timedelta(weeks=1)),
        ("P1W2D", timedelta(days=9)),
        ("3650d", MAX_DURATION),
    ],
)
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2x", f"'2x' is not a duration; {EXAMPLES}"),
        ("90", f"'90' is not a duration; {EXAMPLES}"),
        ("30m1h", f"'30m1h' is not a duration; {EXAMPLES}"),
        ("1h 30m", f"'1h 30m' is not a duration; {EXAMPLES}"),
        ("P", f"'P' is not a duration; {EXAMPLES}"),
        ("PT", f"'PT' is not a duration; {EXAMPLES}"),
        ("P1DT", f"'P1DT' is not a duration; {EXAMPLES}"),
        ("PT2D", f"'PT2D' is not a duration; {EXAMPLES}"),
        ("1w", f"'1w' is not a duration; {EXAMPLES}"),
        ("+-2h", f"'+-2h' is not a duration; {EXAMPLES}"),
        ("\u0662h", f"'\u0662h' is not a duration; {EXAMPLES}"),  # Arabic-Indic two
        ("1.5h", "'1.5h' is not a duration; use whole units, e.g. 1h30m rather than 1.5h"),
        ("PT1,5H", "'PT1,5H' is not a duration; use whole units, e.g. 1h30m rather than 1.5h"),
        ("P1Y", "years and months have no fixed length; use days instead, e.g. P30D or 30d"),
        ("P2M", "years and months have no fixed length; use days instead, e.g. P30D or 30d"),
        ("P1Y2M3DT4H", "years and months have no fixed length; use days instead, e.g. P30D or 30d"),
        ("", f"the duration is empty; {EXAMPLES}"),
        ("   ", f"the duration is empty; {EXAMPLES}"),
        ("0s", "duration must be positive"),
        ("0h0m", "duration must be positive"),
        ("PT0S", "duration must be positive"),
        ("-2h", "duration must be positive"),
        ("-PT2H", "duration must be positive"),
        ("3650d1s", "duration is too long (at most 3650 days)"),
        ("P522W", "duration is too long (at most 3650 days)"),
        ("9" * 5000 + "d", "duration is too long (at most 3650 days)"),
    ],
)
def test_refuses_with_a_sentence(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_leading_zeros_beyond_int_digit_limit_still_parse() -> None:
    assert parse_duration("0" * 5000 + "1h") == timedelta(hours=1)


def test_long_garbage_is_shortened_and_kept_on_one_line() -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration("2" + "x" * 100 + "\nsecond line")
    message = str(caught.value)
    assert message == f"'2{'x' * 38}…' is not a duration; {EXAMPLES}"


def test_duration_error_is_a_value_error() -> None:
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    "token", ["2h", "90", "0s", "+2h", "-2h", "-", "+", "--for", "P1D", "PT2H", "pt2h", "p1w"]
)
def test_looks_like_a_duration(token: str) -> None:
    assert looks_like_duration(token)


@pytest.mark.parametrize(
    "token", ["", "fixing", "P", "PT", "Please", "PTO", "Pt.", "ticket:1", " 2h", "\u0662h"]
)
def test_does_not_look_like_a_duration(token: str) -> None:
    assert not looks_like_duration(token)


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(hours=8), "8h"),
        (timedelta(seconds=45), "45s"),
        (timedelta(days=1, hours=2), "1d2h"),
        (timedelta(days=1, seconds=5), "1d5s"),
        (timedelta(weeks=2), "14d"),
        (timedelta(0), "0s"),
        (timedelta(milliseconds=999), "0s"),
        (timedelta(seconds=90, microseconds=500), "1m30s"),
        (-timedelta(hours=2), "-2h"),
        (-timedelta(microseconds=1), "0s"),
    ],
)
def test_formats_compactly(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


def test_formats_the_extremes_without_overflow() -> None:
    assert format_duration(timedelta.max).startswith("999999999d")
    assert format_duration(timedelta.min).startswith("-999999999d")


@settings(max_examples=300)
@given(st.text())
def test_any_text_is_a_positive_duration_or_a_duration_error(text: str) -> None:
    try:
        td = parse_duration(text)
    except DurationError as err:
        assert len(str(err).splitlines()) == 1
    else:
        assert timedelta(0) < td <= MAX_DURATION


# Text shaped like a duration reaches the unit arithmetic, which plain st.text() rarely does.
duration_like = st.from_regex(r"\A[+-]?(P(\d+[YMWD])*(T(\d+[HMS])*)?|(\d+[dhmswy])+)\Z")


@settings(max_examples=300)
@given(duration_like)
def test_duration_shaped_text_never_raises_anything_else(text: str) -> None:
    try:
        td = parse_duration(text)
    except DurationError:
        return
    assert timedelta(0) < td <= MAX_DURATION


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=3650 * 86_400))
def test_format_then_parse_round_trips(seconds: int) -> None:
    td = timedelta(seconds=seconds)
    assert parse_duration(format_duration(td)) == td
