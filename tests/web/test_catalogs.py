"""The gettext catalogs are complete where people read them, and every reader gets their language.

The catalog checks extract the msgids with the command in src/gongji/locale/README.md (Babel with
locale/babel.toml) and read the Chinese .po as Babel does; the language checks go through the API.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from importlib import resources
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from pydantic_core import PydanticKnownError

from gongji.api.app import create_app
from gongji.core.errors import GongjiError
from gongji.core.settings import Settings
from gongji.locale.extract import dynamic_calls
from gongji.web.i18n import HTTP_DETAILS, HTTP_TITLES, PYDANTIC_MESSAGES, accepted_language, gettext_for

SOURCE = Path(str(resources.files("gongji")))
PO = SOURCE / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po"
ERROR_KEYWORDS = ("InvalidInput", "InvalidValue", "NotFound", "Conflict", "Forbidden", "Unauthorized",
                  "TooManyRequests")
#: The modules whose messages people meet most: money and ID input, persons and episodes, sign-in.
DOMAIN_MODULES = ("core/money.py", "core/identity.py", "episodes/service.py", "api/auth.py", "api/auth_service.py")
CALCULATION = {
    "scheme": "resident", "assistance_category": "none", "inclusive_enrolled": True, "region": "330100",
    "hospital_level": 3, "admission_date": "2024-03-04", "discharge_date": "2024-03-18",
    "class_a": "60,000.00", "class_b": "30,000.00", "out_of_catalogue": "10,000.00",
}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Catalog:
    pot = tmp_path_factory.mktemp("extract") / "messages.pot"
    CommandLineInterface().run([
        "pybabel", "-q", "extract", "-F", str(SOURCE / "locale" / "babel.toml"), "-o", str(pot),
        "--add-location=file", str(SOURCE),
    ])
    with pot.open("rb") as handle:
        return read_po(handle)


@pytest.fixture(scope="module")
def chinese() -> Catalog:
    with PO.open("rb") as handle:
        return read_po(handle, locale="zh_CN")


def msgids(catalog: Catalog, where: str) -> set[str]:
    """Singular msgids with a location under `where` (relative to src/gongji)."""
    return {
        message.id for message in catalog
        if message.id and isinstance(message.id, str)
        and any(Path(path).resolve().is_relative_to(SOURCE / where) for path, _line in message.locations)
    }


def untranslated(chinese: Catalog, ids: set[str]) -> list[str]:
    missing = []
    for msgid in sorted(ids):
        message = chinese.get(msgid)
        if message is None or not message.string or message.fuzzy:
            missing.append(msgid)
    return missing


# --- the catalog ------------------------------------------------------------------------------


def test_every_template_text_has_a_chinese_translation(extracted, chinese):
    ids = msgids(extracted, "web/templates")
    assert "Paid by" in ids and "Multi-layer medical security calculator" in ids
    assert untranslated(chinese, ids) == []


def test_every_explanation_text_of_rule_code_has_a_chinese_translation(extracted, chinese):
    ids = msgids(extracted, "rules")
    for expected in (
        "in-policy cost = {a} + {b} − {b} × {share} = {in_policy}",  # a literal
        "admission no. {n} this year: deductible = {deductible}",  # one branch of a conditional
        "threshold (assisted people)",
        "region {region} has no parameter set of its own in force on {date}; the national default {set} applies",
    ):
        assert expected in ids
    assert untranslated(chinese, ids) == []
    assert chinese.get("in-policy cost = {a} + {b} − {b} × {share} = {in_policy}").string.startswith("政策范围内费用")
    assert chinese.get("year to date {before} → {after}").string.startswith("年度累计")


def test_rule_code_writes_every_text_as_a_template(tmp_path):
    """A Text built from an f-string has no msgid: it would stay English on the Chinese page."""
    for path in (SOURCE / "rules").glob("*.py"):
        assert dynamic_calls(path.read_bytes(), {"Text"}) == [], path.name
    assert dynamic_calls('Text(f"{x} yuan")\nText("a" if b else "c")\n', {"Text"}) == [1]


def test_the_main_domain_messages_are_catalogued(extracted, chinese):
    for module in DOMAIN_MODULES:
        assert dynamic_calls((SOURCE / module).read_bytes(), ERROR_KEYWORDS) == [], module
        assert untranslated(chinese, msgids(extracted, module)) == [], module
    region_checks = {"region must be a six-digit GB/T 2260 code", "unknown province in region code (GB/T 2260)"}
    assert untranslated(chinese, region_checks) == []


def test_problem_titles_and_pydantic_messages_are_catalogued(chinese):
    titles = {cls.title for cls in _subclasses(GongjiError)}
    assert untranslated(chinese, titles | set(HTTP_TITLES.values()) | set(HTTP_DETAILS)) == []
    assert all(HTTPStatus(status).phrase == title for status, title in HTTP_TITLES.items())
    assert untranslated(chinese, set(PYDANTIC_MESSAGES.values())) == []
    context = {"expected": "x", "pattern": "x", "min_length": 1, "max_length": 1, "ge": 1, "le": 1, "error": "x",
               "class_name": "x", "field_type": "List", "actual_length": 2}
    for error_type, template in PYDANTIC_MESSAGES.items():  # pydantic's own wording, or no lookup matches
        assert PydanticKnownError(error_type, context).message_template == template


def test_translations_keep_the_placeholders_of_their_msgid(chinese):
    for message in chinese:
        if not message.id or not message.string:
            continue
        for msgid, msgstr in zip(_forms(message.id), _forms(message.string), strict=False):
            assert _placeholders(msgstr) <= _placeholders(msgid), msgid
            named = {name for name in _placeholders(msgid) if name != "{expected_plural}"}
            assert named <= _placeholders(msgstr), msgid


def test_the_catalog_compiles_without_fuzzy_entries(chinese):
    assert not [message.id for message in chinese if message.id and message.fuzzy]
    assert gettext_for("zh")("Paid by") == "支付方"
    assert gettext_for("en")("Paid by") == "Paid by"


# --- the reader's language --------------------------------------------------------------------


@pytest.mark.parametrize(("header", "language"), [
    (None, "zh"),
    ("", "zh"),
    ("*", "zh"),
    ("en", "en"),
    ("en-US,en;q=0.9", "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("en;q=0.5, zh-CN;q=0.8", "zh"),
    ("fr-FR, en;q=0.3", "en"),
    ("de", "zh"),
    ("en;q=0, zh;q=0.1", "zh"),
    ("en;q=abc", "zh"),
])
def test_the_api_language_follows_accept_language(header, language):
    assert accepted_language(header) == language


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    var = tmp_path_factory.mktemp("var")
    app = create_app(Settings(database_url=f"sqlite:///{var / 'g.sqlite3'}", var_dir=var, params_dir=None))
    return TestClient(app)


def test_problem_details_are_chinese_by_default_and_english_on_request(client):
    bad = {**CALCULATION, "class_a": "12.345", "region": "990000", "discharge_date": "2024-03-01"}
    del bad["scheme"]
    chinese = client.post("/api/calculate", json=bad).json()
    english = client.post("/api/calculate", json=bad, headers={"Accept-Language": "en-US,en;q=0.9"}).json()
    assert chinese["title"] == "输入有误" and english["title"] == "Invalid input"
    assert chinese["type"] == english["type"] == "urn:gongji:problem:invalid-input"
    messages = {error["field"]: error["message"] for error in chinese["errors"]}
    assert messages == {
        "scheme": "必填项，不能缺少",
        "class_a": "最多保留两位小数（精确到分）：'12.345'",
        "region": "统筹地区代码中的省份未知（GB/T 2260）",
        "discharge_date": "出院日期早于入院日期（2024-03-04）",
    }
    assert chinese["detail"] == f"{chinese['field']}: {messages[chinese['field']]}"
    assert {error["field"]: error["message"] for error in english["errors"]} == {
        "scheme": "Field required",
        "class_a": "at most two decimals (fen) allowed: '12.345'",
        "region": "unknown province in region code (GB/T 2260)",
        "discharge_date": "discharge date is before admission date (2024-03-04)",
    }


def test_pydantic_messages_are_translated_with_their_values(client):
    problem = client.post("/api/calculate", json={**CALCULATION, "scheme": "x", "hospital_level": 7}).json()
    messages = {error["field"]: error["message"] for error in problem["errors"]}
    assert messages == {"scheme": "应为以下之一：'employee', 'retiree' or 'resident'", "hospital_level": "应为以下之一：1, 2 or 3"}


def test_domain_errors_are_translated_with_their_values(client):
    problem = client.get("/api/persons/1").json()  # no token: Unauthorized, a domain error without values
    assert problem["title"] == "未登录或登录已失效" and problem["detail"] == "需要持有令牌（Bearer token）"
    english = client.get("/api/persons/1", headers={"Accept-Language": "en"}).json()
    assert english["title"] == "Unauthorized" and english["detail"] == "a bearer token is required"
    superscript = client.post("/api/calculate", json={**CALCULATION, "class_a": "10²"}).json()
    assert superscript["errors"][0]["message"] == (
        "金额只能使用数字 0–9（或全角 ０–９）、“,”、“.”和 ¥；不允许使用 '²'（U+00B2）"
    )


def test_framework_errors_are_translated_too(client):
    problem = client.get("/api/no-such-route").json()
    assert problem["status"] == 404 and problem["title"] == "未找到" and problem["detail"] == "未找到"
    assert client.get("/api/no-such-route", headers={"Accept-Language": "en"}).json()["title"] == "Not Found"


def test_settlement_explanations_follow_accept_language(client):
    chinese = client.post("/api/calculate", json={**CALCULATION, "region": "110105"}).json()
    english = client.post("/api/calculate", json={**CALCULATION, "region": "110105"},
                          headers={"Accept-Language": "en"}).json()
    assert chinese["amounts"] == english["amounts"]
    basic_zh, basic_en = chinese["lines"][0], english["lines"][0]
    assert basic_zh["arithmetic"][0].startswith("政策范围内费用 = ¥60,000.00")
    assert basic_en["arithmetic"][0].startswith("in-policy cost = ¥60,000.00")
    assert [p["name"] for p in basic_zh["parameters"]][-1] == "年度最高支付限额"
    assert chinese["parameter_note"] == (
        "统筹地区 110105 在 2024-03-18 没有本地区生效的参数，适用全国默认参数 national-2024"
    )
    assert english["parameter_note"].startswith("region 110105 has no parameter set of its own")


def _subclasses(cls: type) -> set[type]:
    return {cls} | {sub for child in cls.__subclasses__() for sub in _subclasses(child)}


def _forms(text: str | tuple) -> tuple:
    return text if isinstance(text, tuple) else (text,)


def _placeholders(text: str) -> set[str]:
    """str.format fields ({name}) and %-format fields (%(name)s)."""
    return set(re.findall(r"\{[a-z_]*\}", text)) | set(re.findall(r"%\([a-z_]+\)s", text))
