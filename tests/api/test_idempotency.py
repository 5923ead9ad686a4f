"""Idempotency-Key on creating routes: a retry replays the first answer and creates nothing twice.

On SQLite and PostgreSQL, through HTTP, including concurrent duplicates and a crash mid-request.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import valid_id_number
from sqlalchemy import func, select

from gongji.api.auth_service import create_user
from gongji.api.idempotency import KEY_HEADER, REPLAYED_HEADER
from gongji.api.models import NATIONWIDE, IdempotencyRecord
from gongji.core.audit import AuditLog
from gongji.episodes import service
from gongji.episodes.models import Coverage, Episode, Person

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
CREATING = [("post", "/api/persons"), ("post", "/api/persons/{person_id}/episodes"),
            ("post", "/api/episodes/{episode_id}/settle")]


@pytest.fixture
def auth(app: FastAPI, client: TestClient) -> dict[str, dict[str, str]]:
    """Authorization headers of a caseworker and an admin, both working in every region."""
    headers = {}
    for role in ("caseworker", "admin"):
        with app.state.gongji.transaction() as session:
            create_user(session, role, PASSWORD, role, f"Test {role}", regions=(NATIONWIDE,))
        token = client.post("/api/auth/login", json={"username": role, "password": PASSWORD}).json()
        headers[role] = {"Authorization": f"Bearer {token['access_token']}"}
    return headers


def with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, KEY_HEADER: key}


def count(app: FastAPI, model, *where) -> int:
    with app.state.gongji.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def assert_problem(response, status: int, field: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == field
    return problem


@pytest.fixture
def person_id(client, auth) -> int:
    response = client.post("/api/persons", json=PERSON, headers=auth["caseworker"])
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_the_header_is_documented_on_every_creating_route(app):
    paths = app.openapi()["paths"]
    for method, path in CREATING:
        parameters = paths[path][method]["parameters"]
        (header,) = [p for p in parameters if p["in"] == "header" and p["name"] == KEY_HEADER]
        assert header["required"] is False
        schema = header["schema"]["anyOf"][0] if "anyOf" in header["schema"] else header["schema"]
        assert (schema["minLength"], schema["maxLength"]) == (1, 255)
    assert all(p["name"] != KEY_HEADER for p in paths["/api/persons/{person_id}"]["get"].get("parameters", []))


def test_a_retried_person_is_created_once_and_the_first_answer_replayed(app, client, auth):
    key = str(uuid.uuid4())
    first = client.post("/api/persons", json=PERSON, headers=with_key(auth["caseworker"], key))
    again = client.post("/api/persons", json=PERSON, headers=with_key(auth["caseworker"], key))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert REPLAYED_HEADER.lower() not in first.headers
    assert again.headers[REPLAYED_HEADER] == "true"
    assert again.headers["content-type"] == "application/json"
    assert count(app, Person) == 1
    assert count(app, AuditLog, AuditLog.action == "person.create") == 1
    without_key = client.post("/api/persons", json=PERSON, headers=auth["caseworker"])
    assert_problem(without_key, 409, "id_number")


def test_a_retried_episode_is_recorded_once(app, client, auth, person_id):
    key = "episode-" + uuid.uuid4().hex
    url = f"/api/persons/{person_id}/episodes"
    answers = [client.post(url, json=EPISODE, headers=with_key(auth["caseworker"], key)) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    assert [a.headers.get(REPLAYED_HEADER) for a in answers] == [None, "true", "true"]
    assert count(app, Episode) == 1
    with app.state.gongji.sessions() as session:
        (record,) = session.scalars(select(IdempotencyRecord)).all()
    assert (record.key, record.method, record.path, record.status_code) == (key, "POST", url, 201)
    assert record.response == answers[0].json()


def test_a_retried_settlement_replays_instead_of_409(app, client, auth, person_id):
    episode = client.post(f"/api/persons/{person_id}/episodes", json=EPISODE, headers=auth["caseworker"]).json()
    url = f"/api/episodes/{episode['id']}/settle"
    first = client.post(url, headers=with_key(auth["caseworker"], "settle-1"))
    again = client.post(url, headers=with_key(auth["caseworker"], "settle-1"))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers[REPLAYED_HEADER] == "true"
    rows = count(app, Coverage)
    assert_problem(client.post(url, headers=with_key(auth["caseworker"], "settle-2")), 409, "episode_id")
    assert count(app, Coverage) == rows


def test_the_same_key_for_another_request_is_422_and_creates_nothing(app, client, auth, person_id):
    url = f"/api/persons/{person_id}/episodes"
    headers = with_key(auth["caseworker"], "reused")
    assert client.post(url, json=EPISODE, headers=headers).status_code == 201
    other_body = client.post(url, json={**EPISODE, "class_a": "1.00"}, headers=headers)
    assert_problem(other_body, 422, KEY_HEADER)
    other_person = client.post("/api/persons", json={**PERSON, "id_number": valid_id_number(
        "330106", dt.date(1970, 1, 1), 11)}, headers=auth["caseworker"]).json()
    other_path = client.post(f"/api/persons/{other_person['id']}/episodes", json=EPISODE, headers=headers)
    assert_problem(other_path, 422, KEY_HEADER)
    assert count(app, Episode) == 1


def test_errors_are_not_stored_so_a_corrected_retry_succeeds(app, client, auth):
    headers = with_key(auth["caseworker"], "fix-and-retry")
    bad = {**PERSON, "id_number": PERSON["id_number"][:-1] + ("0" if PERSON["id_number"][-1] != "0" else "1")}
    assert_problem(client.post("/api/persons", json=bad, headers=headers), 422, "id_number")
    assert count(app, IdempotencyRecord) == 0
    corrected = client.post("/api/persons", json=PERSON, headers=headers)
    assert corrected.status_code == 201 and REPLAYED_HEADER not in corrected.headers
    assert count(app, Person) == count(app, IdempotencyRecord) == 1


def test_keys_belong_to_their_caller(app, client, auth, person_id):
    url = f"/api/persons/{person_id}/episodes"
    answers = [client.post(url, json=EPISODE, headers=with_key(auth[role], "shared")) for role in auth]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json()["id"] != answers[1].json()["id"]
    assert count(app, Episode) == 2


@pytest.mark.parametrize("key", ["", " ", "a b", "x" * 256, "密钥"])
def test_malformed_keys_are_422_naming_the_header(client, auth, key):
    headers = {**auth["caseworker"], KEY_HEADER: key.encode("utf-8")}
    assert_problem(client.post("/api/persons", json=PERSON, headers=headers), 422, KEY_HEADER)


def test_a_crash_before_commit_leaves_neither_episode_nor_key(app, client, auth, person_id, monkeypatch):
    url = f"/api/persons/{person_id}/episodes"
    headers = with_key(auth["caseworker"], "crash")
    audit = service.record_audit

    def power_cut(*args, **kwargs):
        raise RuntimeError("power cut after the episode was written, before commit")

    monkeypatch.setattr(service, "record_audit", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        client.post(url, json=EPISODE, headers=headers)
    assert count(app, Episode) == count(app, IdempotencyRecord) == 0
    monkeypatch.setattr(service, "record_audit", audit)

    retried = client.post(url, json=EPISODE, headers=headers)
    assert retried.status_code == 201 and REPLAYED_HEADER not in retried.headers
    assert count(app, Episode) == count(app, IdempotencyRecord) == 1
    assert client.post(url, json=EPISODE, headers=headers).json() == retried.json()


def test_concurrent_duplicates_record_one_episode(app, client, auth, person_id, monkeypatch):
    """Six clients send the same keyed request at once: one records, five replay its answer.

    Recording is slowed down so the others surely arrive while the first is uncommitted
    (on PostgreSQL their key inserts wait for its commit; on SQLite, for the write lock).
    """
    url = f"/api/persons/{person_id}/episodes"
    headers = with_key(auth["caseworker"], "at-once")
    start = threading.Barrier(6)
    answers = []
    create_episode = service.create_episode
    recording = []

    def slow_create_episode(*args, **kwargs):
        recording.append(time.monotonic())
        time.sleep(0.3)
        return create_episode(*args, **kwargs)

    monkeypatch.setattr(service, "create_episode", slow_create_episode)

    def send() -> None:
        start.wait()
        answers.append(client.post(url, json=EPISODE, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 6
    assert len({a.content for a in answers}) == 1
    assert sorted(a.headers.get(REPLAYED_HEADER, "first") for a in answers) == ["first"] + ["true"] * 5
    assert count(app, Episode) == count(app, IdempotencyRecord) == 1
    assert count(app, AuditLog, AuditLog.action == "episode.create") == 1
    assert len(recording) == 1
