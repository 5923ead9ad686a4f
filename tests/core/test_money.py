from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal
from fractions import Fraction

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gongji.core.errors import InvalidInput
from gongji.core.money import (
    MAX_FEN,
    YUAN_PATTERN,
    apply_rate,
    check_fen,
    format_yuan,
    parse_yuan,
    split_largest_remainder,
)

#: ASCII → full-width (全角), as a Chinese keyboard types digits, comma, point and the yuan sign.
TO_FULL_WIDTH = str.maketrans("0123456789,.¥- ", "０１２３４５６７８９，．￥－\u3000")


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
        ("１２，３４５．６０", 1_234_560),
        ("￥１２，３４５．６", 1_234_560),
        ("￥\u3000１，０００", 100_000),
        ("1２,３45.6０", 1_234_560),
        ("0000000000000000000000000012.5", 1250),
    ],
)
def test_parse_yuan_accepts(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "1.234", "-5", "−5", "－５", "100000001", "9" * 5000, "abc", "", "1,23.00", "12,3456", "1e5", "¥", "1.2.3",
        "NaN", "１２．３４５", "ＡＢＣ", "1_000",
    ],
)
def test_parse_yuan_rejects_with_field(text):
    with pytest.raises(InvalidInput) as caught:
        parse_yuan(text, "donation")
    assert caught.value.field == "donation"


@pytest.mark.parametrize(
    ("text", "character"),
    [
        ("٣٠٠", "٣"),  # Arabic-Indic digits
        ("۳۰۰", "۳"),  # Extended Arabic-Indic (Persian)
        ("१२३", "१"),  # Devanagari
        ("๑๒", "๑"),  # Thai
        ("10²", "²"),  # superscript two, which NFKC alone would turn into "2"
        ("①", "①"),  # circled one
        ("𝟙𝟚", "𝟙"),  # mathematical double-struck digits
        ("12\u00a0345", "\u00a0"),  # no-break space
        ("1\u200b2", "\u200b"),  # zero-width space
    ],
)
def test_parse_yuan_refuses_other_scripts_naming_the_character(text, character):
    with pytest.raises(InvalidInput, match=re.escape(repr(character))) as caught:
        parse_yuan(text, "class_a")
    assert caught.value.field == "class_a"
    assert "0–9" in caught.value.detail


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


@given(st.integers(min_value=0, max_value=MAX_FEN), st.booleans(), st.booleans())
def test_full_width_text_parses_like_ascii(fen, grouping, sign):
    text = ("¥" if sign else "") + format_yuan(fen, grouping=grouping)
    assert parse_yuan(text.translate(TO_FULL_WIDTH)) == fen


@given(st.from_regex(YUAN_PATTERN, fullmatch=True))
def test_every_text_the_pattern_documents_is_parsed_or_over_the_ceiling(text):
    ascii_text = unicodedata.normalize("NFKC", text)
    assert ascii_text.isascii() or ascii_text.lstrip("¥").isascii()
    try:
        fen = parse_yuan(text)
    except InvalidInput as error:
        assert "ceiling" in error.detail
        return
    assert 0 <= fen <= MAX_FEN
    assert parse_yuan(ascii_text) == fen


@given(
    st.integers(min_value=0, max_value=MAX_FEN),
    st.characters(categories=["Nd", "No"]).filter(lambda ch: not ch.isascii() and not "０" <= ch <= "９"),
    st.data(),
)
def test_any_other_digit_anywhere_is_refused(fen, digit, data):
    text = format_yuan(fen)
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    with pytest.raises(InvalidInput, match="0–9"):
        parse_yuan(text[:at] + digit + text[at:])


@given(st.lists(st.one_of(st.from_regex(YUAN_PATTERN, fullmatch=True), st.text(max_size=12)), max_size=20))
@example(["12\n", "¥\u30001", "1２", "٣", "1,000\n"])
def test_polars_reads_the_pattern_as_python_does(texts):
    """The CSV reader checks YUAN_PATTERN with Polars (Rust regex); both engines must agree."""
    python = [re.fullmatch(YUAN_PATTERN, text) is not None for text in texts]
    assert pl.Series(texts, dtype=pl.String).str.contains(YUAN_PATTERN).to_list() == python


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
