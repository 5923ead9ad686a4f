"""Settling against what is recorded: annual limits hold whatever order episodes arrive in, on both databases.

The reproduction from the hardening issue: an employee's June episode (class A
1,000,000 yuan) is created and settled, then a January episode of the same
year; each used to be paid the basic annual cap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from helpers import valid_id_number
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gongji.core.audit import AuditLog
from gongji.core.db import make_engine, migrate, session_factory, transaction
from gongji.core.errors import Conflict
from gongji.core.identity import IdentityVault
from gongji.episodes.models import Coverage
from gongji.episodes.service import (
    _episode_input,
    create_episode,
    create_person,
    get_person,
    list_episodes,
    person_year,
    resettle_year,
    settle_statutory,
)
from gongji.rules.cascade import LAYERS, default_book, explain_person_year
from gongji.rules.params import flat_params

BOOK = default_book()
_serial = itertools.count(1)


def new_person(sessions, vault, *, scheme="employee", category="none", enrolled=False, region="330100") -> int:
    number = valid_id_number(region, dt.date(1970, 1, 1) + dt.timedelta(days=next(_serial)), 101)
    with transaction(sessions) as session:
        return create_person(session, vault, number, "李大伟", scheme, category, enrolled, region).id


def new_episode(sessions, person_id: int, discharge: dt.date, class_a: int, class_b=0, out=0, level=3) -> int:
    with transaction(sessions) as session:
        return create_episode(
            session, person_id, discharge - dt.timedelta(days=7), discharge, level, "C34.9", class_a, class_b, out,
            book=BOOK,
        ).id


def settle(sessions, episode_id: int):
    with transaction(sessions) as session:
        return settle_statutory(session, BOOK, episode_id, "caseworker")


def recorded(sessions, person_id: int, year: int) -> dict[int, dict[str, int]]:
    with sessions() as session:
        rows = session.execute(
            select(Coverage.episode_id, Coverage.layer, func.sum(Coverage.amount))
            .where(Coverage.episode_id.in_([e.id for e in list_episodes(session, person_id, year)]))
            .group_by(Coverage.episode_id, Coverage.layer)
        ).all()
    paid: dict[int, dict[str, int]] = {}
    for episode_id, layer, amount in rows:
        if amount:
            paid.setdefault(episode_id, {})[layer] = int(amount)
    return paid


def batch_answer(sessions, person_id: int, year: int) -> dict[int, dict[str, int]]:
    """What the batch path (discharge order, one run) pays each episode and layer; zeros left out."""
    with sessions() as session:
        person = get_person(session, person_id)
        episodes = [e for e in list_episodes(session, person_id, year) if e.settled_at is not None]
        results = explain_person_year([_episode_input(person, e) for e in episodes], BOOK)
    return {
        e.id: {layer: s.amounts[layer] for layer in LAYERS if s.amounts[layer]}
        for e, s in zip(episodes, results)
        if any(s.amounts[layer] for layer in LAYERS)
    }


def basic_cap(scheme="employee", region="330100", on=dt.date(2024, 6, 1)) -> int:
    return flat_params(BOOK.resolve(region, on), scheme, 3, "none", False).basic_cap


def test_backdated_episode_pays_the_annual_cap_once(sessions, vault):
    person_id = new_person(sessions, vault)
    june = new_episode(sessions, person_id, dt.date(2024, 6, 20), 100_000_000)
    settle(sessions, june)
    january = new_episode(sessions, person_id, dt.date(2024, 1, 20), 100_000_000)
    settlement = settle(sessions, january)
    paid = recorded(sessions, person_id, 2024)
    assert paid[june]["basic"] == basic_cap()
    assert settlement.amounts["basic"] == 0 and "basic" not in paid.get(january, {})
    assert sum(by_layer.get("basic", 0) for by_layer in paid.values()) == basic_cap()


def test_resettling_a_shuffled_year_equals_the_batch_path(sessions, vault):
    """Settled June, March, then January: re-settlement moves the deductible and cap to discharge order."""
    person_id = new_person(sessions, vault, scheme="resident", category="subsistence", enrolled=True)
    ids = [new_episode(sessions, person_id, dt.date(2024, m, 15), amount, 2_000_000, 500_000, level=level)
           for m, amount, level in ((6, 30_000_000, 3), (3, 8_000_000, 1), (1, 45_000_000, 2))]
    for episode_id in ids:
        settle(sessions, episode_id)
    assert recorded(sessions, person_id, 2024) != batch_answer(sessions, person_id, 2024)
    with transaction(sessions) as session:
        result = resettle_year(session, BOOK, person_id, 2024, "caseworker")
    assert result.adjustments
    assert recorded(sessions, person_id, 2024) == batch_answer(sessions, person_id, 2024)
    with sessions() as session:
        kinds = session.scalars(select(Coverage.kind).where(Coverage.kind == "adjustment")).all()
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "person_year.resettle")).one()
    assert len(kinds) == len(result.adjustments)
    assert audit.detail["year"] == 2024 and len(audit.detail["adjustments"]) == len(result.adjustments)
    with transaction(sessions) as session:
        assert resettle_year(session, BOOK, person_id, 2024, "caseworker").adjustments == []


def test_a_second_settlement_of_one_episode_is_refused(sessions, vault):
    person_id = new_person(sessions, vault)
    episode_id = new_episode(sessions, person_id, dt.date(2024, 5, 1), 500_000)
    settle(sessions, episode_id)
    with pytest.raises(Conflict):
        settle(sessions, episode_id)


def test_person_year_shows_year_to_date_against_the_limits(sessions, vault):
    person_id = new_person(sessions, vault)
    for month in (2, 8):
        settle(sessions, new_episode(sessions, person_id, dt.date(2024, month, 1), 60_000_000))
    with sessions() as session:
        view = person_year(session, BOOK, person_id, 2024)
    basic = next(layer for layer in view.layers if layer.layer == "basic")
    assert basic.paid == basic.limit == basic_cap()
    assert [e.discharge_date.month for e in view.episodes] == [2, 8]
    assert view.residual == view.total - sum(sum(p.values()) for p in view.paid.values())


def test_concurrent_settlements_of_one_person_year_share_one_cap(sessions, vault):
    person_id = new_person(sessions, vault)
    ids = [new_episode(sessions, person_id, dt.date(2024, month, 10), 100_000_000) for month in (3, 4, 5, 6)]
    start = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def run(episode_id: int) -> None:
        start.wait()
        try:
            settle(sessions, episode_id)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(episode_id,)) for episode_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    paid = recorded(sessions, person_id, 2024)
    assert sum(by_layer.get("basic", 0) for by_layer in paid.values()) == basic_cap()


@st.composite
def shuffled_years(draw):
    count = draw(st.integers(1, 5))
    return {
        "scheme": draw(st.sampled_from(("employee", "retiree", "resident"))),
        "category": draw(st.sampled_from(("none", "destitute", "subsistence", "near_subsistence", "monitored"))),
        "enrolled": draw(st.booleans()),
        "region": draw(st.sampled_from(("330100", "510100", "110105"))),
        "episodes": [
            (draw(st.integers(0, 360)), draw(st.integers(0, 40_000_000)), draw(st.integers(0, 10_000_000)),
             draw(st.integers(0, 10_000_000)), draw(st.sampled_from((1, 2, 3))))
            for _ in range(count)
        ],
        "settle_order": draw(st.permutations(range(count))),
        "create_order": draw(st.permutations(range(count))),
    }


def test_any_order_stays_within_limits_and_resettles_to_the_batch_path(tmp_path):
    """Hypothesis over one SQLite database: any order of creating and settling a person-year's episodes."""
    url = f"sqlite:///{tmp_path / 'property.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    vault = IdentityVault(bytes(range(32)), b"gongji-test-person-key-secret")

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=shuffled_years())
    def run(case):
        person_id = new_person(sessions, vault, scheme=case["scheme"], category=case["category"],
                               enrolled=case["enrolled"], region=case["region"])
        ids = {}
        for index in case["create_order"]:
            day, a, b, out, level = case["episodes"][index]
            ids[index] = new_episode(sessions, person_id, dt.date(2024, 1, 1) + dt.timedelta(days=day), a, b, out, level)
        for index in case["settle_order"]:
            settle(sessions, ids[index])
        paid = recorded(sessions, person_id, 2024)
        with sessions() as session:
            person = get_person(session, person_id)
            caps = flat_params(BOOK.resolve(person.region, dt.date(2024, 6, 1)), person.scheme, 3,
                               person.assistance_category, person.inclusive_enrolled)
        for layer, cap in zip(LAYERS, (caps.basic_cap, caps.ci_cap, caps.assistance_cap, caps.inclusive_cap)):
            assert sum(by_layer.get(layer, 0) for by_layer in paid.values()) <= cap, layer
        with transaction(sessions) as session:
            resettle_year(session, BOOK, person_id, 2024, "caseworker")
        assert recorded(sessions, person_id, 2024) == batch_answer(sessions, person_id, 2024)

    try:
        run()
    finally:
        engine.dispose()
