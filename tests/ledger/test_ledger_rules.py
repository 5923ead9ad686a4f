"""Canonical leaf content and double-entry balance (pure rules)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongji.core.errors import InvalidInput
from gongji.ledger.rules import check_balanced, entry_content, line_content

WHEN = dt.datetime(2024, 3, 1, 8, 30, tzinfo=dt.UTC)
codes = st.text(alphabet="abcdefghij:._", min_size=1, max_size=12)
amounts = st.integers(min_value=-(10**10), max_value=10**10).filter(bool)


@st.composite
def balanced_lines(draw):
    lines = draw(st.lists(st.tuples(codes, amounts), min_size=1, max_size=8))
    total = sum(amount for _, amount in lines)
    closing = -total if total else draw(amounts)
    lines.append((draw(codes), closing))
    if total == 0:
        lines.append((draw(codes), -closing))
    return lines


def test_canonical_json_shape():
    content = entry_content("ab" * 16, WHEN, "donation", "捐款", "campaign:1", [("bank", 100), ("campaign:1", -100)])
    assert content == (
        '{"kind":"donation","memo":"捐款","posted_at":"2024-03-01T08:30:00.000000+00:00",'
        '"postings":[["bank",100],["campaign:1",-100]],"reference":"campaign:1","type":"journal_entry",'
        '"uid":"' + "ab" * 16 + '"}'
    ).encode("utf-8")


def test_timestamp_is_rendered_in_utc_whatever_the_zone():
    shanghai = WHEN.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert entry_content("u", shanghai, "fee", "", None, []) == entry_content("u", WHEN, "fee", "", None, [])


def test_bulk_entry_commits_to_its_lines_root():
    bulk = json.loads(entry_content("u", WHEN, "apportionment", "", None, [], lines_root="00" * 32, line_count=7))
    assert bulk["lines_root"] == "00" * 32 and bulk["line_count"] == 7 and "postings" not in bulk
    assert json.loads(line_content("u", 3, "member:9", -41)) == {
        "type": "line", "entry": "u", "line": 3, "account": "member:9", "amount": -41,
    }


@given(balanced_lines())
def test_balanced_lines_pass(lines):
    check_balanced(lines)


@given(balanced_lines(), amounts)
def test_unbalanced_lines_fail(lines, delta):
    lines[0] = (lines[0][0], lines[0][1] + delta)
    with pytest.raises(InvalidInput):
        check_balanced(lines)


@pytest.mark.parametrize(
    ("lines", "field"), [([("a", 5)], "lines"), ([("a", 0), ("b", 0)], "lines[0].amount")]
)
def test_structural_failures_name_the_field(lines, field):
    with pytest.raises(InvalidInput) as caught:
        check_balanced(lines)
    assert caught.value.field == field
