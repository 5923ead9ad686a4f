from __future__ import annotations

import datetime as dt
import threading

import pytest
from helpers import valid_id_number
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gongji.core.audit import AuditLog
from gongji.core.db import transaction
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.episodes.models import Coverage
from gongji.rules.cascade import default_book
from gongji.episodes.service import COVERAGE_LAYERS, coverage_of, create_episode, create_person, record_coverage

TOTAL = 1_000_000  # 10,000 yuan


@pytest.fixture
def new_episode(sessions, vault):
    """A factory: each call registers one more episode of 10,000 yuan for the same person."""
    with transaction(sessions) as session:
        person = create_person(
            session,
            vault,
            valid_id_number("420102", dt.date(1975, 8, 8), 44),
            "王芳",
            "employee",
            "none",
            True,
            "420102",
        )

    def make() -> int:
        with transaction(sessions) as session:
            return create_episode(
                session, person.id, dt.date(2024, 7, 1), dt.date(2024, 7, 9), 2, "I63.9", 600_000, 300_000, 100_000,
                book=default_book(),
            ).id

    return make


def test_layers_pay_in_turn_and_the_residual_shows(sessions, new_episode):
    episode_id = new_episode()
    with transaction(sessions) as session:
        record_coverage(session, episode_id, "basic", "职工医保", 540_000, {"rate_bp": 9000}, recorded_by="settle")
        record_coverage(session, episode_id, "charity", "某基金会救助项目", 200_000, ["trace"])
    with sessions() as session:
        view = coverage_of(session, episode_id)
        assert (view.total, view.covered, view.residual) == (TOTAL, 740_000, 260_000)
        assert [(r.layer, r.amount, r.recorded_by) for r in view.records] == [
            ("basic", 540_000, "settle"),
            ("charity", 200_000, None),
        ]
        assert view.records[0].explanation == {"rate_bp": 9000}
        actors = session.scalars(select(AuditLog.actor).where(AuditLog.action == "coverage.record")).all()
        assert actors == ["settle", "system"]


def test_paying_exactly_the_residual_is_allowed(sessions, new_episode):
    episode_id = new_episode()
    with transaction(sessions) as session:
        record_coverage(session, episode_id, "crowdfunding", "campaign:7", TOTAL, None)
    with sessions() as session:
        assert coverage_of(session, episode_id).residual == 0


def test_exceeding_the_residual_is_refused_and_nothing_is_written(sessions, new_episode):
    episode_id = new_episode()
    with transaction(sessions) as session:
        record_coverage(session, episode_id, "basic", "居民医保", 700_000, {})
    audit_before = _count(sessions, AuditLog)
    with pytest.raises(Conflict) as caught, transaction(sessions) as session:
        record_coverage(session, episode_id, "mutual_aid", "plan:1", 300_001, {})
    assert caught.value.field == "amount"
    with sessions() as session:
        view = coverage_of(session, episode_id)
        assert (len(view.records), view.residual) == (1, 300_000)
    assert _count(sessions, AuditLog) == audit_before


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("amount", {"amount": 0}),
        ("amount", {"amount": -5}),
        ("amount", {"amount": 10.0}),
        ("layer", {"layer": "lottery"}),
        ("program", {"program": " "}),
        ("explanation", {"explanation": {"when": dt.date(2024, 1, 1)}}),
    ],
)
def test_invalid_coverage_names_the_field(sessions, new_episode, field, changes):
    episode_id = new_episode()
    args = {"layer": "basic", "program": "p", "amount": 100, "explanation": {}, **changes}
    with pytest.raises(InvalidInput) as caught, transaction(sessions) as session:
        record_coverage(session, episode_id, **args)
    assert caught.value.field == field
    assert _count(sessions, Coverage) == 0


def test_unknown_episode(sessions):
    with pytest.raises(NotFound) as caught, transaction(sessions) as session:
        record_coverage(session, 12345, "basic", "p", 1, {})
    assert caught.value.field == "episode_id"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    requests=st.lists(
        st.tuples(st.sampled_from(COVERAGE_LAYERS), st.integers(min_value=1, max_value=TOTAL)), min_size=1, max_size=6
    )
)
def test_coverage_never_exceeds_the_total(sessions, new_episode, requests):
    """Whatever layers ask for, accepted payments fit the bill and refused ones leave no trace."""
    episode_id = new_episode()  # a fresh episode per example, so examples do not share state
    accepted = 0
    for layer, amount in requests:
        try:
            with transaction(sessions) as session:
                record_coverage(session, episode_id, layer, "program", amount, {})
            accepted += amount
        except Conflict:
            assert accepted + amount > TOTAL
    with sessions() as session:
        view = coverage_of(session, episode_id)
    assert view.covered == accepted <= TOTAL
    assert view.residual == TOTAL - accepted


def test_concurrent_layers_cannot_both_take_the_residual(sessions, new_episode):
    episode_id = new_episode()
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def layer_pays(layer: str) -> None:
        start.wait()
        try:
            with transaction(sessions) as session:
                record_coverage(session, episode_id, layer, "program", 400_000, {})
            outcomes.append("paid")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=layer_pays, args=(layer,)) for layer in COVERAGE_LAYERS[:6]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["paid", "paid"] + ["refused"] * 4
    with sessions() as session:
        assert coverage_of(session, episode_id).residual == 200_000


def _count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))
