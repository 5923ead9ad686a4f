from __future__ import annotations

import datetime as dt

import pytest
from helpers import valid_id_number
from sqlalchemy import select

from gongji.core.audit import AuditLog
from gongji.core.db import transaction
from gongji.core.errors import InvalidInput, NotFound
from gongji.episodes.models import Episode
from gongji.episodes.service import create_episode, create_person, get_episode, list_episodes
from gongji.rules.cascade import default_book

D = dt.date


@pytest.fixture
def person_id(sessions, vault) -> int:
    with transaction(sessions) as session:
        return create_person(
            session, vault, valid_id_number("110105", D(1950, 1, 2), 12), "李华", "retiree", "none", False, "110105"
        ).id


def episode_args(person_id: int, /, **changes):
    args = {
        "person_id": person_id,
        "admission_date": D(2024, 3, 1),
        "discharge_date": D(2024, 3, 12),
        "hospital_level": 3,
        "icd10": "c34.9",
        "class_a": 2_000_000,
        "class_b": 1_500_000,
        "out_of_catalogue": 500_000,
        "book": default_book(),
    }
    return {**args, **changes}


def test_create_episode(sessions, person_id):
    with transaction(sessions) as session:
        episode = create_episode(session, **episode_args(person_id), actor="caseworker1")
    with sessions() as session:
        stored = get_episode(session, episode.id)
        assert (stored.icd10, stored.hospital_level, stored.total) == ("C34.9", 3, 4_000_000)
        assert session.scalars(select(AuditLog.action).where(AuditLog.entity == "episode")).all() == ["episode.create"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("person_id", 999),
        ("admission_date", "2024-03-01"),
        ("admission_date", dt.datetime(2024, 3, 1, 9)),
        ("discharge_date", D(2024, 2, 29)),
        ("hospital_level", 4),
        ("hospital_level", True),
        ("hospital_level", "3"),
        ("icd10", "C3"),
        ("icd10", "34.9"),
        ("icd10", "C34.x"),
        ("icd10", None),
        ("class_a", -1),
        ("class_b", 12.5),
        ("out_of_catalogue", "500"),
    ],
)
def test_invalid_episode_names_the_field(sessions, person_id, field, value):
    error = NotFound if field == "person_id" else InvalidInput
    with pytest.raises(error) as caught, transaction(sessions) as session:
        create_episode(session, **episode_args(person_id, **{field: value}))
    assert caught.value.field == field
    with sessions() as session:
        assert session.scalars(select(Episode)).all() == []


def test_same_day_episode_is_fine(sessions, person_id):
    with transaction(sessions) as session:
        create_episode(session, **episode_args(person_id, admission_date=D(2024, 5, 5), discharge_date=D(2024, 5, 5)))


def test_an_episode_with_no_parameter_set_in_force_is_refused_at_creation(sessions, person_id):
    """The bundled sets start on 2024-01-01: a 2023 stay could never be settled, so it is not recorded."""
    with pytest.raises(InvalidInput) as caught, transaction(sessions) as session:
        create_episode(session, **episode_args(person_id, admission_date=D(2023, 3, 1), discharge_date=D(2023, 3, 5)))
    assert caught.value.field == "discharge_date"
    with sessions() as session:
        assert session.scalars(select(Episode)).all() == []


def test_list_episodes_in_settlement_order(sessions, person_id):
    spans = [
        (D(2024, 6, 1), D(2024, 6, 10)),
        (D(2023, 12, 20), D(2024, 1, 3)),  # discharged in 2024: counts for 2024
        (D(2024, 5, 28), D(2024, 6, 10)),
        (D(2024, 6, 1), D(2024, 6, 10)),
        (D(2024, 12, 28), D(2025, 1, 2)),  # discharged in 2025
        (D(2025, 3, 1), D(2025, 3, 5)),
    ]
    with transaction(sessions) as session:
        ids = [
            create_episode(session, **episode_args(person_id, admission_date=a, discharge_date=d)).id for a, d in spans
        ]
    with sessions() as session:
        listed = [e.id for e in list_episodes(session, person_id, 2024)]
        assert listed == [ids[1], ids[2], ids[0], ids[3]]
        assert [e.id for e in list_episodes(session, person_id, 2025)] == [ids[4], ids[5]]
        with pytest.raises(NotFound):
            list_episodes(session, 999, 2024)
