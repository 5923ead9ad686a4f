"""Yearly limits are checked against what is recorded for the person-year, whatever order episodes arrive in.

`settle_episode` against `recorded_year(...)` is how the database path settles
one episode on its own; these tests drive it directly, in any order.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongji.core.money import parse_yuan
from gongji.rules.cascade import (
    LAYERS,
    EpisodeInput,
    RecordedEpisode,
    explain_person_year,
    recorded_year,
    settle_episode,
)
from gongji.rules.cascade import default_book
from gongji.rules.params import flat_params

BOOK = default_book()


def episode(episode_id: str, discharge: dt.date, class_a: str, *, scheme="employee", region="330100",
            category="none", enrolled=False, level=3, class_b="0", out="0") -> EpisodeInput:
    return EpisodeInput(
        episode_id=episode_id, person_key="P", scheme=scheme, assistance_category=category,
        inclusive_enrolled=enrolled, region=region, hospital_level=level,
        admission_date=discharge - dt.timedelta(days=5), discharge_date=discharge, icd10="C34.9",
        class_a=parse_yuan(class_a), class_b=parse_yuan(class_b), out_of_catalogue=parse_yuan(out),
    )


def settle_in_order(episodes: list[EpisodeInput], order: list[int], book=BOOK) -> dict[str, dict[str, int]]:
    """Settle each episode on its own, in `order`, against what the earlier ones recorded."""
    recorded: list[RecordedEpisode] = []
    paid = {}
    for index in order:
        ep = episodes[index]
        settlement = settle_episode(ep, book, recorded_year(recorded, book))
        recorded.append(RecordedEpisode(ep, settlement.parameter_set, {k: settlement.amounts[k] for k in LAYERS}))
        paid[ep.episode_id] = settlement.amounts
    return paid


def test_backdated_january_episode_does_not_get_the_cap_twice():
    """The reproduction: June settled first, then January of the same year; each once claimed the full cap."""
    june = episode("JUN", dt.date(2024, 6, 20), "1,000,000")
    january = episode("JAN", dt.date(2024, 1, 20), "1,000,000")
    cap = flat_params(BOOK.resolve("330100", dt.date(2024, 6, 20)), "employee", 3, "none", False).basic_cap
    paid = settle_in_order([june, january], [0, 1])
    assert paid["JUN"]["basic"] == cap
    assert paid["JAN"]["basic"] == 0
    assert sum(amounts["basic"] for amounts in paid.values()) == cap


def test_backdated_episode_sees_the_deductible_already_taken():
    """A late January stay is the year's second admission on record, so it gets the later-admission deductible."""
    june = episode("JUN", dt.date(2024, 6, 20), "5,000", level=3)
    january = episode("JAN", dt.date(2024, 1, 20), "5,000", level=3)
    paid = settle_in_order([june, january], [0, 1])
    first = settle_in_order([january], [0])["JAN"]["basic"]
    assert paid["JAN"]["basic"] > first


def test_assistance_limit_is_shared_by_episodes_arriving_in_any_order():
    kwargs = {"scheme": "resident", "category": "subsistence", "region": "510100"}
    episodes = [episode(f"E{m}", dt.date(2024, m, 15), "300,000", **kwargs) for m in (9, 3, 6)]
    limit = flat_params(BOOK.resolve("510100", dt.date(2024, 3, 15)), "resident", 3, "subsistence", False)
    paid = settle_in_order(episodes, [0, 1, 2])
    assert sum(p["assistance"] for p in paid.values()) == limit.assistance_cap


def test_cap_raised_on_1_july_pays_the_new_cap_minus_what_was_paid(book_with_midyear_change):
    book = book_with_midyear_change
    march = episode("MAR", dt.date(2024, 3, 10), "2,000,000", region="510100")
    august = episode("AUG", dt.date(2024, 8, 10), "2,000,000", region="510100")
    old = flat_params(book.resolve("510100", march.discharge_date), "employee", 3, "none", False).basic_cap
    new = flat_params(book.resolve("510100", august.discharge_date), "employee", 3, "none", False).basic_cap
    assert new > old
    paid = settle_in_order([march, august], [0, 1], book)
    assert paid["MAR"]["basic"] == old
    assert paid["AUG"]["basic"] == new - old
    assert explain_person_year([march, august], book)[1].amounts["basic"] == new - old


def test_deductible_lowered_on_1_july_does_not_pay_earlier_costs_through_a_later_episode(book_with_midyear_change):
    """救助 deductible 2,000 → 500 for 低保边缘 from July: March's costs below the old deductible stay unpaid."""
    book = book_with_midyear_change
    kwargs = {"scheme": "resident", "category": "near_subsistence", "region": "510100", "level": 1}
    march = episode("MAR", dt.date(2024, 3, 10), "4,000", **kwargs)
    august = episode("AUG", dt.date(2024, 8, 10), "4,000", **kwargs)
    march_paid, august_paid = (s.amounts for s in explain_person_year([march, august], book))
    august_alone = explain_person_year([august], book)[0].amounts
    august_base = august_alone["total"] - august_alone["basic"] - august_alone["critical_illness"]
    rate = flat_params(book.resolve("510100", august.discharge_date), "resident", 1, "near_subsistence", False)
    # Whatever March left below the old deductible, August is paid at most the rate on its own base.
    assert august_paid["assistance"] <= (august_base * rate.assistance_rate_bp + 5000) // 10000
    assert march_paid["assistance"] == 0


amounts = st.integers(min_value=0, max_value=60_000_000)


@st.composite
def person_years(draw):
    """One person's episodes in 2024, in Hangzhou or in Chengdu (with the July change), in a random order."""
    scheme = draw(st.sampled_from(("employee", "retiree", "resident")))
    category = draw(st.sampled_from(("none", "destitute", "subsistence", "near_subsistence", "monitored")))
    region = draw(st.sampled_from(("330100", "510104", "110000")))
    enrolled = draw(st.booleans())
    count = draw(st.integers(1, 6))
    days = draw(st.lists(st.integers(0, 365), min_size=count, max_size=count))
    episodes = [
        EpisodeInput(
            episode_id=f"E{i}", person_key="P", scheme=scheme, assistance_category=category,
            inclusive_enrolled=enrolled, region=region, hospital_level=draw(st.sampled_from((1, 2, 3))),
            admission_date=dt.date(2024, 1, 1) + dt.timedelta(days=day),
            discharge_date=dt.date(2024, 1, 1) + dt.timedelta(days=day),
            icd10="C34.9", class_a=draw(amounts), class_b=draw(amounts), out_of_catalogue=draw(amounts),
        )
        for i, day in enumerate(days)
    ]
    return episodes, draw(st.permutations(range(count)))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=person_years())
def test_any_settlement_order_stays_within_every_annual_limit(case, book_with_midyear_change):
    book = book_with_midyear_change
    episodes, order = case
    paid = settle_in_order(episodes, list(order), book)
    caps = {layer: 0 for layer in LAYERS}
    for ep in episodes:
        p = flat_params(book.resolve(ep.region, ep.discharge_date), ep.scheme, ep.hospital_level,
                        ep.assistance_category, ep.inclusive_enrolled)
        for layer, cap in zip(LAYERS, (p.basic_cap, p.ci_cap, p.assistance_cap, p.inclusive_cap)):
            caps[layer] = max(caps[layer], cap)
    for layer in LAYERS:
        assert sum(amounts[layer] for amounts in paid.values()) <= caps[layer], layer
    for ep in episodes:
        amounts_ = paid[ep.episode_id]
        assert all(amounts_[layer] >= 0 for layer in LAYERS)
        assert amounts_["residual"] >= 0
        assert sum(amounts_[layer] for layer in LAYERS) + amounts_["residual"] == ep.total


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=person_years())
def test_settling_one_by_one_in_discharge_order_equals_the_batch_path(case, book_with_midyear_change):
    """The recorded year reproduces the running year exactly, so the database path and the batch path agree."""
    book = book_with_midyear_change
    episodes, _ = case
    in_order = sorted(range(len(episodes)), key=lambda i: (episodes[i].discharge_date, episodes[i].admission_date, i))
    one_by_one = settle_in_order(episodes, in_order, book)
    for settlement in explain_person_year(episodes, book):
        assert one_by_one[settlement.episode_id] == settlement.amounts
