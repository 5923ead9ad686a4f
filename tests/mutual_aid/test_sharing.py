"""The arithmetic of sharing, pure: exact totals, caps, round-up surplus, shortfalls carried or taken off payouts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gongji.core.money import apply_rate
from gongji.mutual_aid import sharing
from gongji.mutual_aid.plans import PostEventFunding

caps = st.one_of(st.none(), st.integers(0, 500))
rounding = st.sampled_from(sharing.ROUNDINGS)


@given(amount=st.integers(0, 10**9), caps=st.lists(caps, min_size=1, max_size=60), rounding=rounding)
def test_charges_sum_to_the_amount_exactly_or_with_the_recorded_surplus_and_respect_every_cap(amount, caps, rounding):
    share, charges, result = sharing.reference_charges(amount, caps, rounding)
    assert all(charge >= 0 for charge in charges)
    assert all(cap is None or charge <= cap for charge, cap in zip(charges, caps, strict=True))
    assert sum(charges) == result.charged == amount + result.excess - result.uncovered
    if all(cap is None for cap in caps):
        assert result.uncovered == 0
        if rounding == "largest_remainder":
            assert sum(charges) == amount and result.excess == 0
            assert max(charges) - min(charges) <= 1
            assert charges == sorted(charges, reverse=True)  # the extra fen go to the first in line
        else:
            assert len(set(charges)) == 1 and 0 <= result.excess < len(caps)  # under one fen each
    if rounding == "largest_remainder":
        assert result.excess == 0


def test_round_up_charges_a_fen_for_less_than_a_fen():
    share, charges, result = sharing.reference_charges(1001, [None] * 1000, "round_up")
    assert share.base == 2 and charges == [2] * 1000 and result.excess == 999


def test_largest_remainder_gives_the_first_members_the_extra_fen():
    _, charges, result = sharing.reference_charges(1003, [None] * 10, "largest_remainder")
    assert charges == [101, 101, 101] + [100] * 7 and result.excess == 0


@given(payouts=st.integers(0, 10**10), fee_bp=st.integers(0, 10_000), carried=st.integers(-10**9, 10**10))
def test_amount_is_payouts_plus_fee_less_the_carry_and_never_negative(payouts, fee_bp, carried):
    due = sharing.amount_to_collect(payouts, fee_bp, carried)
    assert due.fee == apply_rate(payouts, fee_bp)
    assert due.amount >= 0 and due.surplus_left >= 0
    assert due.amount - due.surplus_left == payouts + due.fee - carried


def funding(**caps) -> PostEventFunding:
    return PostEventFunding(mode="post_event", fee_rate="8%", rounding="round_up", uncovered="carry", **caps)


def test_the_caps_per_case_per_period_and_what_is_left_of_the_annual_cap():
    plan = funding(per_case_cap="0.10", per_period_cap="2", annual_cap=188)
    assert sharing.period_cap(plan, 3) == 30
    assert sharing.period_cap(plan, 50) == 200
    assert sharing.period_cap(funding(), 50) is None
    assert sharing.member_cap(30, plan.annual_cap, 18_790) == 10
    assert sharing.member_cap(30, plan.annual_cap, 19_000) == 0
    assert sharing.member_cap(None, None, 5) is None


@given(payouts=st.lists(st.integers(0, 10**8), min_size=1, max_size=20), fee=st.integers(0, 10**7), data=st.data())
def test_reducing_payouts_takes_off_exactly_the_shortfall_in_proportion(payouts, fee, data):
    uncovered = data.draw(st.integers(0, sum(payouts) + fee))
    reduced, new_fee = sharing.reduce_payouts(payouts, fee, uncovered)
    assert sum(reduced) + new_fee == sum(payouts) + fee - uncovered
    assert all(0 <= new <= old for new, old in zip(reduced, payouts, strict=True))
    assert 0 <= new_fee <= fee


def test_a_carried_shortfall_is_a_negative_carry_only_when_the_plan_carries_it():
    assert sharing.carried_to_next(50, 20, "carry") == 30
    assert sharing.carried_to_next(0, 20, "carry") == -20
    assert sharing.carried_to_next(0, 20, "reduce_payouts") == 0
