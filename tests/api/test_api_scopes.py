"""Every route × role × scope: outside a caller's regions (or links) a record does not exist (404).

Two persons live in two regions (杭州 330100, 成都 510100), each with a
settled episode. Each account can see one, both or none of them. The walk
covers every route of the app with a record id in its path, with the
record the caller may see and with the one it may not; a new route with an
id must be added to BODIES, or this test fails. Routes of the mutual-aid
context (MUTUAL_AID_PATHS: memberships, claims, jury cases, periods, plans)
are walked by tests/mutual_aid/test_scopes.py and left out here.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from helpers import valid_id_number
from test_api_access import declared_routes

from gongji.api.app import create_app
from gongji.api.auth import PUBLIC
from gongji.api.auth_service import create_user, issue_token
from gongji.api.models import User
from gongji.core.db import transaction
from gongji.core.settings import Settings
from gongji.episodes import service
from gongji.episodes.models import PersonAccount

PASSWORD = "a long and unusual passphrase 7"
EPISODE = {
    "admission_date": "2024-04-01", "discharge_date": "2024-04-09", "hospital_level": 2, "icd10": "K35",
    "class_a": "8,000", "class_b": "2,000", "out_of_catalogue": "500",
}
#: A valid body for every route that takes one and has a record id in its path.
BODIES = {
    ("POST", "/api/persons/{person_id}/episodes"): EPISODE,
    ("POST", "/api/episodes/{episode_id}/settle"): None,
    ("POST", "/api/persons/{person_id}/years/{year}/resettle"): None,
    ("GET", "/api/persons/{person_id}"): None,
    ("GET", "/api/episodes/{episode_id}"): None,
    ("GET", "/api/episodes/{episode_id}/coverage"): None,
    ("GET", "/api/persons/{person_id}/years/{year}"): None,
    # The caseworker workbench (web forms: the body goes as form fields).
    ("GET", "/workbench/persons/{person_id}"): None,
    ("GET", "/workbench/persons/{person_id}/episodes/new"): None,
    ("POST", "/workbench/persons/{person_id}/episodes"): EPISODE,
    ("POST", "/workbench/episodes/{episode_id}/settle"): None,
    ("POST", "/workbench/persons/{person_id}/years/{year}/resettle"): None,
    ("GET", "/workbench/episodes/{episode_id}/sheet"): None,
}
#: username → (role, regions, the persons it may see)
ACCOUNTS = {
    "admin-all": ("admin", ("000000",), {"hz", "cd"}),
    "case-hz": ("caseworker", ("330100",), {"hz"}),
    "case-zj": ("caseworker", ("330000",), {"hz"}),
    "case-cd": ("caseworker", ("510104",), set()),
    "analyst-cd": ("analyst", ("510100",), {"cd"}),
    "family-hz": ("family", (), {"hz"}),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    var = tmp_path_factory.mktemp("scopes")
    app = create_app(Settings(database_url=f"sqlite:///{var / 'gongji.sqlite3'}", var_dir=var, params_dir=None))
    context = app.state.gongji
    records = {}
    tokens = {}
    with context.transaction() as session:
        for key, region, birth in (("hz", "330106", dt.date(1970, 3, 3)), ("cd", "510104", dt.date(1980, 6, 6))):
            person = service.create_person(
                session, context.vault, valid_id_number(region, birth, 21), "周杰", "resident", "none", False,
                region[:4] + "00",
            )
            episode = service.create_episode(
                session, person.id, dt.date(2024, 2, 1), dt.date(2024, 2, 8), 2, "K35", 900_000, 100_000, 0,
                book=context.book,
            )
            records[key] = {"person_id": person.id, "episode_id": episode.id}
        for username, (role, regions, _) in ACCOUNTS.items():
            user = create_user(session, username, PASSWORD, role, username, regions=regions)
            tokens[username] = issue_token(session, user)
        family = session.query(User).filter_by(username="family-hz").one()
        session.add(PersonAccount(user_id=family.id, person_id=records["hz"]["person_id"], relationship="child"))
    return app, records, tokens


def path_for(route: APIRoute, ids: dict[str, int]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "2024" if m.group(1) == "year" else str(ids[m.group(1)]), route.path)


#: Path parameters that name a patient's records; routes with other ids (user accounts) are admin-only.
PERSON_IDS = {"person_id", "episode_id"}
#: The mutual-aid context, walked route × account × scope in tests/mutual_aid/test_scopes.py.
MUTUAL_AID_PATHS = ("/api/mutual-aid/", "/api/me/memberships", "/api/me/bills", "/mutual-aid/")


def routes_with_ids(app) -> list[tuple[str, APIRoute]]:
    found = []
    for route in declared_routes(app):
        if not PERSON_IDS & set(re.findall(r"\{(\w+)\}", route.path)):
            continue
        for method in route.methods:
            found.append((method, route))
    return found


def test_every_route_with_an_id_is_walked(world):
    app, _, _ = world
    walked = {(method, route.path) for method, route in routes_with_ids(app)}
    assert walked == set(BODIES), "add the new route to BODIES"
    for route in declared_routes(app):
        others = set(re.findall(r"\{(\w+)\}", route.path)) - PERSON_IDS - {"year"}
        if others and not route.path.startswith(MUTUAL_AID_PATHS):
            # The public ledger holds no personal data; any other record id is for admins only.
            expected = [PUBLIC] if route.path.startswith(("/api/ledger/", "/ledger/")) else ["admin"]
            assert route.openapi_extra["x-roles"] == expected, route.path
    assert all(route.openapi_extra["x-roles"] != [PUBLIC] for _, route in routes_with_ids(app))


@pytest.mark.parametrize("username", list(ACCOUNTS))
def test_each_account_sees_exactly_its_scope_on_every_route(world, username):
    app, records, tokens = world
    role, _, visible = ACCOUNTS[username]
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {tokens[username]}"}
    for method, route in routes_with_ids(app):
        allowed = role in route.openapi_extra["x-roles"]
        for key in ("hz", "cd"):
            body = BODIES[(method, route.path)]
            sent = {"data": body} if route.path.startswith("/workbench/") else {"json": body}
            response = client.request(method, path_for(route, records[key]), headers=headers, **sent)
            where = f"{username} {method} {route.path} on {key}"
            if not allowed:
                assert response.status_code == 403, where
            elif key in visible:
                assert response.status_code in (200, 201, 409), f"{where}: {response.status_code} {response.text}"
            else:
                assert response.status_code == 404, f"{where}: {response.status_code} {response.text}"


def test_search_and_lists_only_show_what_the_caller_may_see(world):
    app, records, tokens = world
    client = TestClient(app)
    found = client.post("/api/persons/search", json={"name": "周杰"},
                        headers={"Authorization": f"Bearer {tokens['case-hz']}"})
    assert found.status_code == 200
    assert [p["id"] for p in found.json()] == [records["hz"]["person_id"]]
    everyone = client.post("/api/persons/search", json={"name": "周*"},
                           headers={"Authorization": f"Bearer {tokens['admin-all']}"})
    assert sorted(p["id"] for p in everyone.json()) == sorted(r["person_id"] for r in records.values())
    mine = client.get("/api/me/persons", headers={"Authorization": f"Bearer {tokens['family-hz']}"})
    assert [p["id"] for p in mine.json()] == [records["hz"]["person_id"]]


def test_creating_a_person_outside_ones_regions_is_refused(world):
    app, _, tokens = world
    response = TestClient(app).post(
        "/api/persons", headers={"Authorization": f"Bearer {tokens['case-hz']}"},
        json={"id_number": valid_id_number("510104", dt.date(1990, 1, 1), 33), "name": "王五",
              "scheme": "resident", "region": "510100"},
    )
    assert response.status_code == 403 and response.json()["field"] == "region"


def test_family_links_a_patient_only_with_the_right_id_and_name(world):
    app, records, tokens = world
    client = TestClient(app)
    with transaction(app.state.gongji.sessions) as session:
        user = create_user(session, "family-new", PASSWORD, "family", "家属")
        token = issue_token(session, user)
    headers = {"Authorization": f"Bearer {token}"}
    number = valid_id_number("510104", dt.date(1980, 6, 6), 21)
    wrong = client.post("/api/me/persons", headers=headers,
                        json={"id_number": number, "name": "别人", "relationship": "child"})
    unknown = client.post("/api/me/persons", headers=headers,
                          json={"id_number": valid_id_number("510104", dt.date(1981, 6, 6), 21), "name": "周杰",
                                "relationship": "child"})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert client.get(f"/api/persons/{records['cd']['person_id']}", headers=headers).status_code == 404
    linked = client.post("/api/me/persons", headers=headers,
                         json={"id_number": number, "name": "周杰", "relationship": "child"})
    assert linked.status_code == 201 and linked.json()["masked_name"] == "周*"
    assert client.get(f"/api/persons/{records['cd']['person_id']}", headers=headers).status_code == 200
    for _ in range(4):
        client.post("/api/me/persons", headers=headers, json={"id_number": number, "name": "x", "relationship": "child"})
    throttled = client.post("/api/me/persons", headers=headers,
                            json={"id_number": number, "name": "周杰", "relationship": "child"})
    assert throttled.status_code == 429
