"""Mutual-aid fixtures: a migrated database with the shipped plans, member and operator-staff accounts,
and a way to give a member's person a settled episode."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from mutual_aid_data import NO, NOW, person_id_number

from gongji.api.auth import Principal
from gongji.api.auth_service import create_user
from gongji.core.db import transaction
from gongji.episodes.service import create_episode, settle_statutory
from gongji.mutual_aid.membership import join_plan
from gongji.mutual_aid.plans import sync_plans
from gongji.rules.cascade import default_book

PASSWORD = "correct horse battery"


@pytest.fixture
def ma(sessions):
    """The `sessions` factory with operators and the shipped plans loaded."""
    with transaction(sessions) as session:
        sync_plans(session)
    return sessions


_users = itertools.count(1)


@pytest.fixture
def make_user(ma):
    """A factory: an account of `role` (operator staff of `operator`), as the Subject the services take."""

    def make(role: str = "member", operator: str | None = None) -> Principal:
        if role in ("operator_admin", "assessor", "reviewer"):
            operator = operator or "online-demo"
        username = f"{role.replace('_', '-')}-{next(_users)}"
        with transaction(ma) as session:
            user = create_user(session, username, PASSWORD, role, username, operator_code=operator)
            return Principal(user.id, user.username, user.role, user.display_name, (), user.operator_code)

    return make


@pytest.fixture
def member(make_user) -> Principal:
    return make_user("member")


@pytest.fixture
def join(ma, vault, member):
    """A factory: join a person born on `birth` to `plan` (self by default) on `now`; returns the membership id."""

    def make(plan: str = "online-comprehensive", birth: dt.date = dt.date(1990, 6, 15), *, now=NOW - dt.timedelta(
            days=365), subject=None, relationship="self", name="张小明", scheme="resident", id_number=None, **kw) -> int:
        with transaction(ma) as session:
            return join_plan(
                session, vault, subject or member, plan, id_number=id_number or person_id_number(birth), name=name,
                relationship=relationship, declaration=kw.pop("declaration", NO), scheme=scheme, now=now, **kw,
            ).id

    return make


@pytest.fixture
def episode(ma):
    """A factory: a settled (statutory layers recorded) episode of a person; returns its id."""

    def make(person_id: int, admitted: dt.date, icd10: str = "C34.1", *, days: int = 10, class_a: int = 6_000_000,
             class_b: int = 3_000_000, out: int = 1_000_000, settle: bool = True) -> int:
        with transaction(ma) as session:
            created = create_episode(session, person_id, admitted, admitted + dt.timedelta(days=days), 3, icd10,
                                     class_a, class_b, out, book=default_book())
            if settle:
                settle_statutory(session, default_book(), created.id, "test")
            return created.id

    return make
