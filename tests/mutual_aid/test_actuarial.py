"""The actuarial view: the pure core (incidence, expected share, projection, the adverse-selection flag) for any
numbers, the reported 2019–2020 rise, and the service and periods page on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update

from gongji.core.db import transaction
from gongji.episodes.models import Episode, Person
from gongji.mutual_aid import actuarial
from gongji.mutual_aid.actuarial import (
    THRESHOLD_BP,
    adverse_selection,
    age_mix,
    estimate_incidence,
    expected_cost,
    project_shares,
    to_fen,
    year_fraction,
)
from gongji.core.persistence import CHINA_TIME
from gongji.mutual_aid.models import Claim, Membership, Period

BANDS = 6
GROUPS = 3
HALF_MONTH = 1 / 24

mixes = st.lists(st.integers(0, 5_000), min_size=BANDS, max_size=BANDS).filter(any).map(np.array)
rates = st.lists(st.floats(0, 0.02), min_size=BANDS * GROUPS, max_size=BANDS * GROUPS).map(
    lambda values: np.array(values).reshape(BANDS, GROUPS))
payouts = st.lists(st.integers(0, 300_000_00), min_size=BANDS * GROUPS, max_size=BANDS * GROUPS).map(
    lambda values: np.array(values, dtype=float).reshape(BANDS, GROUPS))
fee_rates = st.integers(0, 2_000)
cohorts = st.dictionaries(st.integers(1940, 2024), st.integers(1, 1_000), min_size=1, max_size=30)


# --- the pure core --------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(mix=mixes, incidence=rates, payout=payouts, factor=st.integers(1, 20), fee=fee_rates,
       years=st.lists(st.floats(0.01, 1), min_size=1, max_size=8))
def test_projection_scales_linearly_with_incidence_in_whole_fen(mix, incidence, payout, factor, fee, years):
    base = project_shares([mix] * len(years), incidence, payout, years, fee)
    scaled = project_shares([mix] * len(years), incidence * factor, payout, years, fee)
    assert all(type(share) is int for share in base + scaled)
    # Each side is rounded once, half up: c·round(x) and round(c·x) differ by at most (c + 1) / 2.
    assert all(abs(big - factor * small) <= (factor + 1) / 2 for small, big in zip(base, scaled, strict=True))


@settings(max_examples=60, deadline=None)
@given(mix=mixes, incidence=rates, payout=payouts, fee=fee_rates, horizon=st.integers(1, 12))
def test_an_unchanged_mix_and_incidence_give_a_flat_projection(mix, incidence, payout, fee, horizon):
    shares = project_shares([mix] * horizon, incidence, payout, [HALF_MONTH] * horizon, fee)
    assert len(set(shares)) == 1
    expected = (mix / mix.sum()) @ (incidence * payout).sum(axis=1) * HALF_MONTH * (1 + fee / 10_000)
    assert shares[0] == to_fen(expected)


@settings(max_examples=60, deadline=None)
@given(birth_years=cohorts, at=st.floats(2019, 2030), later=st.floats(0, 10))
def test_ageing_keeps_every_member_and_raises_the_share_when_older_bands_cost_more(birth_years, at, later):
    young, old = age_mix(birth_years, at, BANDS), age_mix(birth_years, at + later, BANDS)
    assert young.sum() == pytest.approx(sum(birth_years.values())) == pytest.approx(old.sum())
    mean_age_band = np.arange(BANDS)
    assert old @ mean_age_band >= young @ mean_age_band - 1e-6
    rising = np.tile(np.linspace(0.001, 0.01, BANDS)[:, None], (1, GROUPS))
    payout = np.full((BANDS, GROUPS), 100_000.0)
    assert expected_cost(old, rising, payout, 1, 800) >= expected_cost(young, rising, payout, 1, 800) - 1e-6


def test_a_cohort_is_spread_over_its_year_of_birth():
    # Born in 1985, seen on 2025-07-02: aged 39.5 to 40.5, half in 30–39 and half in 40–49.
    mix = age_mix({1985: 100}, year_fraction(dt.date(2025, 7, 2)), BANDS)
    assert mix[3] == pytest.approx(50, abs=0.2) and mix[4] == pytest.approx(50, abs=0.2)
    # Anyone older than the last band stays in it; anyone younger than the first in it.
    assert age_mix({1900: 7, 2030: 3}, 2025.0, BANDS).tolist() == [3, 0, 0, 0, 0, 7]


@settings(max_examples=60, deadline=None)
@given(cases=st.lists(st.integers(0, 50), min_size=BANDS * GROUPS, max_size=BANDS * GROUPS),
       exposure=st.lists(st.floats(0.1, 1e5), min_size=BANDS, max_size=BANDS), prior=st.floats(1, 1e4))
def test_incidence_is_never_zero_and_leans_on_the_group_where_exposure_is_thin(cases, exposure, prior):
    counts, years = np.array(cases, dtype=float).reshape(BANDS, GROUPS), np.array(exposure)
    rates = estimate_incidence(counts, years, prior)
    assert (rates > 0).all()
    pooled = (counts.sum(axis=0) + 0.5) / years.sum()
    weight = years[:, None] / (years[:, None] + prior)  # credibility of each cell
    assert rates == pytest.approx(weight * counts / years[:, None] + (1 - weight) * pooled)
    # With the prior's weight gone, each cell is its own observed rate.
    assert estimate_incidence(counts, years, 1e-12) == pytest.approx(counts / years[:, None], rel=1e-6, abs=1e-6)


def test_money_is_rounded_once_half_up():
    assert [to_fen(x) for x in (0.5, 1.5, 2.5, 2.4999, 120.83333)] == [1, 2, 3, 2, 121]


@settings(max_examples=60, deadline=None)
@given(growth=st.floats(-0.3, 1.0), explained=st.floats(-0.1, 0.3), level=st.floats(50, 5_000))
def test_the_flag_measures_growth_beyond_what_the_mix_explains(growth, explained, level):
    times = [2019.5 + k * HALF_MONTH for k in range(25)]
    actual = [level * (1 + growth) ** (t - times[0]) for t in times]
    model = [30 * (1 + explained) ** (t - times[0]) for t in times]
    flag = adverse_selection(times, actual, model)
    assert abs(flag.actual_bp - round(growth * 10_000)) <= 1 and abs(flag.explained_bp - round(explained * 10_000)) <= 1
    assert flag.excess_bp == flag.actual_bp - flag.explained_bp
    assert flag.raised == (flag.excess_bp > THRESHOLD_BP)
    # The same growth explained in full by the mix is never flagged.
    assert not adverse_selection(times, actual, [value / 7 for value in actual]).raised


def test_too_little_history_is_not_judged():
    assert adverse_selection([2020.0, 2020.1], [100, 200], [100, 100]) is None
    assert adverse_selection([2020.0, 2020.05, 2020.1], [100, 150, 200], [100, 100, 100]) is None  # < a quarter
    assert adverse_selection([2020.0, 2020.2, 2020.4], [0, 0, 0], [100, 100, 100]) is None


# --- the reported case: 29 yuan a year in 2019, 41.12 by mid-2020 -----------------------------------


def _reported_case(mixes_by_period: list[np.ndarray], incidence: np.ndarray):
    """Twice-monthly shares rising from 29 yuan a year (mid-2019) to 41.12 a year (mid-2020), in fen."""
    days = [dt.date(2019, 7, 7) + dt.timedelta(days=round(k * 365.25 / 24)) for k in range(25)]
    times = [year_fraction(day) for day in days]
    actual = [to_fen(2_900 / 24 * (4_112 / 2_900) ** (t - times[0])) for t in times]
    payout = np.full(incidence.shape, 300_000_00.0)
    explained = [expected_cost(mix, incidence, payout, HALF_MONTH, 800) for mix in mixes_by_period]
    return adverse_selection(times, actual, explained)


#: Incidence rising steeply with age: the 50s claim ten times as often as the 20s.
STEEP = np.tile(np.array([0.2, 0.2, 0.4, 1.0, 2.0, 4.0])[:, None] * 1e-5, (1, GROUPS))


def test_the_reported_rise_with_a_steady_age_mix_is_flagged():
    members = {year: 1_000 for year in range(1961, 2019)}  # a broad membership, one year older by the end
    steady = [age_mix(members, 2019.5 + k / 24, BANDS) for k in range(25)]
    flag = _reported_case(steady, STEEP)
    assert flag.raised
    assert 4_100 <= flag.actual_bp <= 4_250  # 41.12 / 29 − 1 = 41.8% a year
    assert flag.explained_bp < 1_000 and flag.excess_bp > 3_000


def test_the_same_rise_explained_by_an_ageing_mix_is_not_flagged():
    # Members shift from the 20s to the 50s: the expected share at fixed incidence rises as fast as the actual.
    young, old = np.array([0, 0, 1.0, 0, 0, 0]), np.array([0, 0, 0, 0, 0, 1.0])
    target = 4_112 / 2_900  # the rise the mix must explain over the year
    cost = (STEEP.sum(axis=1) * 300_000_00)
    weights = [(cost[2] * (target ** (k / 24) - 1)) / (cost[5] - cost[2]) for k in range(25)]
    ageing = [(1 - w) * young + w * old for w in weights]
    flag = _reported_case(ageing, STEEP)
    assert not flag.raised and abs(flag.excess_bp) < 100
    assert flag.explained_bp > 4_000


# --- the service and the page, through the database -----------------------------------------------

PLAN = "online-comprehensive"  # bands 0–39 pay 300,000 yuan, 40–59 pay 100,000; fee 8%
TODAY = dt.date(2024, 7, 1)
#: Birth years whose cohorts lie wholly inside one band all through 2024: 20–29, 30–39, 40–49.
COHORTS = {2002: 20, 1991: 30, 1976: 30}


def _cutoffs() -> list[dt.datetime]:
    days = [dt.date(2024, month, day) for month in range(1, 7) for day in (7, 21)]
    return [dt.datetime.combine(day, dt.time(), CHINA_TIME).astimezone(dt.UTC) for day in days]


def _person(session, birth_year: int) -> int:
    return session.execute(insert(Person).values(
        person_key=secrets.token_hex(16), id_number_enc="-", name_enc="-", masked_id="-", masked_name="-",
        birth_year=birth_year, sex="M", scheme="resident", assistance_category="none", inclusive_enrolled=False,
        region="330100",
    ).returning(Person.id)).scalar_one()


def _member(session, birth_year: int, status: str = "protected", left_at: dt.datetime | None = None) -> int:
    joined = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    return session.execute(insert(Membership).values(
        plan_code=PLAN, person_id=_person(session, birth_year), tier="standard", shares=1, status=status,
        joined_at=joined, protected_from=dt.date(2023, 4, 1), status_changed_at=joined, left_at=left_at,
        declaration={}, account_code="-",
    ).returning(Membership.id)).scalar_one()


def _claim(session, membership_id: int, period_id: int, group: str, amount: int) -> None:
    person_id = session.get(Membership, membership_id).person_id
    episode_id = session.execute(insert(Episode).values(
        person_id=person_id, admission_date=dt.date(2023, 12, 1), discharge_date=dt.date(2023, 12, 10),
        hospital_level=3, icd10="C34.1", class_a=amount, class_b=0, out_of_catalogue=0,
    ).returning(Episode.id)).scalar_one()
    session.execute(insert(Claim).values(
        plan_code=PLAN, plan_version=1, membership_id=membership_id, episode_id=episode_id, disease_group=group,
        status="paid", amount_assessed=amount, amount_approved=amount, reasons=[], filed_at=dt.datetime(
            2023, 12, 15, tzinfo=dt.UTC), filed_by="test", notice_until=dt.date(2024, 1, 1), period_id=period_id,
    ))


def _rising(k: int) -> int:
    """Shares rising 50% a year, twice a month."""
    return to_fen(150 * 1.5 ** (k / 24))


def build_history(session) -> list[int]:
    """80 members in three cohorts, one withdrawn long ago, twelve apportioned periods of 2024 with rising shares,
    and four cases in the 40s and one in the 30s."""
    members = {year: [_member(session, year) for _ in range(count)] for year, count in COHORTS.items()}
    _member(session, 1965, "withdrawn", left_at=dt.datetime(2023, 6, 1, tzinfo=dt.UTC))
    period_ids = []
    for k, cutoff in enumerate(_cutoffs()):
        period_ids.append(session.execute(insert(Period).values(
            plan_code=PLAN, plan_version=1, number=k + 1, cutoff_at=cutoff, charge_on=cutoff.date() + dt.timedelta(7),
            status="collected", members=80, share=_rising(k), charged=80 * _rising(k), apportioned_at=cutoff,
        ).returning(Period.id)).scalar_one())
    for k in (1, 4, 7, 10):
        _claim(session, members[1976][k], period_ids[k], "cancer", 100_000_00)
    _claim(session, members[1991][0], period_ids[6], "heart", 300_000_00)
    return period_ids


@pytest.mark.parametrize("shares", ["rising", "flat"])
def test_the_service_reads_the_history_projects_and_flags(ma, shares):
    with transaction(ma) as session:
        period_ids = build_history(session)
        if shares == "flat":
            session.execute(update(Period).where(Period.id.in_(period_ids)).values(share=150))
        view = actuarial.actuarial_view(session, PLAN, TODAY, horizon=4)

    assert view.bands == ("0–9", "10–19", "20–29", "30–39", "40–49", "50–59")
    assert view.age_mix == {"0–9": 0, "10–19": 0, "20–29": 20, "30–39": 30, "40–49": 30, "50–59": 0}
    assert view.groups == ("cancer", "heart", "stroke", "uraemia", "leukaemia")
    assert [point.number for point in view.history] == list(range(1, 13))
    assert [point.share for point in view.history] == ([_rising(k) for k in range(12)] if shares == "rising"
                                                       else [150] * 12)
    # Four cancers in 30 members of the 40s against none in the 30s; nobody in the 50s, yet not zero there.
    rates = view.incidence
    assert rates["40–49"]["cancer"] > rates["30–39"]["cancer"] > 0 and rates["50–59"]["stroke"] > 0
    assert rates["30–39"]["heart"] > rates["40–49"]["heart"]
    # Cost per member-year: Σ bands (mix × Σ groups λ × payout) × (1 + 8%), for a half-month period.
    mix = np.array([0, 0, 20, 30, 30, 0]) / 80
    payout = np.array([[300_000_00] * 5] * 4 + [[100_000_00] * 5] * 2, dtype=float)
    payout[4, 0] = 100_000_00  # observed cancer payout in the 40s
    payout[3, 1] = 300_000_00  # observed heart payout in the 30s
    table = np.array([[rates[band][group] for group in view.groups] for band in view.bands])
    per_year = mix @ (table * payout).sum(axis=1) * 1.08
    projected = [point.share for point in view.projection]
    assert [point.cutoff_day for point in view.projection] == [dt.date(2024, 7, 7), dt.date(2024, 7, 21),
                                                               dt.date(2024, 8, 7), dt.date(2024, 8, 21)]
    lengths = [16, 14, 17, 14]  # days since the calendar's previous cut-off
    assert projected == [to_fen(per_year * days / 365.25) for days in lengths]
    assert view.history[5].expected == to_fen(per_year * 14 / 365.25)  # 2024-03-07 → 03-21
    if shares == "rising":
        assert view.flag.raised and 4_800 <= view.flag.actual_bp <= 5_200 and view.flag.excess_bp > 3_000
    else:
        assert not view.flag.raised and view.flag.actual_bp == 0


def test_the_periods_page_shows_the_projection_the_age_mix_and_the_flag(app, client):
    with app.state.gongji.transaction() as session:
        build_history(session)
    page = client.get(f"/mutual-aid/plans/{PLAN}/periods", headers={"Accept": "text/html"})
    assert page.status_code == 200
    chart = json.loads(re.search(r'id="share-chart-data">(.*?)</script>', page.text, re.S).group(1))
    assert len(chart["projection"]) == len(chart["periods"]) == 12 + 6
    assert chart["projection"][:11] == [None] * 11 and chart["projection"][11] == chart["share"][11]
    assert 'id="adverse-selection"' in page.text and 'id="age-mix"' in page.text
    table = page.text[page.text.index('id="age-mix"'):page.text.index('id="projection"')]
    assert sum(map(int, re.findall(r'<td class="num">(\d+)</td>', table))) == 80  # the withdrawn member is not
    # A plan funded by contributions has no periods to project.
    assert 'id="actuarial"' not in client.get("/mutual-aid/plans/union-hospital/periods",
                                              headers={"Accept": "text/html"}).text
