"""The caseworker workbench (个案工作台) over HTTP, as a browser uses it, on SQLite and PostgreSQL.

A browser asks for HTML (`Accept: text/html`), carries the session and CSRF cookies, and repeats the
CSRF token in each form; the pages must agree with their API twins and show masked identities only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from helpers import valid_id_number

from gongji.api.app import create_app
from gongji.api.auth import CSRF_COOKIE, SESSION_COOKIE
from gongji.api.auth_service import create_user
from gongji.api.throttle import ACCOUNT_FAILURES
from gongji.core.settings import Settings
from gongji.episodes import service
from gongji.episodes.models import PersonAccount
from gongji.web.i18n import gettext_for, translations

PASSWORD = "a long and unusual passphrase 7"
HTML = {"Accept": "text/html,application/xhtml+xml"}
#: username → (role, regions)
USERS = {
    "case-hz": ("caseworker", ("330100",)),
    "admin": ("admin", ("000000",)),
    "analyst-hz": ("analyst", ("330100",)),
    "family-hz": ("family", ()),
}
HZ_ID = valid_id_number("330106", dt.date(1970, 3, 3), 21)
CD_ID = valid_id_number("510104", dt.date(1980, 6, 6), 33)
NEW_ID = valid_id_number("330102", dt.date(1985, 7, 9), 45)
#: Discharged later but recorded first, then an earlier stay: re-settling the year must adjust both.
LATER = {
    "admission_date": "2024-06-01", "discharge_date": "2024-06-10", "hospital_level": "3", "icd10": "i63.9",
    "class_a": "60,000", "class_b": "30,000.00", "out_of_catalogue": "10,000",
}
EARLIER = {
    "admission_date": "2024-03-01", "discharge_date": "2024-03-08", "hospital_level": "2", "icd10": "K35",
    "class_a": "20,000", "class_b": "5,000", "out_of_catalogue": "0",
}


@pytest.fixture
def world(db_url: str, tmp_path) -> dict:
    """Two registered persons (杭州 张小明 with no episodes, 成都 李四) and one account per role."""
    app = create_app(Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None))
    context = app.state.gongji
    with context.transaction() as session:
        hz = service.create_person(session, context.vault, HZ_ID, "张小明", "resident", "subsistence", True, "330100")
        cd = service.create_person(session, context.vault, CD_ID, "李四", "employee", "none", False, "510100")
        users = {
            name: create_user(session, name, PASSWORD, role, f"测试{name}", regions=regions)
            for name, (role, regions) in USERS.items()
        }
        session.add(PersonAccount(user_id=users["family-hz"].id, person_id=hz.id, relationship="child"))
    return {"app": app, "hz": hz.id, "cd": cd.id}


@pytest.fixture
def browser(world) -> Iterator[TestClient]:
    with TestClient(world["app"], headers=HTML) as client:
        yield client


def sign_in(client: TestClient, username: str = "case-hz", password: str = PASSWORD, **extra):
    client.get("/workbench/login")
    form = {"username": username, "password": password, "csrf_token": client.cookies.get(CSRF_COOKIE), **extra}
    return client.post("/workbench/login", data=form, follow_redirects=False)


def post(client: TestClient, path: str, data: dict | None = None, **kwargs):
    """A form post as the page sends it: with the CSRF token the page carries."""
    return client.post(path, data={**(data or {}), "csrf_token": client.cookies.get(CSRF_COOKIE)}, **kwargs)


def register(client: TestClient, **fields) -> int:
    form = {"id_number": NEW_ID, "name": "王小红", "scheme": "resident", "assistance_category": "subsistence",
            "inclusive_enrolled": "on", "region": "330100", **fields}
    response = post(client, "/workbench/persons", form, follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def record(client: TestClient, person_id: int, stay: dict) -> int:
    response = post(client, f"/workbench/persons/{person_id}/episodes", stay, follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(re.search(r"#episode-(\d+)$", response.headers["location"]).group(1))


def wrong_check_digit(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


def api_token(client: TestClient, username: str = "case-hz") -> dict[str, str]:
    answer = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {answer.json()['access_token']}", "Accept": "application/json"}


def fens(html: str, attribute: str) -> dict[str, int]:
    return {layer: int(fen) for layer, fen in re.findall(rf'data-layer="(\w+)"[^>]*{attribute}="(-?\d+)"', html)}


def test_without_a_session_pages_redirect_to_login_and_api_clients_get_401(browser):
    page = browser.get("/workbench/persons/1?year=2024", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/workbench/login?next=%2Fworkbench%2Fpersons%2F1%3Fyear%3D2024"
    htmx = browser.post("/workbench/search", headers={"HX-Request": "true"}, data={"name": "张小明"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/workbench/login"
    api = browser.get("/workbench/persons/1", headers={"Accept": "application/json"})
    assert api.status_code == 401 and api.headers["content-type"].startswith("application/problem+json")


def test_sign_in_sets_strict_httponly_cookies_and_returns_to_the_page_asked_for(browser, world):
    answer = sign_in(browser, next=f"/workbench/persons/{world['hz']}")
    assert answer.status_code == 303 and answer.headers["location"] == f"/workbench/persons/{world['hz']}"
    cookies = {value.split("=", 1)[0]: value.lower() for value in answer.headers.get_list("set-cookie")}
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        assert "httponly" in cookies[name] and "samesite=strict" in cookies[name] and "path=/" in cookies[name]
    assert "max-age=43200" in cookies[SESSION_COOKIE]
    assert browser.get(answer.headers["location"]).status_code == 200
    elsewhere = sign_in(browser, next="https://evil.example/workbench")
    assert elsewhere.headers["location"] == "/workbench"


def test_sign_out_revokes_the_token(browser):
    sign_in(browser)
    session = browser.cookies.get(SESSION_COOKIE)
    assert post(browser, "/workbench/logout", follow_redirects=False).headers["location"] == "/workbench/login"
    browser.cookies.set(SESSION_COOKIE, session)
    assert browser.get("/workbench", follow_redirects=False).status_code == 303
    stale_form = browser.post("/workbench/search", data={"name": "张小明", "csrf_token": "old"}, follow_redirects=False)
    assert stale_form.status_code == 303 and stale_form.headers["location"] == "/workbench/login"
    assert browser.get("/api/auth/me", headers={"Authorization": f"Bearer {session}"}).status_code == 401


def test_web_and_api_logins_share_one_throttle_and_the_page_shows_the_wait(browser):
    for _ in range(ACCOUNT_FAILURES.amount):
        assert sign_in(browser, password="not the password at all").status_code == 401
    refused = sign_in(browser)
    assert refused.status_code == 429
    seconds = int(refused.headers["Retry-After"])
    assert 0 < seconds <= 15 * 60
    assert f'data-retry-after="{seconds}"' in refused.text
    minutes = -(-seconds // 60)
    english = (
        "Please wait %(count)s minute before trying again.", "Please wait %(count)s minutes before trying again."
    )
    wait = translations("zh").ngettext(*english, minutes)
    assert wait not in english and wait % {"count": minutes} in refused.text
    api = browser.post("/api/auth/login", json={"username": "case-hz", "password": PASSWORD})
    assert api.status_code == 429


def test_the_login_form_and_every_cookie_authenticated_change_need_the_csrf_token(browser, world):
    browser.get("/workbench/login")
    forged = browser.post(
        "/workbench/login", data={"username": "case-hz", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert forged.status_code == 403 and SESSION_COOKIE not in browser.cookies
    sign_in(browser)
    stay = {**EARLIER, "csrf_token": "forged"}
    assert browser.post(f"/workbench/persons/{world['hz']}/episodes", data=stay).status_code == 403
    assert browser.post(f"/workbench/persons/{world['hz']}/episodes", data=EARLIER).status_code == 403
    # The cookie works for the API too, with the token in the header for anything that writes.
    assert browser.get(f"/api/persons/{world['hz']}").status_code == 200
    body = {k: (int(v) if k == "hospital_level" else v) for k, v in EARLIER.items()}
    assert browser.post(f"/api/persons/{world['hz']}/episodes", json=body).status_code == 403
    headers = {"X-CSRF-Token": browser.cookies.get(CSRF_COOKIE)}
    assert browser.post(f"/api/persons/{world['hz']}/episodes", json=body, headers=headers).status_code == 201


def test_search_finds_by_id_or_masked_name_within_the_callers_regions_only(browser, world):
    sign_in(browser)
    by_id = post(browser, "/workbench/search", {"id_number": HZ_ID})
    assert by_id.status_code == 200
    assert re.findall(r'data-person-id="(\d+)"', by_id.text) == [str(world["hz"])]
    assert "张*明" in by_id.text and "330***********" in by_id.text
    assert HZ_ID not in by_id.text and "张小明" not in by_id.text
    for query in ({"name": "张小明"}, {"name": "张*明", "region": "330100"}):
        found = post(browser, "/workbench/search", query, headers={"HX-Request": "true"})
        assert re.findall(r'data-person-id="(\d+)"', found.text) == [str(world["hz"])], query
    outside = post(browser, "/workbench/search", {"id_number": CD_ID})
    assert outside.status_code == 200 and 'id="no-results"' in outside.text
    bad = post(browser, "/workbench/search", {"id_number": wrong_check_digit(HZ_ID)})
    assert bad.status_code == 422 and 'data-field="id_number"' in bad.text
    assert browser.get(f"/workbench/persons/{world['cd']}").status_code == 404


def test_the_person_form_names_every_error_at_once_and_never_echoes_the_id_or_name(browser):
    sign_in(browser)
    bad_id = wrong_check_digit(NEW_ID)
    answer = post(browser, "/workbench/persons", {
        "id_number": bad_id, "name": "  ", "scheme": "nobody", "assistance_category": "none", "region": "510100",
    })
    assert answer.status_code == 422
    assert re.findall(r'<li data-field="(\w+)"', answer.text) == ["id_number", "name", "scheme", "region"]
    for field in ("id_number", "name", "scheme", "region"):
        assert re.search(rf'id="error-{field}"[^>]*>\S', answer.text), field
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', answer.text), field
    assert bad_id not in answer.text
    htmx = post(browser, "/workbench/persons", {"id_number": NEW_ID, "name": "王小红", "scheme": "resident",
                                                "assistance_category": "none", "region": "510100"},
                headers={"HX-Request": "true"})
    assert htmx.status_code == 403 and 'data-error-fields="region"' in htmx.text
    for field in ("id_number", "region"):  # every field's slot is replaced: cleared, or filled
        assert f'id="error-{field}" hx-swap-oob="true"' in htmx.text
    assert NEW_ID not in htmx.text and "王小红" not in htmx.text
    person_id = register(browser)
    again = post(browser, "/workbench/persons", {"id_number": NEW_ID, "name": "王小红", "scheme": "resident",
                                                 "assistance_category": "none", "region": "330100"})
    assert again.status_code == 409 and 'data-field="id_number"' in again.text
    page = browser.get(f"/workbench/persons/{person_id}")
    assert "王*红" in page.text and "王小红" not in page.text and NEW_ID not in page.text


def test_the_episode_form_names_each_bad_field(browser, world):
    sign_in(browser)
    answer = post(browser, f"/workbench/persons/{world['hz']}/episodes", {
        **EARLIER, "discharge_date": "2024-02-01", "icd10": "中风", "class_a": "12.345", "hospital_level": "5",
    }, headers={"HX-Request": "true"})
    assert answer.status_code == 422
    fields = re.search(r'data-error-fields="([^"]*)"', answer.text).group(1).split()
    assert fields == ["discharge_date", "hospital_level", "icd10", "class_a"]
    assert len(re.findall(r'hx-swap-oob="true"', answer.text)) == 7
    future = post(browser, f"/workbench/persons/{world['hz']}/episodes", {**EARLIER, "admission_date": "2199-01-01",
                                                                          "discharge_date": "2199-01-02"})
    assert future.status_code == 422 and 'data-field="admission_date"' in future.text
    success = post(browser, f"/workbench/persons/{world['hz']}/episodes", EARLIER, headers={"HX-Request": "true"})
    assert success.status_code == 204 and success.headers["HX-Redirect"].startswith(
        f"/workbench/persons/{world['hz']}?year=2024#episode-"
    )


def test_settle_resettle_and_the_year_page_agree_with_the_api(browser, world):
    sign_in(browser)
    person = world["hz"]
    later, earlier = record(browser, person, LATER), record(browser, person, EARLIER)
    settled = post(browser, f"/workbench/episodes/{later}/settle")
    assert settled.status_code == 200
    assert len(re.findall(r'<article class="line', settled.text)) == 4
    assert "hangzhou-2024" in settled.text and "<ol class=\"arithmetic\"" in settled.text
    assert post(browser, f"/workbench/episodes/{earlier}/settle").status_code == 200
    assert post(browser, f"/workbench/episodes/{earlier}/settle").status_code == 409

    resettled = post(browser, f"/workbench/persons/{person}/years/2024/resettle")
    assert resettled.status_code == 200
    rows = re.findall(r'<tr data-episode-id="(\d+)" data-layer="(\w+)">', resettled.text)
    assert {int(episode) for episode, _ in rows} == {later, earlier} and len(rows) >= 2
    again = post(browser, f"/workbench/persons/{person}/years/2024/resettle")
    assert 'id="no-adjustments"' in again.text

    page = browser.get(f"/workbench/persons/{person}?year=2024")
    twin = browser.get(f"/api/persons/{person}/years/2024", headers=api_token(browser)).json()
    assert re.findall(r'data-episode-id="(\d+)"', page.text) == [str(e["episode"]["id"]) for e in twin["episodes"]]
    assert fens(page.text, "data-paid-fen") == {layer["layer"]: layer["paid"]["fen"] for layer in twin["layers"]}
    assert fens(page.text, "data-limit-fen") == {
        layer["layer"]: layer["limit"]["fen"] for layer in twin["layers"] if layer["limit"]
    }
    assert f'id="year-residual">¥{twin["residual"]["yuan"]}<' in page.text
    assert 'data-settled="false"' not in page.text


def test_the_sheet_shows_masked_identity_each_layer_with_its_trace_and_the_residual(browser, world):
    sign_in(browser)
    episode = record(browser, world["hz"], LATER)
    post(browser, f"/workbench/episodes/{episode}/settle")
    sheet = browser.get(f"/workbench/episodes/{episode}/sheet")
    assert sheet.status_code == 200
    coverage = browser.get(f"/api/episodes/{episode}/coverage", headers=api_token(browser)).json()
    assert f'id="sheet-residual">¥{coverage["residual"]["yuan"]}<' in sheet.text
    assert '<dd id="sheet-id">330***********' in sheet.text and '<dd id="sheet-name">张*明</dd>' in sheet.text
    assert HZ_ID not in sheet.text and "张小明" not in sheet.text
    paid = {record["layer"] for record in coverage["records"]}
    traced = set(re.findall(r'<article class="line[^"]*" data-layer="(\w+)"', sheet.text))
    assert paid and traced == paid
    assert "hangzhou-2024" in sheet.text and "data-print" in sheet.text
    css = browser.get("/static/app.css").text
    assert "@media print" in css[css.index("Caseworker workbench"):]


def test_read_only_roles_see_without_buttons_and_may_not_write(browser, world):
    sign_in(browser)
    episode = record(browser, world["hz"], EARLIER)
    browser.cookies.clear()
    sign_in(browser, "analyst-hz")
    page = browser.get(f"/workbench/persons/{world['hz']}")
    assert page.status_code == 200 and 'class="settle"' not in page.text and 'id="new-episode"' not in page.text
    assert post(browser, f"/workbench/episodes/{episode}/settle").status_code == 403
    assert browser.get("/workbench/persons/new").status_code == 403
    browser.cookies.clear()
    sign_in(browser, "family-hz")
    home = browser.get("/workbench")
    assert re.findall(r'href="/workbench/persons/(\d+)"', home.text) == [str(world["hz"])]
    assert 'id="search-form"' not in home.text
    assert post(browser, "/workbench/search", {"name": "张小明"}).status_code == 403
    assert browser.get(f"/workbench/episodes/{episode}/sheet").status_code == 200
    assert browser.get(f"/workbench/persons/{world['cd']}").status_code == 404
    assert post(browser, f"/workbench/episodes/{episode}/settle").status_code == 403


def test_pages_are_chinese_first_with_an_english_toggle(browser, world):
    sign_in(browser)
    chinese = browser.get(f"/workbench/persons/{world['hz']}")
    zh = gettext_for("zh")
    assert '<html lang="zh-CN">' in chinese.text
    for label in ("Basic medical insurance", "Medical assistance", "Year to date against the annual limits"):
        assert zh(label) != label and zh(label) in chinese.text
    assert 'href="/workbench/persons/' in chinese.text and "lang=en" in chinese.text
    english = browser.get(f"/workbench/persons/{world['hz']}?lang=en")
    assert '<html lang="en">' in english.text and "Basic medical insurance" in english.text
    assert '<html lang="en">' in browser.get("/workbench").text  # remembered
