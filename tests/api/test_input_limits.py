"""Input limits: ids within the key's range, a 1 MiB body cap, strict request models, dates and amounts.

Every refusal is a 4xx problem naming the field, never a server error, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import valid_id_number
from sqlalchemy import func, select

from gongji.api.app import DESCRIPTION, create_app
from gongji.api.auth_service import create_user
from gongji.api.deps import MAX_ROW_ID
from gongji.api.models import NATIONWIDE
from gongji.api.limits import MAX_BODY_BYTES
from gongji.core.settings import Settings
from gongji.episodes.models import Episode, Person
from gongji.episodes.schemas import EpisodeCreate
from gongji.rules.schemas import CalculateRequest, today_in_china

PASSWORD = "correct horse battery staple"
PERSON = {
    "id_number": valid_id_number("330106", dt.date(1968, 4, 12), 35),
    "name": "张小明",
    "scheme": "resident",
    "region": "330100",
}
EPISODE = {
    "admission_date": "2024-03-04",
    "discharge_date": "2024-03-18",
    "hospital_level": 3,
    "icd10": "I63.9",
    "class_a": "60,000.00",
    "class_b": "30,000",
    "out_of_catalogue": "0",
}
CALCULATION = {
    "scheme": "employee",
    "hospital_level": 2,
    "region": "510100",
    "admission_date": "2024-05-01",
    "discharge_date": "2024-05-09",
    "class_a": "8,000",
    "class_b": "4,000.40",
    "out_of_catalogue": "0",
}
OUT_OF_RANGE_IDS = ["0", "-1", str(MAX_ROW_ID + 1), str(2**63), "9" * 40]


def _settings(db_url: str, tmp_path) -> Settings:
    return Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None)


@pytest.fixture
def app(db_url: str, tmp_path) -> FastAPI:
    return create_app(_settings(db_url, tmp_path))


@pytest.fixture
def sqlite_app(tmp_path) -> FastAPI:
    return create_app(_settings(f"sqlite:///{tmp_path / 'gongji.sqlite3'}", tmp_path))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def caseworker(app: FastAPI, client: TestClient) -> dict[str, str]:
    """Authorization headers of a caseworker who may work in every region."""
    with app.state.gongji.transaction() as session:
        create_user(session, "caseworker", PASSWORD, "caseworker", "Test caseworker", regions=(NATIONWIDE,))
    token = client.post("/api/auth/login", json={"username": "caseworker", "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def assert_problem(response, status: int, *fields: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    named = {error["field"] for error in problem["errors"]}
    assert set(fields) <= named, (fields, problem)
    return problem


def count(app: FastAPI, model) -> int:
    with app.state.gongji.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- ids in paths -----------------------------------------------------------------------------


def test_every_id_in_a_path_is_bounded_by_the_key_range(sqlite_app):
    """Each `{..._id}` path parameter of every operation documents (and so enforces) 1 … 2³¹−1."""
    unbounded = []
    for path, operations in sqlite_app.openapi()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                    schema = parameter["schema"]
                    if (schema.get("minimum"), schema.get("maximum")) != (1, MAX_ROW_ID):
                        unbounded.append(f"{method.upper()} {path} {parameter['name']}")
    assert unbounded == []


ID_ROUTES = [
    ("get", "/api/persons/{}", "person_id"),
    ("post", "/api/persons/{}/episodes", "person_id"),
    ("get", "/api/episodes/{}", "episode_id"),
    ("post", "/api/episodes/{}/settle", "episode_id"),
    ("get", "/api/episodes/{}/coverage", "episode_id"),
]


def test_ids_beyond_the_key_range_are_422_naming_the_id(client, caseworker):
    for method, template, field in ID_ROUTES:
        for value in OUT_OF_RANGE_IDS:
            body = EPISODE if template.endswith("episodes") else None
            response = client.request(method, template.format(value), json=body, headers=caseworker)
            assert_problem(response, 422, field)


def test_the_largest_id_is_an_ordinary_not_found(client, caseworker):
    response = client.get(f"/api/persons/{MAX_ROW_ID}", headers=caseworker)
    assert_problem(response, 404, "person_id")


# --- the body cap -----------------------------------------------------------------------------


def _call(app: FastAPI, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]) -> tuple[int, bytes, int]:
    """Drive the ASGI app directly; returns (status, body, bytes of the request the app pulled)."""
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/auth/login", "raw_path": b"/api/auth/login", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], body, pulled


def _endless(chunk_size: int = 64 * 1024, total: int = 100 * 1024 * 1024) -> Iterator[bytes]:
    """Up to 100 MB of JSON whitespace in 64 KiB chunks, made as they are pulled."""
    for _ in range(total // chunk_size):
        yield b" " * chunk_size


def test_a_declared_oversize_body_is_413_before_any_of_it_is_read(sqlite_app):
    status, body, pulled = _call(sqlite_app, [(b"content-length", str(100 * 1024 * 1024).encode())], _endless())
    assert status == 413
    problem = json.loads(body)
    assert problem["status"] == 413 and str(MAX_BODY_BYTES) in problem["detail"]
    assert "字节" in problem["detail"]  # Chinese unless the client asks for English
    assert pulled == 0
    english = json.loads(_call(sqlite_app, [(b"content-length", b"99999999"), (b"accept-language", b"en")],
                               _endless())[1])
    assert english["detail"] == f"the request body exceeds {MAX_BODY_BYTES} bytes"


def test_a_chunked_oversize_body_is_413_after_at_most_the_cap(sqlite_app):
    status, body, pulled = _call(sqlite_app, [(b"transfer-encoding", b"chunked")], _endless())
    assert status == 413
    assert json.loads(body)["status"] == 413 and "{limit}" not in json.loads(body)["detail"]
    assert MAX_BODY_BYTES < pulled <= MAX_BODY_BYTES + 64 * 1024


def test_oversize_login_through_http_is_413_problem(sqlite_app):
    padding = " " * MAX_BODY_BYTES
    with TestClient(sqlite_app) as client:
        response = client.post(
            "/api/auth/login", content=f'{{"username": "x", "password": "y"}}{padding}',
            headers={"content-type": "application/json"},
        )
        assert_problem(response, 413)
        at_the_cap = client.post(
            "/api/auth/login", content='{"username": "x"}'.ljust(MAX_BODY_BYTES),
            headers={"content-type": "application/json"},
        )
    assert at_the_cap.status_code == 422  # read and validated: the cap is inclusive


def test_an_unreadable_body_is_a_documented_400_problem(sqlite_app):
    with TestClient(sqlite_app) as client:
        response = client.post("/api/calculate", content=b"\xff\xfe{", headers={"content-type": "application/json"})
    assert_problem(response, 400)
    for operations in sqlite_app.openapi()["paths"].values():
        for operation in operations.values():
            assert {"400", "413"} <= operation["responses"].keys()


def test_the_cap_is_documented():
    assert f"{MAX_BODY_BYTES // (1024 * 1024)} MiB" in DESCRIPTION and "413" in DESCRIPTION


# --- unknown fields ---------------------------------------------------------------------------


def test_unknown_fields_are_refused_naming_each(app, client, caseworker):
    extra = {"nickname": "x", "amount_total": "1"}
    assert_problem(client.post("/api/calculate", json={**CALCULATION, **extra}), 422, *extra)
    assert_problem(client.post("/api/persons", json={**PERSON, **extra}, headers=caseworker), 422, *extra)
    person = client.post("/api/persons", json=PERSON, headers=caseworker).json()
    response = client.post(f"/api/persons/{person['id']}/episodes", json={**EPISODE, **extra}, headers=caseworker)
    assert_problem(response, 422, *extra)
    assert count(app, Person) == 1 and count(app, Episode) == 0


# --- dates ------------------------------------------------------------------------------------


BAD_DATES = [
    ({"admission_date": 0}, "admission_date"),
    ({"admission_date": 20240304}, "admission_date"),
    ({"discharge_date": 1710720000}, "discharge_date"),
    ({"admission_date": "20240304"}, "admission_date"),
    ({"admission_date": "2024-03-04T00:00:00"}, "admission_date"),
    ({"admission_date": "２０２４-０３-０４"}, "admission_date"),
    ({"admission_date": "0001-01-01"}, "admission_date"),
    ({"admission_date": "1900-01-01"}, "admission_date"),
    ({"admission_date": "1949-12-31"}, "admission_date"),
    ({"discharge_date": "9999-12-31"}, "discharge_date"),
    ({"discharge_date": "2024-03-03"}, "discharge_date"),
    ({"discharge_date": "2024-02-30"}, "discharge_date"),
]


def test_bad_dates_are_422_naming_the_field_and_record_nothing(app, client, caseworker):
    person = client.post("/api/persons", json=PERSON, headers=caseworker).json()
    for changes, field in BAD_DATES:
        assert_problem(client.post("/api/calculate", json={**CALCULATION, **changes}), 422, field)
        response = client.post(
            f"/api/persons/{person['id']}/episodes", json={**EPISODE, **changes}, headers=caseworker
        )
        assert_problem(response, 422, field)
    assert count(app, Episode) == 0


def test_tomorrow_is_refused_and_today_is_accepted(client, caseworker):
    today = today_in_china()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    for field in ("admission_date", "discharge_date"):
        problem = assert_problem(
            client.post(
                "/api/calculate", json={**CALCULATION, "admission_date": "2024-05-01", field: tomorrow},
                headers={"Accept-Language": "en"},
            ),
            422, field,
        )
        assert "today" in problem["detail"]
    person = client.post("/api/persons", json=PERSON, headers=caseworker).json()
    stay = {"admission_date": today.isoformat(), "discharge_date": today.isoformat()}
    response = client.post(f"/api/persons/{person['id']}/episodes", json={**EPISODE, **stay}, headers=caseworker)
    assert response.status_code == 201, response.text
    assert response.json()["discharge_date"] == today.isoformat()


def test_the_window_starts_on_1950_01_01():
    """The first day of the window passes the schema (whether parameters cover it is the rules' question)."""
    stay = {"admission_date": "1950-01-01", "discharge_date": "1950-01-01"}
    assert EpisodeCreate.model_validate({**EPISODE, **stay}).admission_date == dt.date(1950, 1, 1)
    assert CalculateRequest.model_validate({**CALCULATION, **stay}).discharge_date == dt.date(1950, 1, 1)


def test_all_field_errors_of_one_request_come_back_together(client):
    request = {
        **CALCULATION,
        "admission_date": 0,
        "discharge_date": "9999-01-01",
        "class_a": "٣٠٠",
        "hospital_level": 7,
        "colour": "red",
    }
    problem = assert_problem(
        client.post("/api/calculate", json=request), 422,
        "admission_date", "discharge_date", "class_a", "hospital_level", "colour",
    )
    assert len(problem["errors"]) == 5


def test_discharge_before_admission_is_reported_with_other_errors(client):
    request = {**CALCULATION, "admission_date": "2024-05-09", "discharge_date": "2024-05-01", "class_b": "1.234"}
    response = client.post("/api/calculate", json=request, headers={"Accept-Language": "en"})
    problem = assert_problem(response, 422, "discharge_date", "class_b")
    assert any("before admission" in error["message"] for error in problem["errors"])


# --- amounts ----------------------------------------------------------------------------------


def test_full_width_amounts_are_read_and_other_scripts_refused(client, caseworker):
    person = client.post("/api/persons", json=PERSON, headers=caseworker).json()
    full_width = {"class_a": "１２，３４５．６０", "class_b": "￥１，０００", "out_of_catalogue": "０"}
    response = client.post(f"/api/persons/{person['id']}/episodes", json={**EPISODE, **full_width}, headers=caseworker)
    assert response.status_code == 201, response.text
    assert response.json()["amounts"]["class_a"] == {"fen": 1_234_560, "yuan": "12,345.60"}
    assert response.json()["amounts"]["class_b"]["fen"] == 100_000
    for text in ("٣٠٠", "10²", "①"):
        problem = assert_problem(client.post("/api/calculate", json={**CALCULATION, "class_a": text}), 422, "class_a")
        assert "0–9" in problem["detail"]
