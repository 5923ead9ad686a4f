"""Every mutual-aid route × account × scope: a record outside the caller's scope does not exist (404).

Two operators' plans, each with a record of every kind: side "a" is online-demo's online-comprehensive
(member A's membership and disputed claim before the jury, an apportioned period), side "b" is union-hz's
union-hospital (member B's membership and claim; its jury case and period are written directly, since the
plan has neither a jury nor periods). Member B also belongs to online-comprehensive and sits on its jury,
so B may vote on A's case; a third member (C, seeding only) is in both plans and had the claim the period paid.

The walk covers every route of the app with a mutual-aid record id in its path (the REST routes under /api and
the pages under /mutual-aid): not allowed by role → 403; allowed, record in scope → 2xx, 303 (a page's form
went through) or 409 (a state conflict: the claims wait before the jury, the period is apportioned); allowed,
record out of scope → 404, exactly like a missing one. A new route with such an id must join WALK, or
`test_every_mutual_aid_route_with_an_id_is_walked` fails.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from helpers import valid_id_number
from sqlalchemy import update

from gongji.api.app import create_app
from gongji.api.auth import PUBLIC, Principal
from gongji.api.auth_service import create_user, issue_token
from gongji.core.persistence import utcnow
from gongji.core.settings import Settings
from gongji.episodes import service as episodes
from gongji.mutual_aid import apportionment, claims, jury, membership
from gongji.mutual_aid.models import Claim, JuryCase, Period
from gongji.rules.schemas import today_in_china

PASSWORD = "a long and unusual passphrase 7"
NO = {"q-cancer": False, "q-hospital": False}
ANSWERS = {"j1": 1, "j2": 1, "j3": 1}
PLANS = {"a": "online-comprehensive", "b": "union-hospital"}
#: Path parameters that name a mutual-aid record (`code` is a plan's code on the pages).
RECORD_IDS = {"claim_id", "membership_id", "case_id", "period_id", "plan_code", "code"}
#: Person C, already a member of both plans: joining C again is a conflict whoever asks, and changes nothing.
C_NUMBER = valid_id_number("330102", dt.date(1975, 2, 2), 77)
JOIN = {"id_number": C_NUMBER, "name": "陈小红", "relationship": "other", "declaration": NO}
JOIN_FORM = {"id_number": C_NUMBER, "name": "陈小红", "relationship": "other", "tier": "standard", "shares": "1",
             "q-q-cancer": "no", "q-q-hospital": "no"}  # the page names each answer q-<question id>
REVIEW = {"approve": False, "note": "材料不全"}
EARLY = {"cutoff_at": "2024-06-01T00:00:00+08:00", "charge_on": "2024-06-08"}  # before the last period: 409

#: (method, path) → (scope kind, body, roles that may act if narrower than the route's x-roles, extra in-scope codes).
#: Scope kinds: public (200 for everyone), plan (every plan is visible), own (the caller's records: a member's
#: own, an operator's plans, admins and analysts all), vote (cases of plans where the member is a juror, not
#: the member's own family's). The extra codes are the plans' rules speaking: union-hospital has no jury (422),
#: and no periods (422).
WALK: dict[tuple[str, str], tuple[str, dict | None, tuple[str, ...] | None, tuple[int, ...]]] = {
    ("GET", "/api/mutual-aid/plans/{plan_code}"): ("public", None, None, ()),
    ("GET", "/api/mutual-aid/plans/{plan_code}/periods"): ("public", None, None, ()),
    ("GET", "/api/mutual-aid/plans/{plan_code}/shares"): ("public", None, None, ()),
    ("GET", "/api/mutual-aid/periods/{period_id}"): ("public", None, None, ()),
    ("POST", "/api/mutual-aid/plans/{plan_code}/join"): ("plan", JOIN, None, ()),
    ("POST", "/api/mutual-aid/plans/{plan_code}/jurors"): ("plan", {"answers": ANSWERS}, None, (422,)),
    ("POST", "/api/mutual-aid/plans/{plan_code}/periods"): ("own", EARLY, None, (422,)),
    ("POST", "/api/me/memberships/{membership_id}/withdraw"): ("own", None, None, ()),
    ("GET", "/api/mutual-aid/claims/{claim_id}"): ("own", None, None, ()),
    ("POST", "/api/mutual-aid/claims/{claim_id}/dispute"): ("own", {"reason": "补交材料"}, None, ()),
    ("POST", "/api/mutual-aid/claims/{claim_id}/first-review"): ("own", REVIEW, None, ()),
    ("POST", "/api/mutual-aid/claims/{claim_id}/investigation"): ("own", {"summary": "核实"}, None, ()),
    ("POST", "/api/mutual-aid/claims/{claim_id}/re-review"): ("own", REVIEW, None, ()),
    ("POST", "/api/mutual-aid/claims/{claim_id}/jury"): ("own", None, None, ()),
    ("POST", "/api/mutual-aid/jury/cases/{case_id}/close"): ("own", None, None, ()),
    ("POST", "/api/mutual-aid/jury/cases/{case_id}/votes"): ("vote", {"supports": True}, None, ()),
    ("POST", "/api/mutual-aid/periods/{period_id}/apportion"): ("own", None, None, ()),
    # The pages (web forms: the body goes as form fields).
    ("GET", "/mutual-aid/plans/{code}"): ("public", None, None, ()),
    ("GET", "/mutual-aid/plans/{code}/periods"): ("public", None, None, ()),
    ("POST", "/mutual-aid/plans/{code}/join"): ("plan", JOIN_FORM, None, ()),
    ("POST", "/mutual-aid/jury/{code}/qualify"): ("plan", {f"a-{k}": str(v) for k, v in ANSWERS.items()}, None,
                                                  (422,)),
    ("POST", "/mutual-aid/jury/cases/{case_id}/vote"): ("vote", {"vote": "support"}, None, ()),
    ("POST", "/mutual-aid/claims/{claim_id}/dispute"): ("own", {"reason": "补交材料"}, None, ()),
    ("POST", "/mutual-aid/memberships/{membership_id}/withdraw"): ("own", None, None, ()),
    ("POST", "/mutual-aid/operator/claims/{claim_id}/first-review"): (
        "own", {"decision": "reject", "note": "材料不全"}, ("reviewer",), ()),
    ("POST", "/mutual-aid/operator/claims/{claim_id}/investigation"): (
        "own", {"summary": "核实"}, ("assessor",), ()),
    ("POST", "/mutual-aid/operator/claims/{claim_id}/re-review"): (
        "own", {"decision": "reject", "note": "材料不全"}, ("reviewer",), ()),
    ("POST", "/mutual-aid/operator/claims/{claim_id}/jury"): ("own", None, None, ()),
    ("POST", "/mutual-aid/operator/cases/{case_id}/close"): ("own", None, None, ()),
    ("POST", "/mutual-aid/operator/plans/{code}/periods"): (
        "own", {"cutoff_day": "2024-06-01", "charge_on": "2024-06-08"}, None, (422,)),
    ("POST", "/mutual-aid/operator/periods/{period_id}/apportion"): ("own", None, None, ()),
}
#: username → (role, operator, the sides whose records it may see, the sides whose jury cases it may vote on)
ACCOUNTS = {
    "member-a": ("member", None, {"a"}, set()),
    "member-b": ("member", None, {"b"}, {"a"}),
    "demo-reviewer": ("reviewer", "online-demo", {"a"}, set()),
    "demo-assessor": ("assessor", "online-demo", {"a"}, set()),
    "demo-admin": ("operator_admin", "online-demo", {"a"}, set()),
    "union-reviewer": ("reviewer", "union-hz", {"b"}, set()),
    "union-admin": ("operator_admin", "union-hz", {"b"}, set()),
    "admin": ("admin", None, {"a", "b"}, set()),
    "analyst": ("analyst", None, {"a", "b"}, set()),
    "caseworker": ("caseworker", None, set(), set()),
    "family": ("family", None, set(), set()),
}


def declared_routes(app) -> list[APIRoute]:
    """Every APIRoute, included routers opened up (as tests/api/test_api_access.py does)."""

    def flat(routes) -> list:
        found = []
        for route in routes:
            included = getattr(route, "original_router", None)
            found.extend(flat(included.routes) if included is not None else [route])
        return found

    return [route for route in flat(app.routes) if isinstance(route, APIRoute)]


def _principal(user) -> Principal:
    return Principal(user.id, user.username, user.role, user.display_name, user.regions, user.operator_code)


def _join(session, vault, who: Principal, plan: str, number: str, name: str, since: dt.datetime) -> int:
    return membership.join_plan(session, vault, who, plan, id_number=number, name=name, relationship="self",
                                declaration=NO, scheme="employee", now=since).id


def _claim(session, context, who: Principal, membership_id: int, person_id: int, admitted: dt.date) -> int:
    episode = episodes.create_episode(session, person_id, admitted, admitted + dt.timedelta(days=8), 3, "C34.1",
                                      6_000_000, 3_000_000, 1_000_000, book=context.book)
    episodes.settle_statutory(session, context.book, episode.id, "seed")
    return claims.file_claim(session, context.vault, who, membership_id, episode.id).id


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    var = tmp_path_factory.mktemp("ma-scopes")
    app = create_app(Settings(database_url=f"sqlite:///{var / 'gongji.sqlite3'}", var_dir=var, params_dir=None))
    context = app.state.gongji
    now = utcnow()
    since = now - dt.timedelta(days=400)
    admitted = today_in_china() - dt.timedelta(days=30)
    tokens, users = {}, {}
    with context.transaction() as session:
        for username, (role, operator, _, _) in {**ACCOUNTS, "member-c": ("member", None, (), ())}.items():
            regions = ("000000",) if role in ("admin", "analyst", "caseworker") else ()
            user = create_user(session, username, PASSWORD, role, username, regions=regions, operator_code=operator)
            tokens[username], users[username] = issue_token(session, user), _principal(user)
        a_number = valid_id_number("330102", dt.date(1990, 6, 15), 31)
        b_number = valid_id_number("330102", dt.date(1985, 1, 9), 53)
        ids = {
            "a": _join(session, context.vault, users["member-a"], PLANS["a"], a_number, "张小明", since),
            "b": _join(session, context.vault, users["member-b"], PLANS["b"], b_number, "李大壮", since),
        }
        ids["b2"] = _join(session, context.vault, users["member-b"], PLANS["a"], b_number, "李大壮", since)
        ids["ca"], ids["cb"] = (_join(session, context.vault, users["member-c"], plan, C_NUMBER, "陈小红", since)
                                for plan in PLANS.values())
        for plan in PLANS.values():
            membership.advance_memberships(session, plan, now)
        for who in ("member-a", "member-b"):
            jury.qualify_juror(session, context.vault, users[who], PLANS["a"], ANSWERS)
        persons = {side: membership.get_membership(session, ids[side]).person_id for side in PLANS}
        records = {side: {"membership_id": ids[side], "plan_code": PLANS[side], "code": PLANS[side]}
                   for side in PLANS}
        for side, who, operator in (("a", "member-a", "demo"), ("b", "member-b", "union")):
            claim_id = _claim(session, context, users[who], ids[side], persons[side], admitted)
            claims.first_review(session, users[f"{operator}-reviewer"], claim_id, approve=False, note="材料不全")
            claims.dispute(session, users[who], claim_id, reason="病理报告已补交")
            records[side]["claim_id"] = claim_id
        records["a"]["case_id"] = jury.open_case(session, records["a"]["claim_id"], actor="demo-admin").id
        # union-hospital has no jury: its case is written as the jury would have it.
        case_b = JuryCase(claim_id=records["b"]["claim_id"], plan_code=PLANS["b"], brief={}, quorum=1,
                          opened_at=now, closes_at=now + dt.timedelta(days=10))
        session.add(case_b)
        session.execute(update(Claim).where(Claim.id == records["b"]["claim_id"]).values(status="jury"))
        session.flush()
        records["b"]["case_id"] = case_b.id
        # C's approved claim, its notice over, is what the period pays; every member of the plan shares it.
        paid = _claim(session, context, users["member-c"], ids["ca"],
                      membership.get_membership(session, ids["ca"]).person_id, admitted)
        session.execute(update(Claim).where(Claim.id == paid).values(
            status="noticed", amount_approved=100_000, decided_at=now,
            notice_until=today_in_china() - dt.timedelta(days=1)))
        period = apportionment.open_period(session, PLANS["a"], cutoff_at=now - dt.timedelta(minutes=1),
                                           charge_on=today_in_china() + dt.timedelta(days=7), actor="demo-admin")
        apportionment.apportion(session, period.id, actor="demo-admin")
        records["a"]["period_id"] = period.id
        # union-hospital is funded by contributions and has no periods: its period is written directly.
        fake = Period(plan_code=PLANS["b"], plan_version=1, number=1, cutoff_at=period.cutoff_at,
                      charge_on=period.charge_on, status="apportioned", apportioned_at=now)
        session.add(fake)
        session.flush()
        records["b"]["period_id"] = fake.id
    named = {"memberships": ids, "claims": {"a": records["a"]["claim_id"], "b": records["b"]["claim_id"], "c": paid},
             "period": period.id}
    return app, records, tokens, named


def path_for(route: APIRoute, ids: dict[str, int | str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), route.path)


def mutual_aid_routes(app) -> list[tuple[str, APIRoute]]:
    return [(method, route) for route in declared_routes(app)
            if RECORD_IDS & set(re.findall(r"\{(\w+)\}", route.path)) for method in route.methods]


def test_every_mutual_aid_route_with_an_id_is_walked(world):
    app, *_ = world
    found = mutual_aid_routes(app)
    for route in declared_routes(app):  # every id under the context's paths is a record id the walk knows
        if route.path.startswith(("/api/mutual-aid/", "/api/me/memberships", "/api/me/bills", "/mutual-aid/")):
            assert set(re.findall(r"\{(\w+)\}", route.path)) <= RECORD_IDS, route.path
    assert {(method, route.path) for method, route in found} == set(WALK), "add the new route to WALK"
    for method, route in found:
        kind, _, roles, _ = WALK[(method, route.path)]
        declared = route.openapi_extra["x-roles"]
        assert (declared == [PUBLIC]) == (kind == "public"), route.path
        assert set(roles or declared) <= set(declared), route.path


def expected(username: str, method: str, route: APIRoute, side: str) -> tuple[int, ...]:
    role, _, visible, votes = ACCOUNTS[username]
    kind, _, roles, extra = WALK[(method, route.path)]
    if kind == "public":
        return (200,)
    if role not in (roles or route.openapi_extra["x-roles"]):
        return (403,)
    if kind == "plan" or side in (votes if kind == "vote" else visible):
        return (200, 201, 303, 409, *extra)
    return (404,)


@pytest.mark.parametrize("username", list(ACCOUNTS))
def test_each_account_sees_exactly_its_scope_on_every_route(world, username):
    app, records, tokens, _ = world
    client = TestClient(app, follow_redirects=False)
    headers = {"Authorization": f"Bearer {tokens[username]}"}
    for method, route in mutual_aid_routes(app):
        body = WALK[(method, route.path)][1]
        sent = {"data": body} if route.path.startswith("/mutual-aid/") else {"json": body}
        for side in PLANS:
            response = client.request(method, path_for(route, records[side]), headers=headers, **sent)
            where = f"{username} {method} {route.path} on {side}: {response.status_code} {response.text[:300]}"
            assert response.status_code in expected(username, method, route, side), where


#: What each list shows each account, by the names of the world's records (not through the scoping code).
DEMO, UNION, ALL = {"a", "b2", "ca"}, {"b", "cb"}, {"a", "b", "b2", "ca", "cb"}
LISTED = {
    "/api/mutual-aid/claims": {"member-a": {"a"}, "member-b": {"b"}, "demo-reviewer": {"a", "c"},
                               "demo-assessor": {"a", "c"}, "demo-admin": {"a", "c"}, "union-reviewer": {"b"},
                               "union-admin": {"b"}, "admin": {"a", "b", "c"}, "analyst": {"a", "b", "c"}},
    "/api/mutual-aid/memberships": {"demo-reviewer": DEMO, "demo-assessor": DEMO, "demo-admin": DEMO,
                                    "union-reviewer": UNION, "union-admin": UNION, "admin": ALL},
    "/api/me/memberships": {"member-a": {"a"}, "member-b": {"b", "b2"}},
}


@pytest.mark.parametrize("username", list(ACCOUNTS))
def test_lists_show_exactly_the_callers_scope(world, username):
    app, _, tokens, named = world
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {tokens[username]}"}
    for path, scopes in LISTED.items():
        response = client.get(path, headers=headers)
        if username not in scopes:
            assert response.status_code == 403, f"{username} {path}: {response.status_code}"
            continue
        assert response.status_code == 200, f"{username} {path}: {response.text}"
        kind = "claims" if path.endswith("claims") else "memberships"
        assert sorted(row["id"] for row in response.json()) == sorted(
            named[kind][name] for name in scopes[username]), f"{username} {path}"
    bills = client.get("/api/me/bills", headers=headers)
    if ACCOUNTS[username][0] != "member":
        assert bills.status_code == 403
        return
    # Each member's one membership in online-comprehensive was charged once; member B's union-hospital one never.
    assert [(bill["period_id"], bill["amount"]["fen"] > 0) for bill in bills.json()] == [(named["period"], True)]
