"""The public calculator page: Chinese first, English on request, errors named inline, no identity asked."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from gongji.api.app import create_app
from gongji.core.settings import Settings
from gongji.web.i18n import LANG_COOKIE, TEXTS

FORM = {
    "scheme": "resident", "assistance_category": "none", "inclusive_enrolled": "on", "region": "330100",
    "hospital_level": "3", "admission_date": "2024-03-04", "discharge_date": "2024-03-18",
    "class_a": "60,000.00", "class_b": "30,000.00", "out_of_catalogue": "10,000.00",
}
HTMX = {"HX-Request": "true"}


@pytest.fixture
def client(tmp_path) -> TestClient:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'g.sqlite3'}", var_dir=tmp_path, params_dir=None))
    return TestClient(app)


def api_request(form: dict[str, str]) -> dict:
    body = {**form, "hospital_level": int(form["hospital_level"]), "inclusive_enrolled": "inclusive_enrolled" in form}
    return body


def test_first_page_is_chinese_with_the_form_and_no_identity_fields(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text and "<h1>多层次医疗保障测算</h1>" in page.text
    for option in ('value="000000"', 'value="330100"', 'value="510100"', 'hx-post="/calculate"'):
        assert option in page.text
    assert "vendor/htmx.min.js" in page.text and "vendor/echarts.min.js" in page.text
    for identity in ("id_number", "身份证", 'name="name"', "phone"):
        assert identity not in page.text


def test_english_is_chosen_by_query_and_remembered_in_a_cookie(client):
    english = client.get("/?lang=en")
    assert english.cookies[LANG_COOKIE] == "en"
    assert '<html lang="en">' in english.text and TEXTS["title"][1] in english.text
    assert TEXTS["title"][1] in client.get("/").text  # the cookie is sent back
    assert "多层次医疗保障测算" in client.get("/?lang=zh").text


def test_fragment_shows_the_same_amounts_as_the_api(client):
    fragment = client.post("/calculate", data=FORM, headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="layer-chart-data"' in fragment.text
    api = client.post("/api/calculate", json=api_request(FORM)).json()
    shown = dict(re.findall(r'<tr data-layer="(\w+)" data-fen="(\d+)"', fragment.text))
    assert {layer: int(fen) for layer, fen in shown.items()} == {
        name: money["fen"] for name, money in api["amounts"].items()
    }
    assert api["amounts"]["residual"]["yuan"] in fragment.text
    assert "计算说明" in fragment.text and api["lines"][0]["parameters"][0]["source"][:10] in fragment.text


def test_bad_amount_is_named_inline(client):
    fragment = client.post("/calculate", data={**FORM, "class_a": "12.345"}, headers=HTMX)
    assert fragment.status_code == 422
    assert 'data-error-fields="class_a"' in fragment.text and "甲类费用" in fragment.text
    assert "最多两位小数" in fragment.text


def test_discharge_before_admission_is_named_inline_in_english(client):
    client.get("/?lang=en")
    fragment = client.post("/calculate", data={**FORM, "discharge_date": "2024-03-01"}, headers=HTMX)
    assert fragment.status_code == 422
    assert 'data-field="discharge_date"' in fragment.text and "Discharge date" in fragment.text


def test_without_javascript_the_form_gets_a_whole_page(client):
    page = client.post("/calculate", data=FORM)
    assert page.status_code == 200
    assert "<h1>多层次医疗保障测算</h1>" in page.text and 'data-layer="residual"' in page.text
    assert 'value="60,000.00"' in page.text
