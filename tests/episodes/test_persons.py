from __future__ import annotations

import datetime as dt

import pytest
from helpers import valid_id_number
from sqlalchemy import select

from gongji.core.audit import AuditLog
from gongji.core.db import transaction
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.episodes.models import Person
from gongji.episodes.service import create_person, find_person_by_id_number, get_person

ID_NUMBER = valid_id_number("330106", dt.date(1968, 4, 9), 37)
GOOD = {
    "id_number": ID_NUMBER,
    "name": "张小明",
    "scheme": "resident",
    "assistance_category": "subsistence",
    "inclusive_enrolled": True,
    "region": "330106",
}


def test_create_person_stores_only_encrypted_and_masked(sessions, vault):
    with transaction(sessions) as session:
        person = create_person(session, vault, **{**GOOD, "id_number": ID_NUMBER.lower()}, actor="caseworker1")
    with sessions() as session:
        stored = get_person(session, person.id)
        assert stored.person_key == vault.person_key(ID_NUMBER)
        assert (stored.masked_id, stored.masked_name) == (ID_NUMBER[:3] + "*" * 11 + ID_NUMBER[-4:], "张*明")
        assert (stored.birth_year, stored.sex) == (1968, "M")
        assert (stored.scheme, stored.assistance_category, stored.inclusive_enrolled) == (
            "resident",
            "subsistence",
            True,
        )
        assert vault.decrypt(stored.id_number_enc, "persons.id_number_enc") == ID_NUMBER
        assert vault.decrypt(stored.name_enc, "persons.name_enc") == "张小明"
        assert ID_NUMBER not in stored.id_number_enc and "张小明" not in stored.name_enc
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "person.create")).one()
        assert (audit.actor, audit.entity_id) == ("caseworker1", str(person.id))
        assert ID_NUMBER not in str(audit.detail) and "张小明" not in str(audit.detail)
        assert find_person_by_id_number(session, vault, ID_NUMBER).id == person.id
        assert find_person_by_id_number(session, vault, valid_id_number("330106", dt.date(1968, 4, 9), 39)) is None


def test_duplicate_person_is_a_conflict(sessions, vault):
    with transaction(sessions) as session:
        create_person(session, vault, **GOOD)
    with pytest.raises(Conflict) as caught, transaction(sessions) as session:
        create_person(session, vault, **{**GOOD, "name": "张晓明"})
    assert caught.value.field == "id_number"
    with sessions() as session:
        assert len(session.scalars(select(Person)).all()) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id_number", ID_NUMBER[:17] + ("0" if ID_NUMBER[17] != "0" else "1")),
        ("id_number", "not a number"),
        ("name", "  "),
        ("name", "张" * 51),
        ("name", "张\n明"),
        ("scheme", "private"),
        ("assistance_category", "poor"),
        ("inclusive_enrolled", "yes"),
        ("region", "33010"),
        ("region", "990101"),
        ("region", 330106),
    ],
)
def test_invalid_person_names_the_field(sessions, vault, field, value):
    with pytest.raises(InvalidInput) as caught, transaction(sessions) as session:
        create_person(session, vault, **{**GOOD, field: value})
    assert caught.value.field == field
    with sessions() as session:
        assert session.scalars(select(Person)).all() == []
        assert session.scalars(select(AuditLog)).all() == []


def test_get_person_not_found(sessions):
    with pytest.raises(NotFound) as caught, sessions() as session:
        get_person(session, 404)
    assert caught.value.field == "person_id"
