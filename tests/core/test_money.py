from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongji.core.errors import InvalidInput
from gongji.core.money import MAX_FEN, apply_rate, check_fen, format_yuan, parse_yuan, split_largest_remainder


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12,345.6", 1_234_560),
        ("¥12345.60", 1_234_560),
        ("￥ 1,000", 100_000),
        ("0.01", 1),
        ("7", 700),
        ("7.", 700),
        (" 3.5 ", 350),
        (Decimal("2.25"), 225),
        (12, 1200),
    ],
)
def test_parse_yuan_accepts(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    ["1.234", "-5", "−5", "100000001", "abc", "", "1,23.00", "12,3456", "1e5", "¥", "1.2.3", "NaN"],
)
def test_parse_yuan_rejects_with_field(text):
    with pytest.raises(InvalidInput) as caught:
        parse_yuan(text, "donation")
    assert caught.value.field == "donation"


def test_parse_yuan_ceiling_is_inclusive():
    assert parse_yuan("100,000,000.00") == MAX_FEN
    with pytest.raises(InvalidInput, match="ceiling"):
        parse_yuan("100,000,000.01")


def test_parse_yuan_negative_only_when_allowed():
    assert parse_yuan("-12.30", allow_negative=True) == -1230


@given(st.integers(min_value=0, max_value=MAX_FEN))
def test_format_then_parse_round_trips(fen):
    assert parse_yuan(format_yuan(fen)) == fen
    assert parse_yuan(format_yuan(fen, grouping=False)) == fen


@pytest.mark.parametrize("value", [1.5, "100", True, None, -1, MAX_FEN + 1])
def test_check_fen_rejects(value):
    with pytest.raises(InvalidInput) as caught:
        check_fen(value, "class_a")
    assert caught.value.field == "class_a"


@given(st.integers(min_value=0, max_value=MAX_FEN), st.integers(min_value=0, max_value=10_000))
def test_apply_rate_is_exact_half_up(fen, bp):
    exact = Fraction(fen * bp, 10_000)
    assert apply_rate(fen, bp) == math.floor(exact + Fraction(1, 2))


@given(
    st.integers(min_value=0, max_value=MAX_FEN),
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40).filter(lambda w: sum(w) > 0),
)
def test_split_largest_remainder_sums_and_stays_within_one(total, weights):
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total * weight, weight_sum)
        assert abs(part - exact) < 1
        assert part >= 0
        if weight == 0:
            assert part == 0


@pytest.mark.parametrize(("total", "weights"), [(-1, [1]), (10, []), (10, [0, 0]), (10, [1, -1])])
def test_split_rejects_bad_input(total, weights):
    with pytest.raises(InvalidInput):
        split_largest_remainder(total, weights)
