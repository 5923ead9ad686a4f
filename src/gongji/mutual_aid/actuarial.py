"""The actuarial view of a post-event plan (精算视角): incidence, expected share, projection, adverse selection.

The pure core takes numbers and gives numbers (NumPy, no database):

- Ages. Only the year of birth is stored, so a birth-year cohort is taken as born evenly over its year: at time
  `t` (a fractional calendar year) its members are aged between t − year − 1 and t − year, and a cohort that
  straddles a ten-year band boundary is split between the two bands by the overlap. The lowest band takes
  anyone younger, the highest anyone older, so a mix always keeps every member. Ageing the mix is evaluating
  it at a later `t`: the share of a band moves smoothly as cohorts cross its boundary.
- Incidence (发生率) per member-year of each (age band, disease group) cell is a credibility estimate:
  λ = (cases + k·λ_group) / (exposure + k), where exposure is members sharing at each cut-off × the period's
  length in years, k (`prior_years`) is the weight of the prior in member-years, and the prior λ_group is the
  group's rate pooled over every band, (its cases + ½) / all exposure — the half case (Jeffreys) keeps a group
  never yet claimed from costing nothing. A thin cell leans on its group; a cell with much exposure on itself.
- Expected cost per member of a period = Σ over bands (share of members in the band × Σ over groups
  (λ × mean payout of the band and group)) × period length in years × (1 + fee rate). Money leaves the core as
  integer fen, rounded once, half up.
- Adverse selection (逆选择): the share per member's annual growth over a window (a log-linear least-squares
  fit) against the growth the age mix alone explains (the expected share at fixed incidence under each
  period's age mix). More than `threshold_bp` a year of unexplained growth raises the flag.

`actuarial_view` reads the database (counts by birth year with GROUP BY, cases by birth year and group) and
feeds the core; the periods page draws it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from gongji.core.errors import InvalidInput
from gongji.core.persistence import china_day
from gongji.episodes.models import Person
from gongji.mutual_aid.apportionment import next_period_dates
from gongji.mutual_aid.models import Claim, Membership, Period
from gongji.mutual_aid.plans import FixedPayment, PlanSpec, PostEventFunding, plan_at

BAND_YEARS = 10
DAYS_PER_YEAR = 365.25
#: Weight of the prior in member-years: a cell with this much exposure is believed half itself, half its group.
PRIOR_YEARS = 500.0
#: Unexplained growth of the share per member that raises the flag: 10 percentage points a year.
THRESHOLD_BP = 1000
#: A growth rate needs at least three periods spanning a quarter of a year.
MIN_POINTS = 3
MIN_SPAN_YEARS = 0.25
OTHER_GROUP = "other"


# --- the pure core --------------------------------------------------------------------------------


def band_count(last_age: int) -> int:
    """Ten-year bands 0–9, 10–19, … up to the one holding the plan's last age."""
    return last_age // BAND_YEARS + 1


def band_labels(last_age: int) -> tuple[str, ...]:
    highs = [min(low + BAND_YEARS - 1, last_age) for low in range(0, band_count(last_age) * BAND_YEARS, BAND_YEARS)]
    return tuple(f"{high - high % BAND_YEARS}–{high}" if high % BAND_YEARS else str(high) for high in highs)


def year_fraction(day: dt.date) -> float:
    """2020-07-02 → 2020.5: a date as a fractional calendar year."""
    start = dt.date(day.year, 1, 1)
    return day.year + (day - start).days / (start.replace(year=day.year + 1) - start).days


def age_mix(birth_years: Mapping[int, float], at: float, bands: int) -> np.ndarray:
    """Members per age band at time `at` (fractional year), each birth-year cohort spread evenly over its year."""
    mix = np.zeros(bands)
    if not birth_years:
        return mix
    years = np.fromiter(birth_years.keys(), dtype=float)
    counts = np.fromiter(birth_years.values(), dtype=float)
    youngest, oldest = at - years - 1.0, at - years
    edges = np.arange(bands + 1, dtype=float) * BAND_YEARS
    low, high = edges[:-1].copy(), edges[1:].copy()
    low[0], high[-1] = -np.inf, np.inf
    overlap = np.minimum(oldest[:, None], high) - np.maximum(youngest[:, None], low)
    return counts @ np.clip(overlap, 0.0, None)


def estimate_incidence(cases: np.ndarray, exposure: np.ndarray, prior_years: float = PRIOR_YEARS) -> np.ndarray:
    """Cases per member-year by (band, group): each cell credibility-weighted toward its group's pooled rate.

    `cases` is (bands, groups), `exposure` (bands,) in member-years. With no exposure at all nothing is known
    and every rate is zero.
    """
    cases = np.asarray(cases, dtype=float)
    exposure = np.asarray(exposure, dtype=float)
    total = exposure.sum()
    if total <= 0:
        return np.zeros_like(cases)
    pooled = (cases.sum(axis=0) + 0.5) / total
    return (cases + prior_years * pooled[None, :]) / (exposure[:, None] + prior_years)


def expected_cost(mix: np.ndarray, incidence: np.ndarray, mean_payout: np.ndarray, years: float,
                  fee_rate_bp: int) -> float:
    """Expected payouts and fee per member over `years` (fen, unrounded) under the age mix `mix`."""
    members = float(np.sum(mix))
    if members <= 0:
        return 0.0
    per_band = (np.asarray(incidence, dtype=float) * np.asarray(mean_payout, dtype=float)).sum(axis=1)
    return float(np.dot(np.asarray(mix, dtype=float) / members, per_band)) * years * (1 + fee_rate_bp / 10_000)


def to_fen(value: float) -> int:
    """The one rounding of the core: half up to the fen."""
    return int(Decimal(repr(float(value))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def project_shares(mixes: Sequence[np.ndarray], incidence: np.ndarray, mean_payout: np.ndarray,
                   years: Sequence[float], fee_rate_bp: int) -> list[int]:
    """The expected share per member (fen) of each coming period, given its age mix and length in years."""
    return [to_fen(expected_cost(mix, incidence, mean_payout, length, fee_rate_bp))
            for mix, length in zip(mixes, years, strict=True)]


def annual_growth(times: Sequence[float], values: Sequence[float]) -> float:
    """Growth a year of positive `values` at `times` (years): exp(slope of the least-squares line of ln value) − 1."""
    slope = np.polyfit(np.asarray(times, dtype=float), np.log(np.asarray(values, dtype=float)), 1)[0]
    return math.expm1(float(slope))


def _bp(rate: float) -> int:
    return to_fen(rate * 10_000)


@dataclass(frozen=True)
class AdverseSelection:
    """Growth a year (basis points) of the actual share and of the share the age mix explains, over `periods`."""

    periods: int
    since: float
    until: float
    actual_bp: int
    explained_bp: int
    excess_bp: int
    threshold_bp: int

    @property
    def raised(self) -> bool:
        return self.excess_bp > self.threshold_bp


def adverse_selection(times: Sequence[float], actual: Sequence[float], explained: Sequence[float], *,
                      threshold_bp: int = THRESHOLD_BP) -> AdverseSelection | None:
    """Compare the actual share's growth with the growth the age mix explains; None when too little to judge.

    Periods where either share is zero carry no growth information (the logarithm) and are left out.
    """
    kept = [(t, a, e) for t, a, e in zip(times, actual, explained, strict=True) if a > 0 and e > 0]
    if len(kept) < MIN_POINTS or kept[-1][0] - kept[0][0] < MIN_SPAN_YEARS:
        return None
    at, real, model = zip(*kept, strict=True)
    actual_bp, explained_bp = _bp(annual_growth(at, real)), _bp(annual_growth(at, model))
    return AdverseSelection(len(kept), at[0], at[-1], actual_bp, explained_bp, actual_bp - explained_bp,
                            threshold_bp)


# --- the service ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryPoint:
    number: int
    cutoff_day: dt.date
    members: int
    share: int
    #: The share the model expects under this period's age mix at today's incidence (fen).
    expected: int


@dataclass(frozen=True)
class ProjectedPoint:
    cutoff_day: dt.date
    share: int


@dataclass(frozen=True)
class ActuarialView:
    plan_code: str
    today: dt.date
    bands: tuple[str, ...]
    groups: tuple[str, ...]
    #: Members sharing at the next cut-off by age band (whole members; cohorts split by largest remainder).
    age_mix: dict[str, int]
    #: Cases per member-year: band → group → rate.
    incidence: dict[str, dict[str, float]]
    history: list[HistoryPoint]
    projection: list[ProjectedPoint]
    flag: AdverseSelection | None


def _sharing_at(plan_code: str, cutoff_at: dt.datetime):
    """Apportionment's rule: protected at the cut-off instant and not gone by then (see apportionment.py)."""
    return and_(
        Membership.plan_code == plan_code,
        Membership.protected_from <= china_day(cutoff_at),
        Membership.joined_at < cutoff_at,
        or_(Membership.status.in_(("waiting", "protected", "suspended")),
            and_(Membership.status.in_(("removed", "withdrawn")), Membership.left_at > cutoff_at)),
    )


def _birth_years(session: Session, plan_code: str, cutoff_at: dt.datetime) -> dict[int, int]:
    rows = session.execute(
        select(Person.birth_year, func.count()).join(Membership, Membership.person_id == Person.id)
        .where(_sharing_at(plan_code, cutoff_at)).group_by(Person.birth_year)
    ).all()
    return {int(year): int(count) for year, count in rows}


def _cases(session: Session, plan_code: str) -> list[tuple[int, int, str, int, int]]:
    """(period id, birth year, disease group, cases, payouts) of every claim apportioned in a period."""
    rows = session.execute(
        select(Claim.period_id, Person.birth_year, Claim.disease_group, func.count(),
               func.coalesce(func.sum(Claim.amount_approved), 0))
        .join(Membership, Membership.id == Claim.membership_id).join(Person, Person.id == Membership.person_id)
        .where(Claim.plan_code == plan_code, Claim.period_id.is_not(None))
        .group_by(Claim.period_id, Person.birth_year, Claim.disease_group)
    ).all()
    return [(int(p), int(y), g or OTHER_GROUP, int(n), int(s)) for p, y, g, n, s in rows]


def _fallback_payouts(spec: PlanSpec, observed_sum: np.ndarray, observed_n: np.ndarray) -> np.ndarray:
    """A cell's mean payout when it has no case: the plan's fixed standard payout averaged over the band's ages;
    under reimbursement the group's observed mean, else the plan's."""
    bands, groups = observed_sum.shape
    if isinstance(spec.payment, FixedPayment):
        by_age = {age: band.standard for band in spec.payment.bands
                  for age in range(band.from_age, band.to_age + 1)}
        means = []
        for band in range(bands):
            ages = [by_age[age] for age in range(band * BAND_YEARS, (band + 1) * BAND_YEARS) if age in by_age]
            means.append(sum(ages) / len(ages) if ages else 0.0)
        return np.repeat(np.array(means)[:, None], groups, axis=1)
    overall = observed_sum.sum() / observed_n.sum() if observed_n.sum() > 0 else 0.0
    group_n, group_sum = observed_n.sum(axis=0), observed_sum.sum(axis=0)
    group_mean = np.where(group_n > 0, group_sum / np.where(group_n > 0, group_n, 1), overall)
    return np.repeat(group_mean[None, :], bands, axis=0)


def _years(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 86_400 / DAYS_PER_YEAR


def _next_cutoffs(spec: PlanSpec, today: dt.date, count: int) -> list[dt.datetime]:
    """The plan calendar's next `count` cut-offs after `today`."""
    cutoffs: list[dt.datetime] = []
    day = today
    for _ in range(count):
        cutoffs.append(next_period_dates(spec, day)[0])
        day = china_day(cutoffs[-1])
    return cutoffs


def _previous_cutoff(spec: PlanSpec, cutoff_at: dt.datetime) -> dt.datetime:
    """The calendar's cut-off before `cutoff_at`, so the first projected period has the calendar's length."""
    earlier = next_period_dates(spec, china_day(cutoff_at) - dt.timedelta(days=32))[0]
    while (following := next_period_dates(spec, china_day(earlier))[0]) < cutoff_at:
        earlier = following
    return earlier


def _whole_members(mix: np.ndarray) -> list[int]:
    """Fractional members per band as whole members summing to the total (largest remainder)."""
    total = round(float(mix.sum()))
    floors = np.floor(mix).astype(int)
    order = np.argsort(-(mix - floors), kind="stable")
    floors[order[:max(total - int(floors.sum()), 0)]] += 1
    return floors.tolist()


def actuarial_view(session: Session, plan_code: str, today: dt.date, horizon: int = 6, *,
                   window_days: int = 365, threshold_bp: int = THRESHOLD_BP,
                   prior_years: float = PRIOR_YEARS) -> ActuarialView:
    """The plan's share per member over time beside what its age mix explains, the next `horizon` periods'
    projected share, today's age mix, and the adverse-selection flag over the last `window_days`."""
    if horizon < 0:
        raise InvalidInput("horizon {horizon} must not be negative", "horizon", values={"horizon": horizon})
    _, spec = plan_at(session, plan_code, today)
    if not isinstance(spec.funding, PostEventFunding):
        raise InvalidInput("plan {code} is not shared after the event", "plan_code", values={"code": plan_code})
    fee_rate = spec.funding.fee_rate
    bands = band_count(spec.last_age)
    labels = band_labels(spec.last_age)
    nominal_years = 1 / (12 * len(spec.calendar.announce_days))

    periods = session.execute(
        select(Period.id, Period.number, Period.cutoff_at, Period.members, Period.share)
        .where(Period.plan_code == plan_code, Period.status != "open").order_by(Period.number)
    ).all()
    cases = _cases(session, plan_code)
    groups = [group.code for group in spec.diseases]
    groups += sorted({group for *_, group, _n, _s in cases} - set(groups))
    column = {group: index for index, group in enumerate(groups)}

    mixes, lengths, times = [], [], []
    exposure = np.zeros(bands)
    previous: dt.datetime | None = None
    for period in periods:
        at = year_fraction(china_day(period.cutoff_at))
        length = _years(previous, period.cutoff_at) if previous else nominal_years
        mix = age_mix(_birth_years(session, plan_code, period.cutoff_at), at, bands)
        mixes.append(mix)
        lengths.append(length)
        times.append(at)
        exposure += mix * length
        previous = period.cutoff_at

    when = {period.id: at for period, at in zip(periods, times, strict=True)}
    observed_n = np.zeros((bands, len(groups)))
    observed_sum = np.zeros((bands, len(groups)))
    for period_id, birth_year, group, count, total in cases:
        if period_id in when:
            spread = age_mix({birth_year: 1.0}, when[period_id], bands)
            observed_n[:, column[group]] += spread * count
            observed_sum[:, column[group]] += spread * total
    incidence = estimate_incidence(observed_n, exposure, prior_years)
    fallback = _fallback_payouts(spec, observed_sum, observed_n)
    mean_payout = np.where(observed_n > 0, observed_sum / np.where(observed_n > 0, observed_n, 1), fallback)

    explained = [expected_cost(mix, incidence, mean_payout, length, fee_rate)
                 for mix, length in zip(mixes, lengths, strict=True)]
    history = [HistoryPoint(period.number, china_day(period.cutoff_at), period.members, period.share, to_fen(cost))
               for period, cost in zip(periods, explained, strict=True)]

    # Who shares at the next cut-off, aged forward over the coming periods; nothing observed, nothing projected.
    cutoffs = _next_cutoffs(spec, today, max(horizon, 1))
    current = _birth_years(session, plan_code, cutoffs[0])
    mix_now = age_mix(current, year_fraction(china_day(cutoffs[0])), bands)
    cutoffs = cutoffs[:horizon] if exposure.sum() > 0 else []
    starts = [_previous_cutoff(spec, cutoffs[0]), *cutoffs] if cutoffs else []
    projected = project_shares(
        [age_mix(current, year_fraction(china_day(cutoff)), bands) for cutoff in cutoffs], incidence, mean_payout,
        [_years(start, end) for start, end in zip(starts, cutoffs, strict=False)], fee_rate,
    )

    window_start = history[-1].cutoff_day - dt.timedelta(days=window_days) if history else today
    window = [index for index, point in enumerate(history) if point.cutoff_day > window_start]
    flag = adverse_selection([times[i] for i in window], [history[i].share for i in window],
                             [explained[i] for i in window], threshold_bp=threshold_bp)
    return ActuarialView(
        plan_code=plan_code, today=today, bands=labels, groups=tuple(groups),
        age_mix=dict(zip(labels, _whole_members(mix_now), strict=True)),
        incidence={label: {group: float(incidence[b, g]) for g, group in enumerate(groups)}
                   for b, label in enumerate(labels)},
        history=history,
        projection=[ProjectedPoint(china_day(cutoff), share) for cutoff, share in zip(cutoffs, projected, strict=True)],
        flag=flag,
    )
