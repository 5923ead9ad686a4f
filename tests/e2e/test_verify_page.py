"""The 查验凭证 page in a real browser (system Chromium via Playwright) against a real server.

The page checks receipts with the browser's WebCrypto (SHA-256, Ed25519); the
server only serves the page, the published key and receipts. Entries are
posted and sequenced with the app's own signer before the browser starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import PHONE, embedded_app, new_page, serve

from gongji.ledger.service import open_account, post_entry, sequence

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/gongji-verify.png")
STEPS = ["receipt", "content", "leaf", "path", "root", "signature"]
#: Donations of ¥1.00, ¥2.50, ¥9.99, ¥0.05 and ¥0.06: leaf 1 is the ¥2.50 one.
DONATIONS = (100, 250, 999, 5, 6)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    """A server whose log holds five sequenced donations under a signed checkpoint."""
    app = embedded_app(tmp_path_factory.mktemp("e2e-verify"))
    with app.state.gongji.transaction() as session:
        open_account(session, "bank", "托管账户", "asset")
        open_account(session, "campaign:7", "项目资金", "liability")
        for fen in DONATIONS:
            post_entry(session, "donation", "为李某筹集化疗费用", "campaign:7", [("bank", fen), ("campaign:7", -fen)])
    with app.state.gongji.transaction() as session:
        assert sequence(session, app.state.gongji.signer).size == len(DONATIONS)
    with serve(app) as url:
        yield url


@pytest.fixture
def page(browser, base_url):
    with new_page(browser, base_url, viewport=PHONE) as page:
        yield page


def open_page(page, path: str = "/ledger/verify") -> None:
    page.goto(path)
    page.wait_for_selector("body[data-ready='true']")


def statuses(page) -> dict[str, str]:
    return {step: page.get_attribute(f'#steps li[data-step="{step}"]', "data-status") for step in STEPS}


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_genuine_receipt_fetched_by_leaf_index_is_valid(page, base_url):
    open_page(page)
    assert page.inner_text("h1") == "查验凭证"
    published = httpx.get(f"{base_url}/api/ledger/public-key").json()["verifier_key"]
    assert page.input_value("#verifier-key") == published  # shown, so it can be compared with a kept copy

    page.fill("#leaf-index", "1")
    page.click("#fetch")
    page.wait_for_selector("#verdict[data-verdict]")
    assert page.inner_text("#verdict strong") == "有效"
    assert statuses(page) == dict.fromkeys(STEPS, "ok")
    facts = page.inner_text("#facts")
    for shown in ("捐款", "¥2.50", "借 bank ¥2.50", "贷 campaign:7 ¥2.50", "为李某筹集化疗费用", "campaign:7",
                  "北京时间"):
        assert shown in facts, shown
    assert page.locator("#steps li[data-step='path'] .trace li").count() == 3  # leaf 1 of 5: three hashes up
    receipt = httpx.get(f"{base_url}/api/ledger/receipts/1").json()
    assert json.loads(page.input_value("#receipt")) == receipt
    assert fits(page), "the verdict scrolls sideways at 390 px"
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_receipt_with_a_changed_amount_is_invalid_at_the_root_step(page, base_url):
    receipt = httpx.get(f"{base_url}/api/ledger/receipts/1").json()
    changed = {**receipt, "content": receipt["content"].replace('["bank",250]', '["bank",25000]')
               .replace('["campaign:7",-250]', '["campaign:7",-25000]')}
    assert changed["content"] != receipt["content"]
    open_page(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.fill("#receipt", json.dumps(changed, ensure_ascii=False))
    page.click("#check")
    page.wait_for_selector("#verdict[data-verdict]")

    assert page.inner_text("#verdict strong") == "无效"
    assert "根哈希与已签名检查点一致" in page.inner_text("#verdict")  # names the failing step
    assert statuses(page) == {"receipt": "ok", "content": "ok", "leaf": "ok", "path": "ok", "root": "fail",
                              "signature": "ok"}
    assert "¥250.00" in page.inner_text("#facts")  # what the forged receipt claims is shown, and refused
    assert asked == []  # a pasted receipt is checked without asking the server anything
    assert fits(page)

    page.fill("#receipt", json.dumps(receipt))
    page.click("#check")
    page.wait_for_selector("#verdict[data-verdict='valid']")
    assert page.inner_text("#verdict strong") == "有效"


def test_a_key_other_than_the_logs_fails_the_signature_step(page, base_url):
    receipt = httpx.get(f"{base_url}/api/ledger/receipts/4").json()
    open_page(page)
    page.fill("#verifier-key", "gongji.local/ledger+00000000+" + "A" * 44)
    page.fill("#receipt", json.dumps(receipt))
    page.click("#check")
    page.wait_for_selector("#verdict[data-verdict='invalid']")
    assert statuses(page)["signature"] == "fail" and statuses(page)["root"] == "ok"


def test_english_on_request_and_a_missing_leaf_is_explained(page):
    open_page(page, "/ledger/verify?leaf=0")
    page.wait_for_selector("#verdict[data-verdict]")
    assert page.inner_text("#verdict strong") == "有效"
    page.click("#switch-language")
    page.wait_for_selector("body[data-ready='true']")
    assert page.inner_text("h1") == "Check a receipt"
    page.wait_for_selector("#verdict[data-verdict]")
    assert page.inner_text("#verdict strong") == "Valid"  # ?leaf=0 kept across the switch
    assert "Donation (donation)" in page.inner_text("#facts")

    page.fill("#leaf-index", "99")
    page.click("#fetch")
    page.wait_for_selector("#verdict[data-verdict='invalid']")
    assert "Could not fetch the receipt" in page.inner_text("#verdict")
    assert fits(page)
