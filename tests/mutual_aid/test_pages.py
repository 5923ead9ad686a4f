"""The mutual-aid pages on the server: each renders for its roles, others get 403 or 404 (or the sign-in),
public pages carry only masked identities, and the forms reach the services."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import valid_id_number
from sqlalchemy import select, update

from gongji.api.auth import CSRF_COOKIE
from gongji.api.auth_service import create_user
from gongji.core.identity import mask_id_number
from gongji.mutual_aid.models import Claim, Membership
from gongji.mutual_aid.plans import load_plans

PASSWORD = "a long and unusual passphrase 7"
HTML = {"Accept": "text/html"}
OWN_ID = valid_id_number("330102", dt.date(1990, 6, 15), 31)
NO = {"q-q-cancer": "no", "q-q-hospital": "no"}
STAY = {"admission_date": "2025-02-01", "discharge_date": "2025-02-11", "hospital_level": "3", "icd10": "C34.1",
        "class_a": "60,000", "class_b": "30,000", "out_of_catalogue": "10,000"}


@pytest.fixture
def app(db_url, tmp_path):
    from gongji.api.app import create_app
    from gongji.core.settings import Settings

    app = create_app(Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None))
    with app.state.gongji.transaction() as session:
        create_user(session, "member", PASSWORD, "member", "会员甲")
        create_user(session, "member2", PASSWORD, "member", "会员乙")
        create_user(session, "caseworker", PASSWORD, "caseworker", "王审核员", regions=("330100",))
        for role in ("reviewer", "operator_admin", "assessor"):
            create_user(session, role, PASSWORD, role, role, operator_code="online-demo")
        create_user(session, "union-reviewer", PASSWORD, "reviewer", "工会审核员", operator_code="union-hz")
    return app


def sign_in(client, username: str) -> None:
    client.cookies.clear()
    client.get("/workbench/login")
    answer = client.post("/workbench/login", data={
        "username": username, "password": PASSWORD, "csrf_token": client.cookies[CSRF_COOKIE],
    }, follow_redirects=False)
    assert answer.status_code == 303


def post(client, url: str, data: dict | None = None):
    return client.post(url, data={**(data or {}), "csrf_token": client.cookies[CSRF_COOKIE]}, headers=HTML,
                       follow_redirects=False)


def join_self(client, plan: str = "online-comprehensive", **extra):
    data = {"id_number": OWN_ID, "name": "张小明", "relationship": "self", "tier": "standard", "shares": "1", **NO}
    return post(client, f"/mutual-aid/plans/{plan}/join", data | extra)


def test_public_pages_list_every_plan_and_need_no_sign_in(client):
    page = client.get("/mutual-aid", headers=HTML)
    assert page.status_code == 200
    for spec in {spec.code: spec for spec in load_plans()}.values():
        assert spec.name.zh in page.text and f'id="plan-{spec.code}"' in page.text
    detail = client.get("/mutual-aid/plans/online-comprehensive", headers=HTML)
    assert detail.status_code == 200 and "300,000.00" in detail.text  # 30万元 standard tier, ages 0–39
    assert 'id="join-form"' not in detail.text and 'id="sign-in-to-join"' in detail.text
    assert client.get("/mutual-aid/notices", headers=HTML).status_code == 200
    periods = client.get("/mutual-aid/plans/online-comprehensive/periods", headers=HTML)
    assert periods.status_code == 200 and 'id="share-chart"' in periods.text
    assert client.get("/mutual-aid/plans/no-such-plan", headers=HTML).status_code == 404
    assert client.get("/mutual-aid/plans/no-such-plan/periods", headers=HTML).status_code == 404


def test_english_is_one_switch_away(client):
    page = client.get("/mutual-aid?lang=en", headers=HTML)
    assert page.status_code == 200 and "Critical illness comprehensive plan" in page.text
    assert '<html lang="en">' in page.text


@pytest.mark.parametrize("path", ["/mutual-aid/me", "/mutual-aid/jury", "/mutual-aid/operator"])
def test_signed_in_pages_send_a_visitor_to_the_sign_in(client, path):
    answer = client.get(path, headers=HTML, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/workbench/login?next=%2Fmutual-aid%2F")


@pytest.mark.parametrize(("username", "path", "status"), [
    ("member", "/mutual-aid/me", 200), ("member", "/mutual-aid/jury", 200), ("member", "/mutual-aid/operator", 403),
    ("caseworker", "/mutual-aid/me", 403), ("caseworker", "/mutual-aid/jury", 403),
    ("caseworker", "/mutual-aid/operator", 403), ("reviewer", "/mutual-aid/operator", 200),
    ("operator_admin", "/mutual-aid/operator", 200), ("assessor", "/mutual-aid/operator", 200),
    ("reviewer", "/mutual-aid/me", 403),
])
def test_each_page_renders_for_its_roles_only(client, username, path, status):
    sign_in(client, username)
    answer = client.get(path, headers=HTML)
    assert answer.status_code == status
    if status == 403:
        assert 'id="page-error"' in answer.text


def test_a_member_joins_and_the_id_and_name_never_come_back(client):
    sign_in(client, "member")
    form = client.get("/mutual-aid/plans/online-comprehensive", headers=HTML)
    assert 'id="join-form"' in form.text and 'name="q-q-cancer"' in form.text
    refused = join_self(client, **{"q-q-cancer": "yes"})
    assert refused.status_code == 422 and "J" in refused.text and OWN_ID not in refused.text
    assert "张小明" not in refused.text
    unanswered = join_self(client, **{"q-q-hospital": ""})
    assert unanswered.status_code == 422 and 'data-field="declaration"' in unanswered.text
    joined = join_self(client)
    assert joined.status_code == 303 and joined.headers["location"] == "/mutual-aid/me#memberships"
    home = client.get("/mutual-aid/me", headers=HTML)
    assert 'data-status="waiting"' in home.text and mask_id_number(OWN_ID) in home.text
    assert OWN_ID not in home.text and "张小明" not in home.text and "张*明" in home.text
    plans = client.get("/mutual-aid", headers=HTML)
    assert 'data-count="0"' in plans.text  # waiting, not yet protected


def test_a_staff_account_cannot_join(client):
    sign_in(client, "caseworker")
    assert join_self(client).status_code == 403


def _protect_all(app) -> None:
    """Move the waiting period into the past: joined a year ago, protected since."""
    with app.state.gongji.transaction() as session:
        session.execute(update(Membership).values(
            status="protected", protected_from=dt.date(2024, 1, 1),
            joined_at=dt.datetime(2023, 10, 1, tzinfo=dt.UTC),
        ))


def test_a_claim_goes_from_the_bill_to_the_operator_and_is_disputed(app, client):
    sign_in(client, "member")
    join_self(client)
    _protect_all(app)
    bad = post(client, "/mutual-aid/claims", {**STAY, "membership_id": "1", "class_a": "12.345"})
    assert bad.status_code == 422 and 'data-field="class_a"' in bad.text
    filed = post(client, "/mutual-aid/claims", {**STAY, "membership_id": "1"})
    assert filed.status_code == 303, filed.text
    claim_id = int(filed.headers["location"].rsplit("#claim-", 1)[1])
    with app.state.gongji.transaction() as session:
        claim = session.get(Claim, claim_id)
        assessed, status = claim.amount_assessed, claim.status
    home = client.get("/mutual-aid/me", headers=HTML)
    assert f'data-claim="{claim_id}" data-status="{status}"' in home.text
    assert f'data-fen="{assessed}"' in home.text

    # Another operator's reviewer sees nothing of it: to them it does not exist.
    sign_in(client, "union-reviewer")
    assert f'id="claim-{claim_id}"' not in client.get("/mutual-aid/operator", headers=HTML).text
    assert post(client, f"/mutual-aid/operator/claims/{claim_id}/first-review",
                {"decision": "reject", "note": "x"}).status_code == 404

    sign_in(client, "reviewer")
    desk = client.get("/mutual-aid/operator", headers=HTML)
    assert f'id="claim-{claim_id}"' in desk.text and "first-review" in desk.text
    rejected = post(client, f"/mutual-aid/operator/claims/{claim_id}/first-review",
                    {"decision": "reject", "note": "既往症"})
    assert rejected.status_code == 303

    sign_in(client, "member2")
    assert post(client, f"/mutual-aid/claims/{claim_id}/dispute", {"reason": "不是既往症"}).status_code == 404
    sign_in(client, "member")
    home = client.get("/mutual-aid/me", headers=HTML)
    assert 'class="dispute"' in home.text
    assert post(client, f"/mutual-aid/claims/{claim_id}/dispute", {"reason": "不是既往症"}).status_code == 303
    with app.state.gongji.transaction() as session:
        assert session.get(Claim, claim_id).status == "disputed"

    sign_in(client, "reviewer")  # only the operator's admin puts cases to the jury
    assert post(client, f"/mutual-aid/operator/claims/{claim_id}/jury").status_code == 403
    sign_in(client, "operator_admin")
    assert post(client, f"/mutual-aid/operator/claims/{claim_id}/jury").status_code == 303
    with app.state.gongji.transaction() as session:
        assert session.get(Claim, claim_id).status == "jury"


def test_the_notice_board_shows_masked_identities_only(app, client):
    sign_in(client, "member")
    join_self(client)
    _protect_all(app)
    claim_id = int(post(client, "/mutual-aid/claims", {**STAY, "membership_id": "1"})
                   .headers["location"].rsplit("#claim-", 1)[1])
    today = dt.datetime.now(dt.UTC).date()
    with app.state.gongji.transaction() as session:
        session.execute(update(Claim).where(Claim.id == claim_id).values(
            status="noticed", amount_approved=12_345_600, notice_until=today + dt.timedelta(days=7),
            decided_at=dt.datetime.now(dt.UTC), investigation={"summary": "住院病历与诊断一致"},
        ))
    client.cookies.clear()
    board = client.get("/mutual-aid/notices", headers=HTML)
    assert f'id="notice-{claim_id}"' in board.text and "123,456.00" in board.text
    assert "张*明" in board.text and "住院病历与诊断一致" in board.text
    assert "张小明" not in board.text and OWN_ID not in board.text and mask_id_number(OWN_ID) not in board.text
    assert re.search(r"aged \d0–\d9|\d0–\d9", board.text)


def test_only_operator_admins_open_periods_of_their_own_plans(app, client):
    sign_in(client, "reviewer")
    assert post(client, "/mutual-aid/operator/plans/online-comprehensive/periods",
                {"cutoff_day": "2030-01-07", "charge_on": "2030-01-14"}).status_code == 403
    sign_in(client, "operator_admin")
    assert post(client, "/mutual-aid/operator/plans/union-hospital/periods",
                {"cutoff_day": "2030-01-07", "charge_on": "2030-01-14"}).status_code == 404
    assert post(client, "/mutual-aid/operator/plans/online-comprehensive/periods",
                {"cutoff_day": "2030-01-07", "charge_on": "2030-01-14"}).status_code == 303
    desk = client.get("/mutual-aid/operator", headers=HTML)
    assert 'data-status="open"' in desk.text and 'class="apportion"' in desk.text
    with app.state.gongji.transaction() as session:
        assert session.scalar(select(Membership.id)) is None
