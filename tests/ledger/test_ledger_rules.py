from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongji.core.errors import InvalidInput
from gongji.ledger.rules import GENESIS_HASH, canonical_entry, check_balanced, entry_hash

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


def test_genesis_is_64_zeros():
    assert GENESIS_HASH == "0" * 64


def test_canonical_json_shape():
    text = canonical_entry(1, WHEN, "donation", "捐款", None, [("b", -5), ("a", 5)], GENESIS_HASH).decode()
    assert text == (
        '{"kind":"donation","memo":"捐款","posted_at":"2024-03-01T08:30:00.000000+00:00",'
        '"postings":[["a",5],["b",-5]],"prev_hash":"' + GENESIS_HASH + '","reference":null,"seq":1}'
    )


def test_timestamp_is_rendered_in_utc_whatever_the_zone():
    beijing = WHEN.astimezone(dt.timezone(dt.timedelta(hours=8)))
    lines = [("a", 1), ("b", -1)]
    assert entry_hash(1, beijing, "fee", "", None, lines, GENESIS_HASH) == entry_hash(
        1, WHEN, "fee", "", None, lines, GENESIS_HASH
    )


@given(balanced_lines(), st.randoms())
def test_hash_ignores_posting_order(lines, random):
    shuffled = list(lines)
    random.shuffle(shuffled)
    assert entry_hash(3, WHEN, "grant", "m", "r", lines, GENESIS_HASH) == entry_hash(
        3, WHEN, "grant", "m", "r", shuffled, GENESIS_HASH
    )


@given(balanced_lines(), st.sampled_from(["seq", "posted_at", "kind", "memo", "reference", "amount", "prev_hash"]))
def test_hash_changes_with_every_field(lines, field):
    base = {
        "seq": 7,
        "posted_at": WHEN,
        "kind": "payout",
        "memo": "m",
        "reference": "claim:1",
        "postings": lines,
        "prev_hash": GENESIS_HASH,
    }
    changed = dict(base)
    if field == "amount":
        code, amount = lines[0]
        changed["postings"] = [(code, amount + 1), *lines[1:]]
    else:
        changed[field] = {
            "seq": 8,
            "posted_at": WHEN + dt.timedelta(microseconds=1),
            "kind": "refund",
            "memo": "m ",
            "reference": None,
            "prev_hash": "f" * 64,
        }[field]
    assert entry_hash(**base) != entry_hash(**changed)
    assert len(entry_hash(**base)) == 64


@given(balanced_lines())
def test_balanced_lines_pass(lines):
    check_balanced(lines)


@given(balanced_lines(), amounts)
def test_unbalanced_lines_fail(lines, delta):
    code, amount = lines[0]
    if amount + delta == 0:
        delta += 1
    with pytest.raises(InvalidInput) as caught:
        check_balanced([(code, amount + delta), *lines[1:]])
    assert caught.value.field == "lines"


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([("a", 0)], "lines"),
        ([("a", 5), ("b", 0), ("c", -5)], "lines[1].amount"),
    ],
)
def test_structural_failures_name_the_field(lines, field):
    with pytest.raises(InvalidInput) as caught:
        check_balanced(lines)
    assert caught.value.field == field
