"""Pure layer formulas of the statutory cascade, written once for scalars and for columns.

Every formula takes an `ops` object that supplies min, max and where, so the
same code runs on Python ints (the `explain` path, one episode at a time) and
on NumPy arrays (the vectorised path over a whole table). All amounts are
integer fen, rates integer basis points, rounding by `core.money.apply_rate`.

Accumulation over a person's calendar year follows one rule, on every path:
an episode is paid its layer's entitlement — the layer's formula applied to
the year's cumulative base under the parameter set in force at the episode's
discharge, counting only this episode's increment — but never more than the
annual limit minus what the layer has already recorded for the person-year,
and never below zero. So a late-arriving earlier episode cannot be paid a cap
or a deductible a second time, a cap raised mid-year pays up to the new cap,
and a deductible lowered mid-year does not pay an earlier episode's costs
through a later, cheaper one. Formulas have slope ≤ 1, so no episode is ever
paid more than its own base.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gongji.core.money import apply_rate

LAYERS = ("basic", "critical_illness", "assistance", "inclusive")
SCHEMES = ("employee", "retiree", "resident")
ASSISTANCE_CATEGORIES = ("none", "destitute", "subsistence", "near_subsistence", "monitored")
HOSPITAL_LEVELS = (1, 2, 3)
#: Stands for "no cap" (不封顶) in the arithmetic: larger than any year's costs.
NO_CAP = 10**15


class ScalarOps:
    """Arithmetic helpers on Python ints."""

    @staticmethod
    def max(a, b):
        return a if a >= b else b

    @staticmethod
    def min(a, b):
        return a if a <= b else b

    @staticmethod
    def where(condition, if_true, if_false):
        return if_true if condition else if_false


class ArrayOps:
    """The same helpers on NumPy int64 arrays (the vectorised path)."""

    max = staticmethod(np.maximum)
    min = staticmethod(np.minimum)
    where = staticmethod(np.where)


@dataclass(frozen=True)
class Band:
    """One tier of a tiered rate: `width` fen starting `lower` fen above the threshold."""

    lower: object
    width: object
    rate_bp: object


@dataclass(frozen=True)
class FlatParams:
    """The parameter values one episode needs, resolved for its set, scheme, level and category.

    Fields are ints on the scalar path and int64 arrays on the vectorised
    path; inapplicable layers carry zero rates so they pay nothing.
    """

    class_b_selfpay_bp: object
    basic_deductible: object
    basic_later_share_bp: object
    basic_rate_bp: object
    basic_cap: object
    ci_threshold: object
    ci_bands: tuple[Band, ...]
    ci_cap: object
    assistance_deductible: object
    assistance_rate_bp: object
    assistance_cap: object
    inclusive_deductible: object
    inclusive_rate_in_bp: object
    inclusive_rate_out_bp: object
    inclusive_cap: object


def class_b_selfpay(class_b, share_bp):
    """乙类先行自付: the part of class-B costs the patient pays before any sharing."""
    return apply_rate(class_b, share_bp)


def basic_deductible(ops, deductible, later_share_bp, admission_number):
    """起付线 per admission; later admissions in the year pay a share of it."""
    return ops.where(admission_number == 1, deductible, apply_rate(deductible, later_share_bp))


def basic_claim(ops, in_policy, deductible, rate_bp):
    """基本医保 entitlement of one admission: rate × (in-policy cost above its deductible)."""
    return apply_rate(ops.max(in_policy - deductible, 0), rate_bp)


def within_limit(ops, entitlement, cap, paid_before):
    """What a layer pays now: its entitlement, within what the annual limit (年度限额) has left."""
    return ops.max(ops.min(entitlement, cap - paid_before), 0)


def tiered_benefit(ops, cumulative_selfpay, threshold, bands):
    """大病保险 on the year's cumulative in-policy self-pay: tiered rates above the threshold (before the cap)."""
    above = ops.max(cumulative_selfpay - threshold, 0)
    benefit = 0
    for band in bands:
        in_band = ops.min(ops.max(above - band.lower, 0), band.width)
        benefit = benefit + apply_rate(in_band, band.rate_bp)
    return benefit


def assistance_benefit(ops, cumulative_base, deductible, rate_bp):
    """医疗救助: rate × the year's in-policy residual above the annual deductible (before the limit)."""
    return apply_rate(ops.max(cumulative_base - deductible, 0), rate_bp)


def inclusive_benefit(ops, cumulative_in, cumulative_out, deductible, rate_in_bp, rate_out_bp):
    """惠民保: one annual deductible absorbed first by in-catalogue residual, then out-of-catalogue (before the cap)."""
    absorbed_in = ops.min(cumulative_in, deductible)
    eligible_in = cumulative_in - absorbed_in
    eligible_out = ops.max(cumulative_out - (deductible - absorbed_in), 0)
    return apply_rate(eligible_in, rate_in_bp) + apply_rate(eligible_out, rate_out_bp)


def settle_steps(ops, class_a, class_b, out_of_catalogue, p: FlatParams, year):
    """The whole cascade for one episode, as named intermediate values.

    `year` is the person-year so far, supplied by the runner:
    `year.cumulate(name, amount)` returns the running total of a base before
    and after this episode; `year.pay(layer, claim, cap)` returns what the
    layer had recorded before this episode and what it pays now
    (`within_limit`). The scalar runner keeps a dict (seeded from the database when
    an episode is settled on its own); the vectorised runner works on whole
    columns of person-years.
    """
    s = {"total": class_a + class_b + out_of_catalogue}
    s["class_b_selfpay"] = class_b_selfpay(class_b, p.class_b_selfpay_bp)
    s["in_policy"] = class_a + class_b - s["class_b_selfpay"]

    _, s["admission_number"] = year.cumulate("admissions", 1)
    s["deductible"] = basic_deductible(ops, p.basic_deductible, p.basic_later_share_bp, s["admission_number"])
    s["basic_claim"] = basic_claim(ops, s["in_policy"], s["deductible"], p.basic_rate_bp)
    s["basic_paid_before"], s["basic"] = year.pay("basic", s["basic_claim"], p.basic_cap)

    s["policy_selfpay"] = s["in_policy"] - s["basic"]
    s["policy_selfpay_before"], s["policy_selfpay_after"] = year.cumulate("policy_selfpay", s["policy_selfpay"])
    ci = [p.ci_threshold, p.ci_bands]
    s["critical_illness_claim"] = tiered_benefit(ops, s["policy_selfpay_after"], *ci) - tiered_benefit(
        ops, s["policy_selfpay_before"], *ci
    )
    s["critical_illness_paid_before"], s["critical_illness"] = year.pay(
        "critical_illness", s["critical_illness_claim"], p.ci_cap
    )

    s["assistance_base"] = s["policy_selfpay"] - s["critical_illness"]
    s["assistance_base_before"], s["assistance_base_after"] = year.cumulate("assistance_base", s["assistance_base"])
    ma = [p.assistance_deductible, p.assistance_rate_bp]
    s["assistance_claim"] = assistance_benefit(ops, s["assistance_base_after"], *ma) - assistance_benefit(
        ops, s["assistance_base_before"], *ma
    )
    s["assistance_paid_before"], s["assistance"] = year.pay("assistance", s["assistance_claim"], p.assistance_cap)

    s["catalogue_residual"] = s["class_b_selfpay"] + s["assistance_base"] - s["assistance"]
    s["catalogue_residual_before"], s["catalogue_residual_after"] = year.cumulate(
        "catalogue_residual", s["catalogue_residual"]
    )
    s["out_of_catalogue_before"], s["out_of_catalogue_after"] = year.cumulate("out_of_catalogue", out_of_catalogue)
    hmb = [p.inclusive_deductible, p.inclusive_rate_in_bp, p.inclusive_rate_out_bp]
    s["inclusive_claim"] = inclusive_benefit(
        ops, s["catalogue_residual_after"], s["out_of_catalogue_after"], *hmb
    ) - inclusive_benefit(ops, s["catalogue_residual_before"], s["out_of_catalogue_before"], *hmb)
    s["inclusive_paid_before"], s["inclusive"] = year.pay("inclusive", s["inclusive_claim"], p.inclusive_cap)

    s["residual"] = s["total"] - s["basic"] - s["critical_illness"] - s["assistance"] - s["inclusive"]
    return s
