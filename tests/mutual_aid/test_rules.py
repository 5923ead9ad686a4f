"""The pure rules: ages on birthdays, fixed payouts by band and tier, join refusals, claim findings,
reimbursement arithmetic and the jury's count."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongji.core.money import apply_rate
from gongji.mutual_aid import rules
from gongji.mutual_aid.plans import load_plans

PLANS = {spec.code: spec for spec in load_plans()}
COMPREHENSIVE = PLANS["online-comprehensive"]
ICU = PLANS["online-icu"]
UNION = PLANS["union-hospital"]
VILLAGE = PLANS["village-aid"]

dates = st.dates(dt.date(1930, 1, 1), dt.date(2030, 12, 31))


@given(dates, dates)
def test_age_goes_up_exactly_on_the_birthday(birth, on):
    age = rules.age_on(birth, on)
    if on >= birth:
        assert age >= 0
    try:
        birthday = birth.replace(year=on.year)
    except ValueError:  # 29 February in a common year: the birthday counts from 1 March
        birthday = dt.date(on.year, 3, 1)
    assert age == on.year - birth.year - (on < birthday)


def test_age_examples():
    assert rules.age_on(dt.date(1985, 3, 2), dt.date(2025, 3, 1)) == 39
    assert rules.age_on(dt.date(1985, 3, 2), dt.date(2025, 3, 2)) == 40
    assert rules.age_on(dt.date(2000, 2, 29), dt.date(2025, 2, 28)) == 24
    assert rules.age_on(dt.date(2000, 2, 29), dt.date(2025, 3, 1)) == 25


def test_the_comprehensive_payout_drops_at_forty_for_the_standard_tier_only():
    assert rules.fixed_payout(COMPREHENSIVE, "standard", 39) == 30_000_000
    assert rules.fixed_payout(COMPREHENSIVE, "standard", 40) == 10_000_000
    assert rules.fixed_payout(COMPREHENSIVE, "entry", 39) == 10_000_000
    assert rules.fixed_payout(COMPREHENSIVE, "entry", 40) == 10_000_000
    assert rules.fixed_payout(ICU, "standard", 30) == 0


def _join(spec, **overrides):
    facts = {"birth": dt.date(1990, 1, 1), "on": dt.date(2025, 3, 1), "tier": "standard", "shares": 1,
             "declaration": {q.id: False for q in spec.declaration}, "last_left": None, "already_member": False}
    return [reason.code for reason in rules.join_refusals(spec, **{**facts, **overrides})]


def test_a_healthy_adult_may_join():
    assert _join(COMPREHENSIVE) == []


def test_entry_ages_from_thirty_days_to_the_maximum_birthday():
    assert _join(COMPREHENSIVE, birth=dt.date(2025, 2, 1)) == ["J1"]  # 28 days old
    assert _join(COMPREHENSIVE, birth=dt.date(2025, 1, 30)) == []  # 30 days
    assert _join(COMPREHENSIVE, birth=dt.date(1965, 3, 2)) == []  # 59 until tomorrow
    assert _join(COMPREHENSIVE, birth=dt.date(1965, 3, 1)) == ["J1"]  # 60 today


def test_tier_shares_declaration_rejoin_and_membership_refusals():
    assert _join(ICU, tier="entry") == ["J2"]
    assert _join(COMPREHENSIVE, tier="entry") == []
    assert _join(COMPREHENSIVE, shares=2) == ["J3"]
    assert _join(UNION, shares=5) == []
    assert _join(UNION, shares=6) == ["J3"]
    assert _join(COMPREHENSIVE, declaration={"q-cancer": True, "q-hospital": False}) == ["J5"]
    assert _join(COMPREHENSIVE, declaration={"q-cancer": False}) == ["J4"]
    assert _join(COMPREHENSIVE, last_left=dt.date(2025, 3, 1) - dt.timedelta(days=179)) == ["J7"]
    assert _join(COMPREHENSIVE, last_left=dt.date(2025, 3, 1) - dt.timedelta(days=180)) == []
    assert _join(UNION, last_left=dt.date(2025, 3, 1)) == []  # rejoin_after_days 0
    assert _join(COMPREHENSIVE, already_member=True) == ["J6"]


def _facts(**overrides):
    base = {
        "icd10": "C34.1", "event_on": dt.date(2025, 3, 1), "birth": dt.date(1990, 1, 1), "tier": "standard",
        "joined_on": dt.date(2024, 1, 1), "protected_from": dt.date(2024, 3, 31), "active_at_event": True,
        "claims_this_year": 0, "paid_this_year": 0, "groups_claimed": frozenset(), "residual": 5_000_000,
        "in_policy_residual": 4_000_000, "scheme": "resident",
    }
    return rules.ClaimFacts(**{**base, **overrides})


def codes(assessment):
    return [reason.code for reason in assessment.reasons]


def test_fixed_claim_pays_the_band_of_the_age_at_the_event():
    young = rules.assess_claim(COMPREHENSIVE, _facts(birth=dt.date(1985, 3, 2)))
    assert (codes(young), young.amount, young.group.code) == ([], 30_000_000, "cancer")
    forty = rules.assess_claim(COMPREHENSIVE, _facts(birth=dt.date(1985, 3, 1)))
    assert forty.amount == 10_000_000


def test_claim_findings_each_have_their_code():
    assert codes(rules.assess_claim(COMPREHENSIVE, _facts(event_on=dt.date(2024, 3, 30)))) == ["R1"]
    assert codes(rules.assess_claim(COMPREHENSIVE, _facts(icd10="C44.3"))) == ["R2"]  # excluded
    assert codes(rules.assess_claim(COMPREHENSIVE, _facts(icd10="J18.9"))) == ["R2"]
    assert codes(rules.assess_claim(COMPREHENSIVE, _facts(birth=dt.date(1965, 2, 28)))) == ["R3"]
    assert codes(rules.assess_claim(COMPREHENSIVE, _facts(groups_claimed=frozenset({"cancer"})))) == ["R5"]
    assert codes(rules.assess_claim(COMPREHENSIVE, _facts(active_at_event=False))) == ["R6"]
    assert codes(rules.assess_claim(COMPREHENSIVE, _facts(residual=0))) == ["R7"]
    assert rules.assess_claim(COMPREHENSIVE, _facts(residual=0)).amount == 0


def test_a_disease_group_may_wait_less_than_the_plan():
    """ICU plan: 30 days' waiting, accident surgery none — counted from the joining day."""
    joined = {"joined_on": dt.date(2025, 2, 20), "protected_from": dt.date(2025, 3, 22)}
    assert codes(rules.assess_claim(ICU, _facts(icd10="A41.9", **joined))) == ["R1"]
    assert codes(rules.assess_claim(ICU, _facts(icd10="S72.0", **joined))) == []


def test_reimbursement_per_claim_cap_count_and_annual_cap():
    big = rules.assess_claim(ICU, _facts(icd10="A41.9", in_policy_residual=20_000_000, residual=25_000_000))
    assert big.amount == 10_000_000  # per-claim cap 100,000 yuan
    assert codes(rules.assess_claim(ICU, _facts(icd10="A41.9", claims_this_year=4))) == ["R4"]
    assert codes(rules.assess_claim(ICU, _facts(icd10="A41.9", claims_this_year=3))) == []
    union = {"icd10": "J18.9", "in_policy_residual": 20_000_000, "residual": 25_000_000}
    assert rules.assess_claim(UNION, _facts(**union, paid_this_year=9_500_000)).amount == 500_000
    assert codes(rules.assess_claim(UNION, _facts(**union, paid_this_year=10_000_000))) == ["R4"]


def test_village_deductible_by_scheme_and_minimum_payout():
    """Village: 50% of self-pay above 2,000 yuan (resident) / 3,000 yuan (employee, retiree); under 300 yuan none."""
    resident = rules.assess_claim(VILLAGE, _facts(icd10="J18.9", residual=500_000, scheme="resident"))
    assert resident.amount == 150_000
    employee = rules.assess_claim(VILLAGE, _facts(icd10="J18.9", residual=500_000, scheme="employee"))
    assert employee.amount == 100_000
    assert rules.assess_claim(VILLAGE, _facts(icd10="J18.9", residual=500_000, scheme="retiree")).amount == 100_000
    small = rules.assess_claim(VILLAGE, _facts(icd10="J18.9", residual=250_000, scheme="resident"))
    assert (small.amount, codes(small)) == (0, ["R8"])
    none = rules.assess_claim(VILLAGE, _facts(icd10="J18.9", residual=150_000, scheme="resident"))
    assert (none.amount, codes(none)) == (0, ["R7"])


def test_union_adds_the_lump_sums_of_every_group_with_one():
    facts = {"icd10": "C50.9", "in_policy_residual": 1_100_000, "residual": 5_000_000}
    assessment = rules.assess_claim(UNION, _facts(**facts))
    # 70% × (11,000 − 1,000) yuan + 15,000 (critical) + 15,000 (women's cancers)
    assert assessment.amount == 700_000 + 1_500_000 + 1_500_000
    again = rules.assess_claim(UNION, _facts(**facts, groups_claimed=frozenset({"critical", "women_cancer"})))
    assert again.amount == 700_000


@given(
    base=st.integers(0, 10**9), residual=st.integers(0, 10**9), paid=st.integers(0, 2 * 10**7),
    scheme=st.sampled_from(["employee", "retiree", "resident"]),
    spec=st.sampled_from([ICU, UNION, VILLAGE]),
)
def test_reimbursement_stays_within_every_limit(base, residual, paid, scheme, spec):
    payment = spec.payment
    amount, reasons, _ = rules.reimbursement(payment, base=base, residual=residual, scheme=scheme,
                                             paid_this_year=paid)
    assert 0 <= amount <= residual
    assert amount <= apply_rate(max(base - rules.deductible_for(payment, scheme), 0), payment.rate)
    if payment.per_claim_cap is not None:
        assert amount <= payment.per_claim_cap
    if payment.annual_cap is not None:
        assert amount <= max(payment.annual_cap - paid, 0)
    assert amount == 0 or amount >= payment.min_payout
    assert (amount == 0) == bool(reasons)


@given(st.integers(1, 50), st.data())
def test_jury_decides_only_at_quorum_and_a_tie_rejects(quorum, data):
    votes = data.draw(st.integers(0, 100))
    supports = data.draw(st.integers(0, votes))
    outcome = rules.jury_outcome(votes, supports, quorum)
    if votes < quorum:
        assert outcome is None
    else:
        assert outcome == ("approved" if supports > votes - supports else "rejected")


def test_jury_examples():
    assert rules.jury_outcome(9, 9, 10) is None
    assert rules.jury_outcome(10, 5, 10) == "rejected"
    assert rules.jury_outcome(10, 6, 10) == "approved"
    assert rules.jury_outcome(11, 6, 10) == "approved"
    with pytest.raises(ValueError):
        rules.jury_outcome(3, 4, 1)


def test_episode_codes_finer_than_the_plan_s_match_their_category():
    assessment = rules.assess_claim(COMPREHENSIVE, _facts(icd10="C34.1234"))
    assert (assessment.group.code, codes(assessment)) == ("cancer", [])
    assert rules.groups_of(UNION, "C50.9123") == {"general", "critical", "women_cancer"}
    assert rules.groups_of(COMPREHENSIVE, "C44.91") == set()
