"""The public calculator page: Chinese first, English on request, errors named inline, no identity asked.

The form is validated like `POST /api/calculate` (the same model, reading the form's text), answers every
error at once as HTML naming its field, and is documented in OpenAPI as a form operation.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from gongji.api.app import create_app
from gongji.core.settings import Settings
from gongji.web.i18n import LANG_COOKIE, gettext_for

FORM = {
    "scheme": "resident", "assistance_category": "none", "inclusive_enrolled": "on", "region": "330100",
    "hospital_level": "3", "admission_date": "2024-03-04", "discharge_date": "2024-03-18",
    "class_a": "60,000.00", "class_b": "30,000.00", "out_of_catalogue": "10,000.00",
}
HTMX = {"HX-Request": "true"}
ENGLISH = {"Accept-Language": "en"}


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
    assert '<html lang="en">' in english.text and "<h1>Multi-layer medical security calculator</h1>" in english.text
    assert "<h1>Multi-layer medical security calculator</h1>" in client.get("/").text  # the cookie is sent back
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


def test_the_chinese_page_explains_every_line_in_chinese(client):
    fragment = client.post("/calculate", data=FORM, headers=HTMX)
    assert fragment.status_code == 200
    for text in ("政策范围内费用 = ", "年度累计 ", "起付线（3级医院）", "年度最高支付限额", "应付 = ", "本年度此前已付"):
        assert text in fragment.text
    for english in ("in-policy", "year to date", "annual cap", "deductible", "claim ="):
        assert english not in fragment.text


def test_the_english_page_explains_in_english(client):
    client.get("/?lang=en")
    fragment = client.post("/calculate", data=FORM, headers=HTMX)
    assert "in-policy cost = " in fragment.text and "year to date " in fragment.text
    assert "政策范围内费用" not in fragment.text


def test_a_region_without_its_own_set_says_which_set_was_used(client):
    """110105 (北京东城) has no set: the national default applies, and the result says so."""
    fragment = client.post("/calculate", data={**FORM, "region": "110105"}, headers=HTMX)
    assert fragment.status_code == 200
    note = re.search(r'<p class="parameter-note"[^>]*>(.*?)</p>', fragment.text, re.S)
    assert note and "110105" in note[1] and "全国默认参数 national-2024" in note[1]
    whole_page = client.post("/calculate", data={**FORM, "region": "110105"})
    assert 'value="110105" selected' in whole_page.text  # the form shows what was calculated
    own = client.post("/calculate", data=FORM, headers=HTMX)
    assert "parameter-note" not in own.text


@pytest.mark.parametrize("level", ["²", "9" * 5000, "٣", "03", "3.0", "", "-1"])
def test_a_bad_hospital_level_is_422_naming_the_field(client, level):
    """`isdigit()` accepts "²" (and int() refuses it); a 5,000-digit level exceeds int()'s limit: never a 500."""
    fragment = client.post("/calculate", data={**FORM, "hospital_level": level}, headers=HTMX)
    assert fragment.status_code == 422
    assert 'data-error-fields="hospital_level"' in fragment.text and "医院等级" in fragment.text


@pytest.mark.parametrize("field", ["class_a", "region", "admission_date", "scheme", "inclusive_enrolled"])
def test_a_5000_digit_value_is_422_naming_the_field(client, field):
    fragment = client.post("/calculate", data={**FORM, field: "9" * 5000}, headers=HTMX)
    assert fragment.status_code == 422
    assert f'data-error-fields="{field}"' in fragment.text


def test_the_form_reports_every_error_at_once_as_the_api_does(client):
    bad = {**FORM, "class_a": "12.345", "hospital_level": "²", "region": "990000", "admission_date": "2024-02-30"}
    fragment = client.post("/calculate", data=bad, headers=HTMX)
    assert fragment.status_code == 422
    shown = set(re.search(r'data-error-fields="([^"]*)"', fragment.text)[1].split())
    api = client.post("/api/calculate", json={**api_request(FORM), **bad, "hospital_level": "²"})
    assert api.status_code == 422
    assert shown == {error["field"] for error in api.json()["errors"]} == {
        "class_a", "hospital_level", "region", "admission_date"
    }


def test_a_missing_field_is_named_like_the_api_names_it(client):
    fragment = client.post("/calculate", data={k: v for k, v in FORM.items() if k != "class_b"}, headers=HTMX)
    assert fragment.status_code == 422 and 'data-error-fields="class_b"' in fragment.text
    assert "必填项" in fragment.text


def test_error_details_are_in_the_page_language(client):
    chinese = client.post("/calculate", data={**FORM, "class_a": "12.345"}, headers=HTMX)
    assert "最多保留两位小数（精确到分）" in chinese.text and "at most two decimals" not in chinese.text
    client.get("/?lang=en")
    english = client.post("/calculate", data={**FORM, "class_a": "12.345"}, headers=HTMX)
    assert "at most two decimals (fen) allowed" in english.text and "最多保留" not in english.text


def test_an_unticked_checkbox_means_not_enrolled(client):
    unticked = {k: v for k, v in FORM.items() if k != "inclusive_enrolled"}
    fragment = client.post("/calculate", data=unticked, headers=HTMX)
    assert fragment.status_code == 200
    assert 'data-layer="inclusive" data-fen="0"' in fragment.text


def test_the_form_operation_is_documented_in_openapi(client):
    operation = client.get("/openapi.json").json()["paths"]["/calculate"]["post"]
    assert operation["x-roles"] == ["public"]
    body = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(body["properties"]) == set(FORM) and body["properties"]["hospital_level"]["enum"] == ["1", "2", "3"]
    assert {"scheme", "class_a", "class_b", "out_of_catalogue", "hospital_level"} <= set(body["required"])
    for status in ("200", "422"):
        assert operation["responses"][status]["content"].keys() == {"text/html"}


def test_labels_are_the_catalog_translation_of_their_msgid(client):
    assert gettext_for("zh")("Class A (甲类)") == "甲类费用"
    assert '<label for="class_a">甲类费用</label>' in client.get("/").text
    assert '<label for="class_a">Class A (甲类)</label>' in client.get("/?lang=en").text
