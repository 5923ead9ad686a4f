"""The caseworker workbench (个案工作台) in a real browser on a phone-sized screen (390 × 844).

One caseworker goes the whole way: sign in, search, register a person (first with mistakes), record two
stays (the later one first), settle both, re-settle the year, open and print the settlement sheet, sign
out. Every page must fit the screen: nothing scrolls sideways.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import valid_id_number
from servers import PHONE, embedded_app, new_page, serve

from gongji.api.auth_service import create_user
from gongji.episodes import service
from gongji.web.i18n import gettext_for

pytestmark = pytest.mark.browser

PASSWORD = "a long and unusual passphrase 7"
SCREENSHOTS = Path("/tmp")
KNOWN_ID = valid_id_number("330106", dt.date(1970, 3, 3), 21)
NEW_ID = valid_id_number("330102", dt.date(1985, 7, 9), 45)
LATER = {"admission_date": "2024-06-01", "discharge_date": "2024-06-10", "hospital_level": "3", "icd10": "I63.9",
         "class_a": "60,000", "class_b": "30,000", "out_of_catalogue": "10,000"}
EARLIER = {"admission_date": "2024-03-01", "discharge_date": "2024-03-08", "hospital_level": "2", "icd10": "K35",
           "class_a": "20,000", "class_b": "5,000", "out_of_catalogue": "0"}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    """A real server with one caseworker of 杭州 (330100) and one registered person there."""
    app = embedded_app(tmp_path_factory.mktemp("workbench"))
    context = app.state.gongji
    with context.transaction() as session:
        create_user(session, "caseworker", PASSWORD, "caseworker", "王审核员", regions=("330100",))
        service.create_person(session, context.vault, KNOWN_ID, "张小明", "resident", "none", False, "330100")
    with serve(app) as url:
        yield url


@pytest.fixture
def phone(browser, base_url):
    with new_page(browser, base_url, viewport=PHONE, device_scale_factor=2) as page:
        yield page


def fits(page) -> bool:
    """Nothing on the page is wider than the phone's screen."""
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def record_stay(page, stay: dict) -> str:
    page.click("#new-episode")
    page.wait_for_selector("#episode-form")
    assert fits(page)
    for name, value in stay.items():
        if name == "hospital_level":
            page.select_option("#hospital_level", value)
        else:
            page.fill(f"#{name}", value)
    page.click("#save-episode")
    page.wait_for_url(re.compile(r"/workbench/persons/\d+\?year=2024#episode-\d+$"))
    return page.url.rsplit("#episode-", 1)[1]


def settle(page, episode_id: str) -> None:
    page.click(f"#episode-{episode_id} button.settle")
    page.wait_for_selector("#settled-title")
    assert page.locator("article.line").count() == 4
    assert page.locator("ol.arithmetic li").count() >= 4
    assert fits(page)
    page.click("#back-to-year")
    page.wait_for_selector(f'#episode-{episode_id}[data-settled="true"]')


def test_a_caseworker_goes_from_login_to_a_printed_settlement_sheet(phone, base_url):
    page = phone
    page.goto("/workbench")
    page.wait_for_url("**/workbench/login?next=%2Fworkbench")
    zh = gettext_for("zh")
    assert page.inner_text("h1") == zh("Sign in to the caseworker workbench") != "Sign in to the caseworker workbench"
    assert fits(page)
    page.fill("#username", "caseworker")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r"/workbench$"))
    assert "王审核员" in page.inner_text("#signed-in-as")

    # Search by ID number (exact): the known person, masked; the new one is not there yet.
    page.fill("#id_number", KNOWN_ID)
    page.click("#search")
    page.wait_for_selector("#search-results li")
    assert "张*明" in page.inner_text("#search-results") and KNOWN_ID not in page.content()
    page.fill("#id_number", NEW_ID)
    page.click("#search")
    page.wait_for_selector("#no-results")
    assert fits(page)

    # Register: mistakes are named next to each field, all at once, and the form keeps what was typed.
    page.click("#new-person")
    page.wait_for_selector("#person-form")
    page.fill("#id_number", NEW_ID[:-1] + ("0" if NEW_ID[-1] != "0" else "1"))
    page.fill("#region", "330100")
    page.click("#save-person")
    page.wait_for_selector("#form-errors .errors")
    assert page.inner_text("#error-id_number").strip() and page.inner_text("#error-name").strip()
    # The fields are marked once htmx has settled the answer (workbench.js), a moment after it is swapped in.
    page.wait_for_selector('#id_number[aria-invalid="true"]')
    assert page.get_attribute("#name", "aria-invalid") == "true"
    assert fits(page)
    page.fill("#id_number", NEW_ID)
    page.fill("#name", "王小红")
    page.select_option("#assistance_category", "subsistence")
    page.set_checked("#inclusive_enrolled", True)
    page.click("#save-person")
    page.wait_for_url(re.compile(r"/workbench/persons/\d+$"))
    person_id = page.url.rsplit("/", 1)[1]
    assert "王*红" in page.inner_text("#person-title") and "王小红" not in page.content()

    # Two stays, the later one recorded and settled first, then the earlier one.
    later = record_stay(page, LATER)
    settle(page, later)
    earlier = record_stay(page, EARLIER)
    settle(page, earlier)
    order = page.eval_on_selector_all("article.episode", "els => els.map(e => e.dataset.episodeId)")
    assert order == [earlier, later]  # in discharge order

    # Re-settling the year in discharge order lists what changed, recorded → recomputed.
    page.click("#resettle")
    page.wait_for_selector("#resettled-title")
    assert page.locator("#adjustments tbody tr").count() >= 2
    assert fits(page)
    page.click("#back-to-year")
    page.wait_for_selector("#year-summary")
    assert page.locator(".limit .bar").count() == 4
    assert fits(page), "the person page scrolls sideways at 390 px"
    page.screenshot(path=str(SCREENSHOTS / "gongji-workbench-person.png"), full_page=True)

    # The page agrees with its API twin.
    token = httpx.post(f"{base_url}/api/auth/login", json={"username": "caseworker", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    twin = httpx.get(f"{base_url}/api/persons/{person_id}/years/2024", headers=headers).json()
    assert page.inner_text("#year-residual") == f"¥{twin['residual']['yuan']}"

    # The settlement sheet: masked identity, each layer with its trace, the residual; it fits and prints.
    page.click(f"#episode-{later} a.sheet-link")
    page.wait_for_selector("#sheet")
    coverage = httpx.get(f"{base_url}/api/episodes/{later}/coverage", headers=headers).json()
    assert page.inner_text("#sheet-residual") == f"¥{coverage['residual']['yuan']}"
    assert page.inner_text("#sheet-name") == "王*红" and page.inner_text("#sheet-id").startswith("330***")
    assert NEW_ID not in page.content()
    assert fits(page), "the settlement sheet scrolls sideways at 390 px"
    page.screenshot(path=str(SCREENSHOTS / "gongji-workbench-sheet.png"), full_page=True)
    page.evaluate("window.print = () => { window.printed = true; }")
    page.click("#print")
    assert page.evaluate("window.printed === true")
    page.emulate_media(media="print")
    assert not page.is_visible(".site-header") and not page.is_visible("#print")
    assert page.is_visible("#sheet-amounts")
    page.emulate_media(media="screen")

    # English on request; then sign out, after which the pages ask for a login again.
    page.click("#switch-language")
    page.wait_for_selector('html[lang="en"]')
    assert page.inner_text("h1") == "Settlement sheet"
    page.click("#logout")
    page.wait_for_url("**/workbench/login")
    page.goto(f"/workbench/persons/{person_id}")
    page.wait_for_url("**/workbench/login?next=*")
