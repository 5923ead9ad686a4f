"""Medical mutual aid (医疗互助) in a real browser: join → claim → dispute → jury vote → period statement.

A member joins the comprehensive plan for themselves and files a claim with the bill of a hospital stay; the
reviewer rejects it, the member disputes, the operator puts it to the jury, a qualified juror votes 支持, the
case closes approved, and the operator opens a period and apportions it. The public period statement shows the
share per member (checked against the database) and draws the chart. Time is moved forward by writing the
membership's dates, the case's quorum and its voting end into the database, as the test says where.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from helpers import valid_id_number
from servers import embedded_app, new_page, serve
from sqlalchemy import select, update

from gongji.api.auth import Principal
from gongji.api.auth_service import create_user
from gongji.core.money import format_yuan
from gongji.mutual_aid.membership import join_plan
from gongji.mutual_aid.models import Charge, Claim, JuryCase, Membership, Period

pytestmark = pytest.mark.browser

PASSWORD = "a long and unusual passphrase 7"
MEMBER_ID = valid_id_number("330102", dt.date(1988, 4, 2), 23)
JUROR_ID = valid_id_number("330106", dt.date(1975, 9, 9), 41)
TODAY = dt.datetime.now(dt.UTC).date()
STAY = {"admission_date": (TODAY - dt.timedelta(days=20)).isoformat(),
        "discharge_date": (TODAY - dt.timedelta(days=10)).isoformat(), "icd10": "C34.1",
        "class_a": "60,000", "class_b": "30,000", "out_of_catalogue": "10,000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, object]]:
    """A real server with a member, a juror who joined a year ago, and the demo operator's reviewer and admin."""
    app = embedded_app(tmp_path_factory.mktemp("mutual-aid"))
    context = app.state.gongji
    with context.transaction() as session:
        create_user(session, "member", PASSWORD, "member", "会员甲")
        juror = create_user(session, "juror", PASSWORD, "member", "评审员乙")
        create_user(session, "reviewer", PASSWORD, "reviewer", "审核员丙", operator_code="online-demo")
        create_user(session, "opadmin", PASSWORD, "operator_admin", "运营丁", operator_code="online-demo")
        year_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
        join_plan(session, context.vault, Principal(juror.id, "juror", "member", "评审员乙"),
                  "online-comprehensive", id_number=JUROR_ID, name="李评审", relationship="self",
                  declaration={"q-cancer": False, "q-hospital": False}, now=year_ago)
        session.execute(update(Membership).values(status="protected"))
    with serve(app) as url:
        yield url, context


def sign_in(page, username: str, wanted: str) -> None:
    page.goto(f"/workbench/login?next={wanted}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(wanted) + "$"))


def test_join_claim_jury_and_period_statement(browser, server):
    url, context = server

    # A member joins for themselves; nothing typed comes back.
    with new_page(browser, url) as member:
        sign_in(member, "member", "/mutual-aid/plans/online-comprehensive")
        member.fill("#id_number", MEMBER_ID)
        member.fill("#name", "张小明")
        member.check("#q-q-cancer-no")
        member.check("#q-q-hospital-no")
        member.click("#join-button")
        member.wait_for_url("**/mutual-aid/me#memberships")
        membership = member.locator("article.membership")
        assert membership.get_attribute("data-status") == "waiting"
        assert MEMBER_ID not in member.content() and "张小明" not in member.content()
        assert "张*明" in membership.inner_text()

        # The waiting period passes: joined half a year ago, protected since.
        with context.transaction() as session:
            session.execute(update(Membership).values(
                joined_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=180),
                protected_from=TODAY - dt.timedelta(days=90), status="protected"))
        member.reload()
        assert member.locator("article.membership").get_attribute("data-status") == "protected"

        # File a claim with the bill of a stay.
        for name, value in STAY.items():
            member.fill(f"#{name}", value)
        member.select_option("#hospital_level", "3")
        member.click("#file-claim")
        member.wait_for_url(re.compile(r"/mutual-aid/me#claim-\d+$"))
        claim_id = int(member.url.rsplit("#claim-", 1)[1])
        with context.transaction() as session:
            assessed = session.get(Claim, claim_id).amount_assessed
        assert assessed > 0
        card = member.locator(f"#claim-{claim_id}")
        assert card.get_attribute("data-status") == "filed"
        assert f"¥{format_yuan(assessed)}" in card.inner_text()

    # The reviewer rejects it at first review.
    with new_page(browser, url) as reviewer:
        sign_in(reviewer, "reviewer", "/mutual-aid/operator")
        reviewer.fill(f"#note-first-{claim_id}", "既往症未如实告知")
        reviewer.click(f"#claim-{claim_id} button.reject")
        reviewer.wait_for_url(f"**/mutual-aid/operator#claim-{claim_id}")
        assert reviewer.locator(f"#claim-{claim_id}").get_attribute("data-status") == "rejected"

    # The member disputes the rejection.
    with new_page(browser, url) as member:
        sign_in(member, "member", "/mutual-aid/me")
        member.fill(f"#reason-{claim_id}", "入院前从未确诊")
        member.click(f"#claim-{claim_id} button.dispute")
        member.wait_for_url(f"**/mutual-aid/me#claim-{claim_id}")
        assert member.locator(f"#claim-{claim_id}").get_attribute("data-status") == "disputed"

    # The operator puts it to the jury; this test's jury is small (quorum 1).
    with new_page(browser, url) as operator:
        sign_in(operator, "opadmin", "/mutual-aid/operator")
        operator.click(f"#claim-{claim_id} button.open-case")
        operator.wait_for_url(f"**/mutual-aid/operator#claim-{claim_id}")
        assert operator.locator(f"#claim-{claim_id}").get_attribute("data-status") == "jury"
    with context.transaction() as session:
        case_id = session.scalar(select(JuryCase.id).where(JuryCase.claim_id == claim_id))
        session.execute(update(JuryCase).where(JuryCase.id == case_id).values(quorum=1))

    # A juror qualifies by the quiz, reads the brief (no one named) and votes 支持.
    with new_page(browser, url) as juror:
        sign_in(juror, "juror", "/mutual-aid/jury")
        for question in ("j1", "j2", "j3"):
            juror.check(f"#a-{question}-1")
        juror.click("#quiz-online-comprehensive button.take-quiz")
        juror.wait_for_url("**/mutual-aid/jury")
        brief = juror.locator(f"#case-{case_id}")
        assert "张*明" in brief.inner_text() and "张小明" not in juror.content()
        brief.locator("button.support").click()
        juror.wait_for_url(f"**/mutual-aid/jury#case-{case_id}")
        assert juror.locator(f"#case-{case_id}").count() == 0

    # Voting ends; the operator closes the case, which approves the claim (public notice), then opens a period
    # and apportions it, which pays the claim.
    with context.transaction() as session:
        session.execute(update(JuryCase).where(JuryCase.id == case_id).values(
            closes_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    with new_page(browser, url) as operator:
        sign_in(operator, "opadmin", "/mutual-aid/operator")
        operator.click(f"#case-{case_id} button.close-case")
        operator.wait_for_url(f"**/mutual-aid/operator#case-{case_id}")
        assert operator.locator(f"#claim-{claim_id}").get_attribute("data-status") == "noticed"
        with context.transaction() as session:
            claim = session.get(Claim, claim_id)
            approved, notice_until = claim.amount_approved, claim.notice_until
        assert approved == assessed
        operator.goto("/mutual-aid/notices")
        assert f"¥{format_yuan(approved)}" in operator.locator(f"#notice-{claim_id}").inner_text()

        assert notice_until > TODAY

        # The notice runs its days (moved into the past here); the period's cut-off falls after it.
        with context.transaction() as session:
            session.execute(update(Claim).where(Claim.id == claim_id).values(notice_until=TODAY - dt.timedelta(days=1)))
        operator.goto("/mutual-aid/operator")
        cutoff = TODAY
        operator.fill("#cutoff-online-comprehensive", cutoff.isoformat())
        operator.fill("#charge-online-comprehensive", (cutoff + dt.timedelta(days=7)).isoformat())
        operator.click("#periods-online-comprehensive button.open-period-button")
        operator.wait_for_url("**/mutual-aid/operator#periods-online-comprehensive")
        operator.locator("#periods-online-comprehensive button.apportion").click()
        operator.wait_for_url(re.compile(r"/mutual-aid/operator#period-\d+$"))

    with context.transaction() as session:
        period = session.scalars(select(Period).where(Period.plan_code == "online-comprehensive")).one()
        charges = list(session.scalars(select(Charge).where(Charge.period_id == period.id)))
        assert period.status == "apportioned" and period.cases == 1 and period.payouts == approved
        assert period.members == 2 and sum(charge.amount for charge in charges) == period.charged
        assert session.get(Claim, claim_id).status == "paid"

    # The public statement: no sign-in, the share per member as recorded, and the chart drawn.
    with new_page(browser, url) as visitor:
        visitor.goto("/mutual-aid/plans/online-comprehensive/periods")
        shown = visitor.locator(f"#period-{period.id}")
        assert shown.get_attribute("data-share") == str(period.share)
        assert f"¥{format_yuan(period.share)}" in shown.locator(".share").inner_text()
        assert shown.locator(".members").inner_text().strip() == "2"
        assert f"¥{format_yuan(period.payouts)}" in shown.locator(".payouts").inner_text()
        visitor.wait_for_selector('#share-chart[data-drawn="true"] canvas')
        assert "张" not in visitor.content()

        # The member's bill links to its line receipt, which the public API serves.
        with new_page(browser, url) as member:
            sign_in(member, "member", "/mutual-aid/me")
            bill = member.locator("tr.bill")
            assert bill.count() == 1
            mine = next(c for c in charges if c.membership_id == int(bill.get_attribute("data-membership")))
            assert bill.get_attribute("data-fen") == str(mine.amount)
            receipt = member.request.get(bill.locator("a.line-receipt").get_attribute("href"))
            assert receipt.status in (200, 404)  # 404 only until the sequencer has put the entry under a checkpoint
