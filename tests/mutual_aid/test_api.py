"""The mutual-aid REST routes end to end: join → claim with a bill → rejection → dispute → jury → notice →
period → apportionment → the member's bill and its ledger receipt; and operator scoping on every claim route."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import valid_id_number
from sqlalchemy import func, select, update

from gongji.api.auth_service import create_user, issue_token
from gongji.core.persistence import utcnow
from gongji.episodes.models import Coverage, Episode
from gongji.ledger import merkle
from gongji.ledger import service as ledger
from gongji.mutual_aid.models import Charge, Claim, JuryCase, Membership
from gongji.rules.schemas import today_in_china

PASSWORD = "a long and unusual passphrase 7"
ANSWERS = {"j1": 1, "j2": 1, "j3": 1}
NO = {"q-cancer": False, "q-hospital": False}


@pytest.fixture
def tokens(app):
    accounts = {
        "alice": ("member", None), "bob": ("member", None), "carol": ("member", None),
        "reviewer": ("reviewer", "online-demo"), "assessor": ("assessor", "online-demo"),
        "boss": ("operator_admin", "online-demo"), "union-reviewer": ("reviewer", "union-hz"),
        "union-boss": ("operator_admin", "union-hz"),
    }
    with app.state.gongji.transaction() as session:
        return {
            name: issue_token(session, create_user(session, name, PASSWORD, role, name, operator_code=operator))
            for name, (role, operator) in accounts.items()
        }


def as_(tokens, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[name]}"}


def join(client, tokens, name: str, birth: dt.date, seq: int):
    return client.post("/api/mutual-aid/plans/online-comprehensive/join", headers=as_(tokens, name), json={
        "id_number": valid_id_number("330102", birth, seq), "name": "张小明", "relationship": "self",
        "declaration": NO,
    })


def protect_since(app, membership_id: int, days: int) -> None:
    """Move a membership's joining back `days` days and its protection to have started (time passes)."""
    now = utcnow()
    with app.state.gongji.transaction() as session:
        session.execute(update(Membership).where(Membership.id == membership_id).values(
            joined_at=now - dt.timedelta(days=days), protected_from=(now - dt.timedelta(days=days - 90)).date(),
            status="protected",
        ))


def test_join_claim_dispute_jury_apportion_and_the_bill_receipt(app, client, tokens):
    joined = join(client, tokens, "alice", dt.date(1990, 6, 15), 31)
    assert joined.status_code == 201, joined.text
    alice = joined.json()
    assert alice["status"] == "waiting" and alice["masked_name"] == "张*明" and "id_number" not in alice
    assert join(client, tokens, "alice", dt.date(1990, 6, 15), 31).status_code in (409, 422)  # already a member
    protect_since(app, alice["id"], 200)

    today = dt.date.today()
    bill = {"admission_date": (today - dt.timedelta(days=20)).isoformat(),
            "discharge_date": (today - dt.timedelta(days=10)).isoformat(), "hospital_level": 3, "icd10": "C34.1",
            "class_a": "60,000", "class_b": "30,000", "out_of_catalogue": "10,000"}
    filed = client.post("/api/mutual-aid/claims", headers=as_(tokens, "alice"),
                        json={"membership_id": alice["id"], "bill": bill})
    assert filed.status_code == 201, filed.text
    claim = filed.json()
    assert claim["status"] == "filed" and claim["reasons"] == []
    assert claim["amount_assessed"]["fen"] == 30_000_000  # 300,000 yuan: standard tier, aged 30–39 at the event

    # Scoping: another operator's reviewer and another member see nothing; the assessor may not first-review.
    assert client.get(f"/api/mutual-aid/claims/{claim['id']}", headers=as_(tokens, "union-reviewer")).status_code == 404
    assert client.get(f"/api/mutual-aid/claims/{claim['id']}", headers=as_(tokens, "bob")).status_code == 404
    assert client.post(f"/api/mutual-aid/claims/{claim['id']}/first-review", headers=as_(tokens, "union-reviewer"),
                       json={"approve": True}).status_code == 404
    assert client.post(f"/api/mutual-aid/claims/{claim['id']}/first-review", headers=as_(tokens, "assessor"),
                       json={"approve": True}).status_code == 403
    assert [c["id"] for c in client.get("/api/mutual-aid/claims", headers=as_(tokens, "reviewer")).json()] == [
        claim["id"]]
    assert client.get("/api/mutual-aid/claims", headers=as_(tokens, "union-reviewer")).json() == []

    rejected = client.post(f"/api/mutual-aid/claims/{claim['id']}/first-review", headers=as_(tokens, "reviewer"),
                           json={"approve": False, "note": "诊断证明不全"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    disputed = client.post(f"/api/mutual-aid/claims/{claim['id']}/dispute", headers=as_(tokens, "alice"),
                           json={"reason": "病理报告已补交"})
    assert disputed.status_code == 200 and disputed.json()["status"] == "disputed"
    assert client.post(f"/api/mutual-aid/claims/{claim['id']}/jury", headers=as_(tokens, "union-boss")
                       ).status_code == 404
    case = client.post(f"/api/mutual-aid/claims/{claim['id']}/jury", headers=as_(tokens, "boss"))
    assert case.status_code == 201, case.text
    case = case.json()
    assert case["quorum"] == 1000 and "张*明" in str(case["brief"]) and "330102" not in str(case["brief"])

    bob = join(client, tokens, "bob", dt.date(1985, 1, 9), 53).json()
    protect_since(app, bob["id"], 120)
    assert client.post("/api/mutual-aid/plans/online-comprehensive/jurors", headers=as_(tokens, "bob"),
                       json={"answers": {"j1": 0, "j2": 0, "j3": 0}}).status_code == 422  # quiz failed
    assert client.post("/api/mutual-aid/plans/online-comprehensive/jurors", headers=as_(tokens, "bob"),
                       json={"answers": ANSWERS}).status_code == 201
    assert [c["id"] for c in client.get("/api/mutual-aid/jury/cases", headers=as_(tokens, "bob")).json()] == [
        case["id"]]
    votes = f"/api/mutual-aid/jury/cases/{case['id']}/votes"
    assert client.post(votes, headers=as_(tokens, "bob"), json={"supports": True}).status_code == 201
    assert client.post(votes, headers=as_(tokens, "bob"), json={"supports": True}).status_code == 409
    assert client.post(votes, headers=as_(tokens, "carol"), json={"supports": False}).status_code in (403, 404, 422)

    close = f"/api/mutual-aid/jury/cases/{case['id']}/close"
    assert client.post(close, headers=as_(tokens, "boss")).status_code == 409  # voting still runs
    with app.state.gongji.transaction() as session:
        session.execute(update(JuryCase).where(JuryCase.id == case["id"]).values(
            closes_at=utcnow() - dt.timedelta(minutes=1)))
    undecided = client.post(close, headers=as_(tokens, "boss"))
    assert undecided.status_code == 200 and undecided.json()["outcome"] is None  # 1 vote, quorum 1,000
    with app.state.gongji.transaction() as session:
        session.execute(update(JuryCase).where(JuryCase.id == case["id"]).values(
            quorum=1, closes_at=utcnow() - dt.timedelta(minutes=1)))
    decided = client.post(close, headers=as_(tokens, "boss"))
    assert decided.json()["outcome"] == "approved"
    noticed = client.get(f"/api/mutual-aid/claims/{claim['id']}", headers=as_(tokens, "alice")).json()
    assert noticed["status"] == "noticed" and noticed["amount_approved"]["fen"] == 30_000_000
    board = client.get("/api/mutual-aid/notices").json()
    assert [(n["claim_id"], n["masked_name"], n["amount"]["fen"]) for n in board] == [
        (claim["id"], "张*明", 30_000_000)]

    with app.state.gongji.transaction() as session:
        session.execute(update(Claim).where(Claim.id == claim["id"]).values(
            notice_until=today_in_china() - dt.timedelta(days=1)))
    cutoff = utcnow().replace(microsecond=0)
    period = client.post("/api/mutual-aid/plans/online-comprehensive/periods", headers=as_(tokens, "boss"),
                         json={"cutoff_at": cutoff.isoformat(),
                               "charge_on": (today_in_china() + dt.timedelta(days=7)).isoformat()})
    assert period.status_code == 201, period.text
    assert client.post(f"/api/mutual-aid/periods/{period.json()['id']}/apportion",
                       headers=as_(tokens, "union-boss")).status_code == 404
    statement = client.post(f"/api/mutual-aid/periods/{period.json()['id']}/apportion", headers=as_(tokens, "boss"))
    assert statement.status_code == 200, statement.text
    figures = statement.json()
    assert figures["members"] == 2 and figures["cases"] == 1
    assert figures["payouts"]["fen"] == 30_000_000 and figures["fee"]["fen"] == 2_400_000  # 8% management fee
    # Each member's share of one case is at most 0.1 yuan: 2 members pay 20 fen, the rest is carried.
    assert figures["charged"]["fen"] == 20
    assert figures["uncovered"]["fen"] == 32_400_000 - 20
    with app.state.gongji.sessions() as session:
        charges = session.scalars(select(Charge.amount).where(Charge.period_id == period.json()["id"])).all()
        assert sorted(charges) == [10, 10]
        paid = session.get(Claim, claim["id"])
        assert paid.status == "paid"
        # The fixed payout is paid in full; the registry records only what covers the bill, which it now does.
        episode = session.get(Episode, paid.episode_id)
        covered = session.scalar(select(func.sum(Coverage.amount)).where(Coverage.episode_id == episode.id))
        assert covered == episode.total and session.get(Coverage, paid.coverage_id).amount < 30_000_000
        payout = ledger.entry_contents(session, [paid.payout_entry_seq])[paid.payout_entry_seq].decode()
        assert '["ma:online-comprehensive:pool",30000000],["bank",-30000000]' in payout

    public = client.get("/api/mutual-aid/plans/online-comprehensive/periods").json()
    assert [p["id"] for p in public] == [period.json()["id"]]
    assert client.get("/api/mutual-aid/plans/online-comprehensive/shares").json()[0]["members"] == 2

    bills = client.get("/api/me/bills", headers=as_(tokens, "alice")).json()
    assert [(b["period_id"], b["amount"]["fen"]) for b in bills] == [(period.json()["id"], 10)]
    with app.state.gongji.transaction() as session:
        ledger.sequence(session, app.state.gongji.signer)
    receipt = client.get(bills[0]["receipt_url"])
    assert receipt.status_code == 200, receipt.text
    line = receipt.json()["line"]
    assert f'"account":"ma:m:{alice["id"]}"' in line["content"] and '"amount":10' in line["content"]
    merkle.verify_inclusion(  # raises if the line is not under the lines root
        merkle.leaf_hash(line["content"].encode()), line["line_no"], line["line_count"],
        [bytes.fromhex(p) for p in line["proof"]], bytes.fromhex(line["lines_root"]),
    )


def test_public_routes_show_plans_without_sign_in(client):
    plans = client.get("/api/mutual-aid/plans")
    assert plans.status_code == 200
    codes = {plan["code"] for plan in plans.json()}
    assert {"online-comprehensive", "online-elderly-cancer", "online-icu", "union-hospital", "village-aid"} <= codes
    one = client.get("/api/mutual-aid/plans/online-comprehensive").json()
    assert one["spec"]["funding"]["fee_rate"] == 800 and one["name_zh"] == "大病综合互助计划"
    assert client.get("/api/mutual-aid/plans/nothing-here").status_code == 404


def test_member_routes_refuse_staff_and_anonymous(client, tokens):
    assert client.get("/api/me/memberships").status_code == 401
    assert client.get("/api/me/memberships", headers=as_(tokens, "reviewer")).status_code == 403
    assert client.get("/api/mutual-aid/memberships", headers=as_(tokens, "alice")).status_code == 403
    assert client.post("/api/mutual-aid/claims", headers=as_(tokens, "alice"),
                       json={"membership_id": 1}).json()["field"] == "episode_id"
