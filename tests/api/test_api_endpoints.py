"""The JSON API end to end through HTTP, against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import demo_operator, valid_id_number
from sqlalchemy import func, select

from gongji.api.auth_service import create_user
from gongji.api.models import ROLES
from gongji.core.audit import AuditLog
from gongji.core.errors import Conflict
from gongji.episodes import service
from gongji.episodes.models import Coverage, Episode, Person
from gongji.rules.cascade import LAYERS, EpisodeInput, explain_person_year

PASSWORD = "correct horse battery staple"
ID_NUMBER = valid_id_number("330106", dt.date(1968, 4, 12), 35)
PERSON = {
    "id_number": ID_NUMBER,
    "name": "张小明",
    "scheme": "resident",
    "assistance_category": "subsistence",
    "inclusive_enrolled": True,
    "region": "330100",
}
EPISODE = {
    "admission_date": "2024-03-04",
    "discharge_date": "2024-03-18",
    "hospital_level": 3,
    "icd10": "I63.9",
    "class_a": "60,000.00",
    "class_b": "30,000",
    "out_of_catalogue": "¥10,000.5",
}


@pytest.fixture
def tokens(app: FastAPI, client: TestClient) -> dict[str, str]:
    """A bearer token for one user of each role."""
    with app.state.gongji.transaction() as session:
        for role in ROLES:
            create_user(session, role, PASSWORD, role, f"Test {role}", regions=("000000",),
                        operator_code=demo_operator(role))
    return {role: login(client, role).json()["access_token"] for role in ROLES}


def login(client: TestClient, username: str, password: str = PASSWORD):
    return client.post("/api/auth/login", json={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count(app: FastAPI, model, *where) -> int:
    with app.state.gongji.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def assert_problem(response, status: int, field: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["type"].startswith("urn:gongji:problem:")
    assert problem["title"] and problem["detail"]
    assert problem.get("field") == field
    if field:
        assert field in [error["field"] for error in problem["errors"]]
    return problem


def new_person(client: TestClient, token: str, **changes) -> dict:
    response = client.post("/api/persons", json={**PERSON, **changes}, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()


def new_episode(client: TestClient, token: str, person_id: int, **changes) -> dict:
    response = client.post(f"/api/persons/{person_id}/episodes", json={**EPISODE, **changes}, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()


def test_login_then_me(client, tokens):
    me = client.get("/api/auth/me", headers=bearer(tokens["analyst"]))
    assert me.status_code == 200
    assert me.json() == {
        "username": "analyst", "role": "analyst", "display_name": "Test analyst", "regions": ["000000"],
        "operator_code": None,
    }


def test_wrong_password_is_401_problem(client, tokens):
    response = login(client, "caseworker", "not the password")
    assert_problem(response, 401, "password")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_problem(login(client, "nobody"), 401, "password")


def test_person_is_shown_masked_only(client, tokens):
    created = new_person(client, tokens["caseworker"])
    assert created["masked_id"] == ID_NUMBER[:3] + "*" * 11 + ID_NUMBER[-4:]
    assert created["masked_name"] == "张*明"
    fetched = client.get(f"/api/persons/{created['id']}", headers=bearer(tokens["analyst"]))
    assert fetched.json() == created
    for response_text in (str(created), fetched.text):
        assert ID_NUMBER not in response_text and "张小明" not in response_text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id_number": ID_NUMBER[:-1] + ("0" if ID_NUMBER[-1] != "0" else "1")}, "id_number"),
        ({"id_number": "12345"}, "id_number"),
        ({"scheme": "gold"}, "scheme"),
        ({"region": "33010"}, "region"),
        ({"name": " "}, "name"),
    ],
)
def test_bad_person_is_422_naming_the_field_and_writes_nothing(app, client, tokens, changes, field):
    response = client.post("/api/persons", json={**PERSON, **changes}, headers=bearer(tokens["caseworker"]))
    assert_problem(response, 422, field)
    assert count(app, Person) == 0


def test_same_person_twice_is_409(client, tokens):
    new_person(client, tokens["caseworker"])
    response = client.post("/api/persons", json=PERSON, headers=bearer(tokens["admin"]))
    assert_problem(response, 409, "id_number")


def test_episode_amounts_in_yuan_come_back_in_fen_and_yuan(client, tokens):
    person = new_person(client, tokens["caseworker"])
    created = new_episode(client, tokens["caseworker"], person["id"])
    assert created["amounts"] == {
        "class_a": {"fen": 6_000_000, "yuan": "60,000.00"},
        "class_b": {"fen": 3_000_000, "yuan": "30,000.00"},
        "out_of_catalogue": {"fen": 1_000_050, "yuan": "10,000.50"},
        "total": {"fen": 10_000_050, "yuan": "100,000.50"},
    }
    fetched = client.get(f"/api/episodes/{created['id']}", headers=bearer(tokens["analyst"]))
    assert fetched.json() == created


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"class_b": "12.345"}, "class_b"),
        ({"class_a": 600}, "class_a"),
        ({"out_of_catalogue": "-5"}, "out_of_catalogue"),
        ({"class_a": "1,2345"}, "class_a"),
        ({"admission_date": "2024-02-30"}, "admission_date"),
        ({"discharge_date": "2024-03-01"}, "discharge_date"),
        ({"hospital_level": 4}, "hospital_level"),
        ({"icd10": "stroke"}, "icd10"),
    ],
)
def test_bad_episode_is_422_naming_the_field_and_writes_nothing(app, client, tokens, changes, field):
    person = new_person(client, tokens["caseworker"])
    response = client.post(
        f"/api/persons/{person['id']}/episodes", json={**EPISODE, **changes}, headers=bearer(tokens["caseworker"])
    )
    assert_problem(response, 422, field)
    assert count(app, Episode) == 0
    assert count(app, AuditLog, AuditLog.action == "episode.create") == 0


def test_episode_of_unknown_person_is_404(client, tokens):
    response = client.post("/api/persons/999/episodes", json=EPISODE, headers=bearer(tokens["caseworker"]))
    assert_problem(response, 404, "person_id")


def test_settle_records_what_explain_person_year_computes(app, client, tokens):
    token = tokens["caseworker"]
    person = new_person(client, token)
    first = new_episode(client, token, person["id"])
    second = new_episode(
        client, token, person["id"], admission_date="2024-06-01", discharge_date="2024-06-10",
        class_a="20,000", class_b="8,000", out_of_catalogue="1,000",
    )
    settled = [client.post(f"/api/episodes/{ep['id']}/settle", headers=bearer(token)) for ep in (second, first)]
    assert [response.status_code for response in settled] == [200, 200]

    def as_input(ep: dict) -> EpisodeInput:
        return EpisodeInput(
            str(ep["id"]), "p", PERSON["scheme"], PERSON["assistance_category"], PERSON["inclusive_enrolled"],
            PERSON["region"], ep["hospital_level"], dt.date.fromisoformat(ep["admission_date"]),
            dt.date.fromisoformat(ep["discharge_date"]), ep["icd10"], ep["amounts"]["class_a"]["fen"],
            ep["amounts"]["class_b"]["fen"], ep["amounts"]["out_of_catalogue"]["fen"],
        )

    # Settled out of order, each episode is paid against what was recorded when it was settled:
    # June alone, then March against June.
    expected = [explain_person_year([as_input(second)])[0], explain_person_year([as_input(second), as_input(first)])]
    expected = [expected[0], next(s for s in expected[1] if s.episode_id == str(first["id"]))]
    for response, settlement in zip(settled, expected, strict=True):
        body = response.json()
        assert body["settlement"]["parameter_set"]["id"] == settlement.parameter_set == "hangzhou-2024"
        assert [line["layer"] for line in body["settlement"]["lines"]] == list(LAYERS)
        records = body["coverage"]["records"]
        assert all(r["program"] == f"hangzhou-2024:{r['layer']}" and r["recorded_by"] == "caseworker" for r in records)
        assert records[0]["explanation"]["parameter_set"] == "hangzhou-2024"
        amounts = {name: money["fen"] for name, money in body["settlement"]["amounts"].items()}
        assert sum(r["amount"]["fen"] for r in records) + body["coverage"]["residual"]["fen"] == amounts["total"]
    assert {k: m["fen"] for k, m in settled[0].json()["settlement"]["amounts"].items()} == expected[0].amounts

    # Re-settling the year brings every episode to the batch path's answer, in discharge order.
    resettled = client.post(f"/api/persons/{person['id']}/years/2024/resettle", headers=bearer(token))
    assert resettled.status_code == 200, resettled.text
    assert resettled.json()["adjustments"]
    batch = explain_person_year([as_input(first), as_input(second)])
    for episode, settlement in zip((first, second), batch, strict=True):
        coverage = client.get(f"/api/episodes/{episode['id']}/coverage", headers=bearer(token)).json()
        by_layer: dict[str, int] = {}
        for record in coverage["records"]:
            by_layer[record["layer"]] = by_layer.get(record["layer"], 0) + record["amount"]["fen"]
        assert {layer: by_layer.get(layer, 0) for layer in LAYERS} == {l: settlement.amounts[l] for l in LAYERS}
        assert coverage["residual"]["fen"] == settlement.residual
    year = client.get(f"/api/persons/{person['id']}/years/2024", headers=bearer(token)).json()
    assert [e["episode"]["id"] for e in year["episodes"]] == [first["id"], second["id"]]
    assert year["residual"]["fen"] == sum(s.residual for s in batch)


def test_settling_twice_is_409_and_changes_nothing(app, client, tokens):
    token = tokens["admin"]
    episode = new_episode(client, token, new_person(client, token)["id"])
    assert client.post(f"/api/episodes/{episode['id']}/settle", headers=bearer(token)).status_code == 200
    rows = count(app, Coverage)
    assert_problem(client.post(f"/api/episodes/{episode['id']}/settle", headers=bearer(token)), 409, "episode_id")
    assert count(app, Coverage) == rows


def test_a_settlement_in_which_nobody_pays_still_counts_as_settled(client, tokens):
    token = tokens["caseworker"]
    person = new_person(client, token, assistance_category="none", inclusive_enrolled=False)
    episode = new_episode(client, token, person["id"], class_a="100", class_b="0", out_of_catalogue="0")
    first = client.post(f"/api/episodes/{episode['id']}/settle", headers=bearer(token))
    assert first.json()["coverage"]["records"] == []
    assert_problem(client.post(f"/api/episodes/{episode['id']}/settle", headers=bearer(token)), 409, "episode_id")


def test_a_failing_settlement_leaves_nothing_behind(app, client, tokens, monkeypatch):
    token = tokens["caseworker"]
    episode = new_episode(client, token, new_person(client, token)["id"])
    record = service.record_coverage
    calls = []

    def fail_on_second_layer(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise Conflict("simulated failure", "amount")
        return record(*args, **kwargs)

    monkeypatch.setattr(service, "record_coverage", fail_on_second_layer)
    assert_problem(client.post(f"/api/episodes/{episode['id']}/settle", headers=bearer(token)), 409, "amount")
    assert count(app, Coverage) == 0
    assert count(app, AuditLog, AuditLog.action.in_(["coverage.record", "episode.settle_statutory"])) == 0
    monkeypatch.setattr(service, "record_coverage", record)
    assert client.post(f"/api/episodes/{episode['id']}/settle", headers=bearer(token)).status_code == 200


def test_coverage_shows_records_and_residual_to_every_staff_role(client, tokens):
    token = tokens["caseworker"]
    episode = new_episode(client, token, new_person(client, token)["id"])
    before = client.get(f"/api/episodes/{episode['id']}/coverage", headers=bearer(tokens["analyst"])).json()
    assert before["records"] == [] and before["residual"] == before["total"] == episode["amounts"]["total"]
    settled = client.post(f"/api/episodes/{episode['id']}/settle", headers=bearer(token)).json()
    for role in ROLES:
        after = client.get(f"/api/episodes/{episode['id']}/coverage", headers=bearer(tokens[role]))
        assert after.json() == settled["coverage"]
    residual = settled["settlement"]["amounts"]["residual"]["fen"]
    covered = sum(r["amount"]["fen"] for r in settled["coverage"]["records"])
    assert covered + residual == episode["amounts"]["total"]["fen"]


@pytest.mark.parametrize(
    ("method", "path", "role", "status"),
    [
        ("post", "/api/persons", None, 401),
        ("post", "/api/persons", "bad-token", 401),
        ("post", "/api/persons", "analyst", 403),
        ("get", "/api/auth/me", None, 401),
        ("get", "/api/persons/1", None, 401),
        ("post", "/api/persons/1/episodes", "analyst", 403),
        ("post", "/api/episodes/1/settle", "analyst", 403),
        ("get", "/api/episodes/1/coverage", "bad-token", 401),
    ],
)
def test_roles_are_enforced(client, tokens, method, path, role, status):
    headers = {} if role is None else bearer(tokens.get(role, "not-a-real-token"))
    body = PERSON if path == "/api/persons" else EPISODE
    response = client.request(method, path, json=body if method == "post" else None, headers=headers)
    assert_problem(response, status, "role" if status == 403 else "Authorization")


def test_calculate_is_public_stores_nothing_and_matches_the_cascade(app, client):
    request = {
        "scheme": "employee", "assistance_category": "none", "inclusive_enrolled": False, "region": "510100",
        "hospital_level": 2, "admission_date": "2024-05-01", "discharge_date": "2024-05-09",
        "class_a": "8,000", "class_b": "4,000.40", "out_of_catalogue": "0",
    }
    response = client.post("/api/calculate", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    (expected,) = explain_person_year([
        EpisodeInput("x", "x", "employee", "none", False, "510100", 2, dt.date(2024, 5, 1), dt.date(2024, 5, 9), "",
                     800_000, 400_040, 0)
    ])
    assert {name: money["fen"] for name, money in body["amounts"].items()} == expected.amounts
    assert body["parameter_set"]["id"] == "chengdu-2024"
    assert body["lines"][0]["parameters"][0]["source"]
    assert count(app, AuditLog) == 0 and count(app, Episode) == 0


def test_calculate_names_the_bad_field(client):
    response = client.post("/api/calculate", json={"scheme": "resident", "hospital_level": 1,
                                                    "admission_date": "2024-01-02", "discharge_date": "2024-01-03",
                                                    "class_a": "12.345", "class_b": "0", "out_of_catalogue": "0"},
                           headers={"Accept-Language": "en"})
    problem = assert_problem(response, 422, "class_a")
    assert "two decimals" in problem["errors"][0]["message"]
    missing = client.post("/api/calculate", json={"scheme": "resident"})
    assert_problem(missing, 422, "class_a")
    assert {e["field"] for e in missing.json()["errors"]} >= {"hospital_level", "admission_date", "class_b"}


def test_parameter_sets_are_public(client):
    sets = client.get("/api/parameter-sets").json()
    assert {s["region"] for s in sets} == {"000000", "330100", "510100"}
    assert all(s["name_zh"] and s["effective_from"] for s in sets)
