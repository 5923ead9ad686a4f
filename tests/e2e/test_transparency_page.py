"""The transparency pages in a real browser: an account's chart is drawn and its entries download as CSV.

A real uvicorn server on SQLite, with its background sequencer; the campaign's donations and a refund are
posted before the browser comes.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator

import httpx
import pytest
from servers import PHONE, embedded_app, new_page, serve

from gongji.ledger.service import open_account, post_entry
from gongji.web.i18n import gettext_for

pytestmark = pytest.mark.browser

DONATIONS = (20_000, 5_050, 100_000)
REFUND = (5_050, "捐款人要求撤回，原路退回")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    app = embedded_app(tmp_path_factory.mktemp("transparency"))
    with app.state.gongji.transaction() as session:
        open_account(session, "bank", "托管账户", "asset")
        open_account(session, "campaign:7", "李*华的大病筹款", "liability", public=True)
        for fen in DONATIONS:
            post_entry(session, "donation", "网络捐款", "campaign:7", [("bank", fen), ("campaign:7", -fen)])
        fen, reason = REFUND
        post_entry(session, "refund", reason, "campaign:7", [("bank", -fen), ("campaign:7", fen)])
    with serve(app) as url:
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/api/ledger/checkpoint").status_code != 200:  # the sequencer runs every 2 s
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint was signed")
            time.sleep(0.1)
        yield url


@pytest.fixture
def page(browser, base_url):
    with new_page(browser, base_url, viewport=PHONE, accept_downloads=True) as page:
        yield page


def test_the_account_page_draws_its_chart_and_downloads_its_entries(page, base_url):
    page.goto("/ledger/accounts")
    page.click('#accounts a[href="/ledger/accounts/campaign%3A7"]')
    page.wait_for_selector("#account-chart svg")
    assert page.get_attribute("#account-chart", "data-drawn") == "true"
    assert page.inner_text("#account-name") == "李*华的大病筹款"
    assert page.inner_text("#balance") == "¥1,200.00"
    assert page.locator("#entries tbody tr").count() == 4
    assert REFUND[1] in page.inner_text("#entries tr.move-out")
    assert page.locator("#account-chart svg path").count() > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    with page.expect_download() as download_info:
        page.click("#csv-download")
    download = download_info.value
    assert download.suggested_filename == "campaign-7-entries.csv"
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8-sig").read())))
    assert [int(row["change_fen"]) for row in rows] == [*DONATIONS, -REFUND[0]]
    assert rows[-1]["refund_reason"] == REFUND[1] and rows[-1]["balance_yuan"] == "1200.00"
    assert all(row["leaf_index"] for row in rows)  # every entry already has its leaf

    page.click("#switch-language")
    page.wait_for_selector("#account-chart svg")
    assert page.inner_text("#entries-heading") == "Entries"
    assert gettext_for("zh")("Entries") != "Entries"
