"""The calculator page in a real browser (system Chromium via Playwright) against a real server.

The server is uvicorn on a free 127.0.0.1 port, with a temporary SQLite database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import embedded_app, new_page, serve

from gongji.web.i18n import gettext_for

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/gongji-calculator.png")
CASE = {
    "scheme": "resident", "assistance_category": "subsistence", "inclusive_enrolled": True, "region": "510100",
    "hospital_level": 2, "admission_date": "2024-09-02", "discharge_date": "2024-09-16",
    "class_a": "45,000.00", "class_b": "18,500.50", "out_of_catalogue": "6,000",
}
ROWS = ("basic", "critical_illness", "assistance", "inclusive", "residual", "total")
#: The English page shows the msgids; the Chinese one their catalog translation.
ENGLISH = {"title": "Multi-layer medical security calculator", "class_a": "Class A (甲类)", "payer": "Paid by",
           "residual": "Left to the patient"}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    with serve(embedded_app(tmp_path_factory.mktemp("e2e"))) as url:
        yield url


@pytest.fixture
def page(browser, base_url):
    with new_page(browser, base_url, viewport={"width": 1100, "height": 900}) as page:
        yield page


def fill_form(page, case: dict) -> None:
    for name in ("scheme", "assistance_category", "region"):
        page.select_option(f"#{name}", case[name])
    page.select_option("#hospital_level", str(case["hospital_level"]))
    page.set_checked("#inclusive_enrolled", case["inclusive_enrolled"])
    for name in ("admission_date", "discharge_date", "class_a", "class_b", "out_of_catalogue"):
        page.fill(f"#{name}", case[name])


def shown_amounts(page) -> dict[str, str]:
    return {row: page.inner_text(f'#amounts tr[data-layer="{row}"] td.amount').strip() for row in ROWS}


def test_result_matches_the_api_and_the_chart_renders(page, base_url):
    page.goto("/")
    assert page.inner_text("h1") == "多层次医疗保障测算"
    fill_form(page, CASE)
    page.click("#submit")
    page.wait_for_selector("#amounts")
    page.wait_for_selector("#layer-chart svg, #layer-chart canvas")

    expected = httpx.post(f"{base_url}/api/calculate", json=CASE).json()["amounts"]
    assert shown_amounts(page) == {row: expected[row]["yuan"] for row in ROWS}
    assert expected["assistance"]["fen"] > 0 and expected["inclusive"]["fen"] > 0
    assert page.locator("article.line").count() == 4
    assert "成都" in page.inner_text(".parameter-set")
    assert page.inner_text('label[for="class_a"]') == gettext_for("zh")(ENGLISH["class_a"])
    explanation = page.inner_text("#result")
    assert "政策范围内费用 = " in explanation and "年度累计 " in explanation and "year to date" not in explanation
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_bad_amount_is_named_next_to_the_form(page):
    page.goto("/")
    fill_form(page, {**CASE, "class_a": "12.345"})
    page.click("#submit")
    error = page.wait_for_selector(".errors")
    assert "甲类费用" in error.inner_text() and "两位小数" in error.inner_text()
    page.wait_for_selector('#class_a[aria-invalid="true"]')
    assert page.locator("#amounts").count() == 0


def test_english_switch_changes_the_labels_and_is_remembered(page):
    page.goto("/")
    page.click("#switch-language")
    page.wait_for_url("**/?lang=en")
    assert page.inner_text("h1") == ENGLISH["title"]
    assert page.inner_text('label[for="class_a"]') == ENGLISH["class_a"]
    page.click("#submit")
    page.wait_for_selector("#amounts")
    assert ENGLISH["payer"] in page.inner_text("#amounts thead")
    assert ENGLISH["residual"] in page.inner_text('#amounts tr[data-layer="residual"]')
    assert "in-policy cost = " in page.inner_text("article.line")
    page.goto("/")
    assert page.inner_text("h1") == ENGLISH["title"]
    assert page.evaluate("document.documentElement.lang") == "en"


def test_no_horizontal_scrolling_on_a_390_px_phone(page):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    fill_form(page, CASE)
    page.click("#submit")
    page.wait_for_selector("#amounts")
    page.wait_for_selector("#layer-chart svg, #layer-chart canvas")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".opblock"), ("/redoc", "[data-section-id^='operation']")])
def test_api_docs_render_with_no_request_outside_our_origin(page, base_url, path, rendered):
    """As offline: any request to another host is cut off (and recorded); the operations still render."""
    outside = []

    def only_ours(route):
        if route.request.url.startswith(base_url) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto(path)
    page.wait_for_selector(rendered)
    assert "/api/calculate" in page.inner_text("body")
    assert outside == []
