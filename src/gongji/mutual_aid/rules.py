"""The rules of mutual aid as pure functions: ages, payouts, join refusals, claim findings and the jury's count.

No I/O here: the services read the facts (birth date, membership, what was
claimed this year, the coverage registry's residual) and these functions say
what the plan's rules make of them. Every refusal or finding is a `Reason`
with a stable code (J… for joining, R… for claims, Q… for jurors) and an
English msgid template with its values, so pages can translate it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gongji.core.messages import Text
from gongji.core.money import apply_rate
from gongji.mutual_aid.plans import ContributionFunding, DiseaseGroup, FixedPayment, PlanSpec, ReimbursementPayment
from gongji.rules.rules import SCHEMES

#: Membership statuses in which a person belongs to the plan (counted for "already a member").
ACTIVE_STATUSES = ("waiting", "protected", "suspended")
#: A basic scheme's deductible falls back to a sibling scheme's when the plan names only the two it distinguishes
#: (village plans: 农村 resident / 城镇 employee; a retiree is in the urban employee scheme).
_SCHEME_FALLBACK = {"retiree": "employee"}


@dataclass(frozen=True)
class Reason:
    """One numbered reason (J1, R3, Q2 …) with its English msgid template and values, naming the field at fault."""

    code: str
    field: str
    text: Text

    @classmethod
    def because(cls, code: str, field_name: str, template: str, **values: Any) -> Reason:
        return cls(code, field_name, Text(template, {name: str(value) for name, value in values.items()}))

    def as_dict(self) -> dict[str, Any]:
        """The stored form (ma_claims.reasons): code, English text, and the template with values to translate."""
        return {"code": self.code, "reason": self.text.render(), "template": self.text.template,
                "values": dict(self.text.values)}


def age_on(birth: dt.date, on: dt.date) -> int:
    """Age in whole years (周岁) on `on`: it goes up on the birthday (29 February birthdays on 1 March)."""
    before_birthday = (on.month, on.day) < (birth.month, birth.day)
    return on.year - birth.year - before_birthday


def fixed_payout(spec: PlanSpec, tier: str, age: int) -> int:
    """定额给付: the band's payout for the tier at this age, in fen; 0 if the plan pays no fixed sums or no band fits."""
    if not isinstance(spec.payment, FixedPayment):
        return 0
    for band in spec.payment.bands:
        if band.from_age <= age <= band.to_age:
            amount = band.entry if tier == "entry" else band.standard
            return amount or 0
    return 0


def max_shares(spec: PlanSpec) -> int:
    return spec.funding.max_shares if isinstance(spec.funding, ContributionFunding) else 1


def join_refusals(
    spec: PlanSpec,
    *,
    birth: dt.date,
    on: dt.date,
    tier: str,
    shares: int,
    declaration: Mapping[str, bool],
    last_left: dt.date | None,
    already_member: bool,
) -> list[Reason]:
    """Why a person may not join `spec` on `on` (empty: they may). Every reason is listed, not just the first."""
    reasons = []
    if already_member:
        reasons.append(Reason.because("J6", "id_number", "this person is already a member of {plan}", plan=spec.code))
    days_old = (on - birth).days
    age = age_on(birth, on)
    if days_old < spec.min_age_days or age > spec.max_age:
        reasons.append(Reason.because(
            "J1", "id_number", "entry age is from {min_days} days old to {max} years; this person is {age}",
            min_days=spec.min_age_days, max=spec.max_age, age=age,
        ))
    if tier not in spec.tiers:
        reasons.append(Reason.because("J2", "tier", "tier {tier} is not offered; choose one of {choices}",
                                 tier=tier, choices=", ".join(spec.tiers)))
    if isinstance(shares, bool) or not isinstance(shares, int) or not 1 <= shares <= max_shares(spec):
        reasons.append(Reason.because("J3", "shares", "shares must lie between 1 and {max}", max=max_shares(spec)))
    unanswered = [question.id for question in spec.declaration if not isinstance(declaration.get(question.id), bool)]
    if unanswered:
        reasons.append(Reason.because("J4", "declaration", "the health declaration is incomplete: {questions}",
                                 questions=", ".join(unanswered)))
    declared = [question.id for question in spec.declaration if question.disqualifying and declaration.get(question.id)]
    if declared:
        reasons.append(Reason.because(
            "J5", "declaration", "the health declaration rules out joining (answered yes: {questions})",
            questions=", ".join(declared),
        ))
    if last_left is not None and (on - last_left).days < spec.rejoin_after_days:
        reasons.append(Reason.because(
            "J7", "plan_code", "a member who left may join again {days} days after leaving, from {date}",
            days=spec.rejoin_after_days, date=last_left + dt.timedelta(days=spec.rejoin_after_days),
        ))
    return reasons


@dataclass(frozen=True)
class ClaimFacts:
    """What the rules need to know about one claim, read by the service from the records."""

    icd10: str
    #: The day the event happened (admission); waiting periods, age and membership are judged on it.
    event_on: dt.date
    birth: dt.date
    tier: str
    joined_on: dt.date
    protected_from: dt.date
    #: Whether the membership was in force (not suspended, removed or withdrawn) on the event day.
    active_at_event: bool
    #: Earlier claims of this membership in the event's calendar year that still count (not rejected or closed).
    claims_this_year: int
    #: What those claims are paying or were paid (approved, else assessed), fen.
    paid_this_year: int
    #: Disease groups already claimed under this membership (fixed payouts and lump sums are once per lifetime).
    groups_claimed: frozenset[str]
    #: The episode's residual in the coverage registry after every layer so far, fen.
    residual: int
    #: The residual without the out-of-catalogue cost: what is left of the in-policy self-payment (政策范围内自付).
    in_policy_residual: int
    #: The person's basic scheme (SCHEMES), for deductibles by scheme.
    scheme: str


@dataclass(frozen=True)
class Assessment:
    """The disease group, the amount the rules would pay (fen), the findings, and how the amount came about."""

    group: DiseaseGroup | None
    amount: int
    reasons: list[Reason]
    steps: dict[str, int] = field(default_factory=dict)


def deductible_for(payment: ReimbursementPayment, scheme: str) -> int:
    """The deductible (起付线) for a person of basic scheme `scheme`: by scheme where the plan says, else the plan's."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}")
    by_scheme = payment.deductible_by_scheme or {}
    for key in (scheme, _SCHEME_FALLBACK.get(scheme)):
        if key in by_scheme:
            return by_scheme[key]
    return payment.deductible


def reimbursement(
    payment: ReimbursementPayment, *, base: int, residual: int, scheme: str, paid_this_year: int
) -> tuple[int, list[Reason], dict[str, int]]:
    """报销型: (base − deductible) × rate, within the per-claim cap, what the annual cap has left, never above the
    residual; below the minimum payout nothing is paid. Returns the amount, reasons for 0, and each step."""
    steps = {"base": base, "deductible": deductible_for(payment, scheme)}
    steps["eligible"] = max(base - steps["deductible"], 0)
    amount = apply_rate(steps["eligible"], payment.rate)
    steps["at_rate"] = amount
    if payment.per_claim_cap is not None:
        amount = min(amount, payment.per_claim_cap)
    if payment.annual_cap is not None:
        steps["annual_left"] = max(payment.annual_cap - paid_this_year, 0)
        amount = min(amount, steps["annual_left"])
    amount = min(amount, residual)
    reasons = []
    if amount == 0:
        reasons.append(Reason.because("R7", "episode_id", "nothing is left to pay after the deductible of {deductible} fen",
                                 deductible=steps["deductible"]))
    elif amount < payment.min_payout:
        reasons.append(Reason.because("R8", "episode_id", "{amount} fen is below the minimum payout of {min} fen",
                                 amount=amount, min=payment.min_payout))
        amount = 0
    steps["amount"] = amount
    return amount, reasons, steps


def plan_icd10(icd10: str) -> str:
    """The code as plans list it: episodes may carry up to four subcategory digits (C34.1234), plans two."""
    head, dot, tail = icd10.strip().upper().partition(".")
    return head + dot + tail[:2] if tail else head


def groups_of(spec: PlanSpec, icd10: str) -> set[str]:
    """Every disease group covering the code (none if the plan excludes it)."""
    code = plan_icd10(icd10)
    if spec.disease_group(code) is None:
        return set()
    return {group.code for group in spec.diseases if group.contains(code)}


def lump_sums(spec: PlanSpec, icd10: str, groups_claimed: frozenset[str]) -> dict[str, int]:
    """Lump sums (一次性补助) of every group covering the code that has one and was not claimed before."""
    icd10 = plan_icd10(icd10)
    if spec.disease_group(icd10) is None:
        return {}
    return {group.code: group.lump_sum for group in spec.diseases
            if group.lump_sum and group.contains(icd10) and group.code not in groups_claimed}


def assess_claim(spec: PlanSpec, facts: ClaimFacts) -> Assessment:
    """The findings (numbered reasons) and the amount of one claim; any finding makes the amount 0.

    R1 not yet protected, R2 not covered, R3 age outside the plan, R4 limits reached,
    R5 already claimed, R6 membership not in force, R7 nothing left to pay, R8 below the minimum payout.
    """
    reasons: list[Reason] = []
    group = spec.disease_group(plan_icd10(facts.icd10))
    if not facts.active_at_event:
        reasons.append(Reason.because("R6", "membership_id", "the membership was not in force on {date}",
                                 date=facts.event_on))
    if group is None:
        reasons.append(Reason.because("R2", "episode_id", "diagnosis {icd10} is not covered by {plan}",
                                 icd10=facts.icd10, plan=spec.code))
    waits_until = facts.protected_from
    if group is not None and group.waiting_days is not None:
        waits_until = facts.joined_on + dt.timedelta(days=group.waiting_days)
    if facts.event_on < waits_until:
        reasons.append(Reason.because("R1", "episode_id", "not yet protected: cover for this disease starts on {date}",
                                 date=waits_until))
    age = age_on(facts.birth, facts.event_on)
    if age > spec.last_age:
        reasons.append(Reason.because("R3", "episode_id", "age {age} at the event is above the plan's limit of {max}",
                                 age=age, max=spec.last_age))
    payment = spec.payment
    if isinstance(payment, FixedPayment):
        if group is not None and group.code in facts.groups_claimed:
            reasons.append(Reason.because("R5", "episode_id", "{group} was already claimed under this membership",
                                     group=group.code))
    else:
        if payment.claims_per_year is not None and facts.claims_this_year >= payment.claims_per_year:
            reasons.append(Reason.because("R4", "episode_id", "the limit of {count} claims a year is reached",
                                     count=payment.claims_per_year))
        if payment.annual_cap is not None and facts.paid_this_year >= payment.annual_cap:
            reasons.append(Reason.because("R4", "episode_id", "the annual limit of {cap} fen is reached",
                                     cap=payment.annual_cap))
    if facts.residual <= 0:
        reasons.append(Reason.because("R7", "episode_id", "nothing is left to pay: the episode is fully covered"))
    if reasons:
        return Assessment(group, 0, reasons)
    if isinstance(payment, FixedPayment):
        amount = fixed_payout(spec, facts.tier, age)
        return Assessment(group, amount, [], {"age": age, "payout": amount})
    base = facts.in_policy_residual if payment.base == "in_policy_self_pay" else facts.residual
    amount, found, steps = reimbursement(payment, base=base, residual=facts.residual, scheme=facts.scheme,
                                         paid_this_year=facts.paid_this_year)
    sums = lump_sums(spec, facts.icd10, facts.groups_claimed)
    if sums:
        steps.update({f"lump_sum:{code}": value for code, value in sums.items()})
        amount = min(amount + sum(sums.values()), facts.residual)
        found = [] if amount else found
    steps["amount"] = amount
    return Assessment(group, amount, found, steps)


def jury_outcome(votes: int, supports: int, quorum: int) -> str | None:
    """评审团: undecided (None) below the quorum; then a strict majority of support approves, a tie rejects."""
    if not 0 <= supports <= votes:
        raise ValueError("supports must lie between 0 and the number of votes")
    if votes < quorum:
        return None
    return "approved" if supports * 2 > votes else "rejected"
