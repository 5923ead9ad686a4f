"""Property-based requests against every operation in the OpenAPI schema: no server errors, answers as documented.

Each operation is called as every role and anonymously, with valid (positive) and invalid
(negative) inputs, on SQLite and PostgreSQL. Seed data (a person, a settled and an unsettled
episode) lets half of the cases hit real rows, and half of the stays fall in 2024–2025 where
parameters are in force, so the settlement code itself runs, not only validation.

The last test prints the figures of the run: `schemathesis operations=N cases=M server_errors=0`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections import Counter

import pytest
import schemathesis
from helpers import demo_operator, valid_id_number
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode
from sqlalchemy import select, text

from gongji.api.app import create_app
from gongji.api.auth_service import create_user, issue_token
from gongji.api.models import ALL_ROLES, NATIONWIDE, User
from gongji.api.models import ROLES as STAFF
from gongji.core.settings import Settings
from gongji.episodes import service

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: Per operation, role and generation mode; 2 cores must run the whole file in about a minute.
MAX_EXAMPLES = int(os.environ.get("GONGJI_SCHEMATHESIS_EXAMPLES", "3"))
ANONYMOUS = "anonymous"
PASSWORD = "correct horse battery staple"
#: Figures of the whole run, printed by the last test.
TALLY: Counter[str] = Counter()
OPERATIONS: set[str] = set()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path_factory):
    """A fresh database for the module: a temp SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'gongji.sqlite3'}"
        return
    admin = request.getfixturevalue("pg_admin")
    name = f"gongji_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture(scope="module")
def api(db, tmp_path_factory):
    """The app with one user per role and seed rows; returns (app, schema, ids of the seed rows)."""
    var = tmp_path_factory.mktemp("var")
    app = create_app(Settings(database_url=db, var_dir=var, params_dir=None))
    context = app.state.gongji
    with context.transaction() as session:
        for role in ALL_ROLES:
            # Staff work in every region (全国); self-service accounts carry no regions.
            create_user(session, role, PASSWORD, role, f"Test {role}", regions=(NATIONWIDE,) if role in STAFF else (),
                        operator_code=demo_operator(role))
        person = service.create_person(
            session, context.vault, valid_id_number("330106", dt.date(1968, 4, 12), 35), "张小明", "resident",
            "subsistence", True, "330100",
        )
        stays = [
            service.create_episode(
                session, person.id, dt.date(2024, month, 4), dt.date(2024, month, 18), 3, "I63.9",
                6_000_000, 3_000_000, 1_000_000, book=context.book,
            )
            for month in (3, 6)
        ]
        service.settle_statutory(session, context.book, stays[0].id, "seed")
        admin_id = session.scalar(select(User.id).where(User.username == "admin"))
    known = {"person_id": person.id, "episode_id": stays, "user_id": admin_id, "year": 2024}
    return app, schemathesis.openapi.from_asgi("/openapi.json", app), known


def _headers(app, role: str) -> dict[str, str]:
    """A fresh token per operation, so an operation that logs out cannot starve the next one."""
    if role == ANONYMOUS:
        return {}
    with app.state.gongji.transaction() as session:
        user = session.scalars(select(User).where(User.username == role)).one()
        return {"Authorization": f"Bearer {issue_token(session, user)}"}


@st.composite
def cases(draw, operation, mode: GenerationMode, known: dict):
    """Schema-generated cases; half of them aimed at the seed rows and at stays with parameters in force."""
    case = draw(operation.as_strategy(generation_mode=mode))
    if case.path_parameters and draw(st.booleans()):
        for name in case.path_parameters:
            if name in known:
                value = known[name]
                case.path_parameters[name] = draw(st.sampled_from(value)).id if isinstance(value, list) else value
    if isinstance(case.body, dict) and {"admission_date", "discharge_date"} <= case.body.keys() and draw(st.booleans()):
        admission = draw(st.dates(dt.date(2024, 1, 1), dt.date(2025, 11, 30)))
        case.body["admission_date"] = admission.isoformat()
        case.body["discharge_date"] = (admission + dt.timedelta(days=draw(st.integers(0, 30)))).isoformat()
    return case


@pytest.mark.parametrize("role", [*ALL_ROLES, ANONYMOUS])
def test_every_operation(api, role):
    """Every operation as `role`; public ones (no token read) only anonymously, where they are meant to be called."""
    app, schema, known = api
    documented = app.openapi()["paths"]
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        OPERATIONS.add(operation.label)
        public = documented[operation.path][operation.method.lower()].get("x-roles") == ["public"]
        if public and role != ANONYMOUS:
            continue
        headers = _headers(app, role)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=cases(operation, mode, known))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
            def run(case):
                if role == ANONYMOUS and case.headers:
                    case.headers.pop("Authorization", None)
                response = case.call(headers=headers)
                TALLY["cases"] += 1
                TALLY["server_errors"] += response.status_code >= 500
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in the operation can be made invalid
            except (Exception, BaseExceptionGroup) as error:  # gathered, so one run reports every failing operation
                failures.append(f"{operation.label} as {role} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)


def test_zz_figures(capsys):
    """The figures of this run, printed even without -s so they can be quoted."""
    with capsys.disabled():
        print(
            f"\nschemathesis operations={len(OPERATIONS)} cases={TALLY['cases']} "
            f"server_errors={TALLY['server_errors']}"
        )
    assert TALLY["server_errors"] == 0
