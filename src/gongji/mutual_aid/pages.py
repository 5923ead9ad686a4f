"""The mutual-aid pages (医疗互助): plans, joining, the member's home, notices, the jury, periods, the operator.

Public pages (plans, a plan's detail, the notice board 公示, period statements)
need no sign-in and show only masked identities and figures. A member (互助会员)
joins, files claims with the bill of a hospital stay and votes as a juror;
operator staff see only their operator's plans. Pages share the workbench's
machinery (gongji.episodes.pages: rendering, sign-in, CSRF, error pages) and
call the same services as everything else with the signed-in principal as the
subject, so scoping and refusals are the services'. Raw ID numbers and names
go in through the join form and never come back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gongji.api.auth import PUBLIC, SESSION_COOKIE, CurrentPrincipal, Principal, access
from gongji.api.auth_service import user_for_token
from gongji.api.deps import AppContext, RowId
from gongji.api.models import OPERATOR_ROLES
from gongji.core.errors import GongjiError, InvalidInput, NotFound
from gongji.core.messages import Text
from gongji.core.money import format_yuan, parse_yuan
from gongji.core.persistence import china_day
from gongji.episodes import service as episodes
from gongji.episodes.models import Person
from gongji.episodes.pages import (
    EPISODE_FIELDS,
    Context,
    _form_answer,
    _from_domain,
    _from_validation,
    _gettext,
    _go,
    render,
)
from gongji.episodes.schemas import EpisodeCreate
from gongji.episodes.service import RELATIONSHIPS
from gongji.ledger.service import leaf_of_entry
from gongji.mutual_aid import actuarial, apportionment, claims, jury, membership
from gongji.mutual_aid.models import (
    MEMBERSHIP_STATUSES,
    Charge,
    Claim,
    ClaimStep,
    JuryCase,
    Juror,
    Membership,
    Operator,
    Period,
    PlanVersion,
)
from gongji.mutual_aid.plans import PlanSpec, PostEventFunding, plan_at
from gongji.rules.cascade import HOSPITAL_LEVELS
from gongji.rules.schemas import CHINA_TIME, today_in_china

router = APIRouter(prefix="/mutual-aid", tags=["mutual-aid"], include_in_schema=False)

HOME = "/mutual-aid"
MEMBER = "member"
JOIN_FIELDS = ("id_number", "name", "relationship", "tier", "shares", "declaration")
CLAIM_FIELDS = ("membership_id", *EPISODE_FIELDS)
#: Claim statuses an operator acts on, in the order of the review (报案 → 初审 → 公估 → 复审 → 评审团 → 决定).
#: Staff who put disputes to the jury and close its cases.
JURY_CLERKS = ("operator_admin",)
REVIEW_ORDER = ("filed", "first_review", "investigating", "re_review", "disputed", "jury", "rejected", "approved",
                "noticed", "paid", "closed")


def _page(request: Request, template: str, context: dict[str, Any], **options: Any) -> HTMLResponse:
    """render() with what every mutual-aid page uses: yuan formatting and the plan name in the page's language."""
    return render(request, f"mutual_aid/{template}", {"yuan": format_yuan, **context}, **options)


def _viewer(request: Request, context: AppContext) -> Principal | None:
    """Who is signed in on a public page (None for a visitor), so the header and the join form can show."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with context.transaction() as session:
        user = user_for_token(session, token)
        if user is None:
            return None
        principal = Principal(user.id, user.username, user.role, user.display_name, user.regions, user.operator_code)
    request.state.principal = principal
    return principal


def _plan_codes(session: Session, operator_code: str | None = None) -> list[str]:
    query = select(PlanVersion.plan_code).distinct().order_by(PlanVersion.plan_code)
    if operator_code is not None:
        query = query.where(PlanVersion.operator_code == operator_code)
    return list(session.scalars(query))


def _plan_view(session: Session, plan: membership.PlanInForce) -> dict[str, Any]:
    """A plan in force as the pages show it: its spec, version, operator and members protected."""
    operator = session.scalar(select(Operator).where(Operator.code == plan.spec.operator))
    return {"code": plan.code, "version": plan.version, "spec": plan.spec, "operator": operator,
            "protected": plan.protected}


def _plan(session: Session, code: str, on: dt.date | None = None) -> dict[str, Any]:
    on = on or today_in_china()
    found = membership.plans_in_force(session, on, [code])
    if not found:
        raise NotFound("no plan {code} in force on {date}", "plan_code", values={"code": code, "date": on})
    return _plan_view(session, found[0])


def _public_plans(session: Session) -> list[dict[str, Any]]:
    return [_plan_view(session, plan) for plan in membership.plans_in_force(session, today_in_china())]


# --- public: plans --------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse, **access(PUBLIC))
def plans_page(request: Request, context: Context) -> Response:
    """互助计划: every plan in force, with who runs it, who may join, what it pays and what it costs."""
    _viewer(request, context)
    with context.transaction() as session:
        plans = _public_plans(session)
    return _page(request, "plans.html", {"plans": plans})


def _join_context(session: Session, code: str, principal: Principal | None, values: dict[str, Any]) -> dict[str, Any]:
    plan = _plan(session, code)
    shown = {name: value for name, value in values.items() if name not in ("id_number", "name")}
    return {
        "plan": plan, "values": shown, "relationships": RELATIONSHIPS,
        "can_join": principal is not None and principal.role == MEMBER,
        "periods_href": f"{HOME}/plans/{code}/periods",
    }


@router.get("/plans/{code}", response_class=HTMLResponse, **access(PUBLIC))
def plan_page(request: Request, code: str, context: Context) -> Response:
    """A plan's terms (计划详情); a signed-in member also sees the form to join it, for themselves or family."""
    principal = _viewer(request, context)
    with context.transaction() as session:
        page = _join_context(session, code, principal, {"relationship": "self", "tier": "standard", "shares": "1"})
    return _page(request, "plan.html", page | {"errors": [], "error_for": {}, "fields": JOIN_FIELDS})


@router.post("/plans/{code}/join", response_class=HTMLResponse, **access(MEMBER))
async def join(request: Request, code: str, context: Context, principal: CurrentPrincipal) -> Response:
    """Join a plan (加入): the health declaration is answered question by question, yes or no."""
    gettext = _gettext(request)
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in ("id_number", "name", "relationship", "tier", "shares")}

    def spec_of() -> PlanSpec:
        with context.transaction() as session:
            return plan_at(session, code, today_in_china())[1]

    spec = await run_in_threadpool(spec_of)
    answers = {question.id: str(form.get(f"q-{question.id}", "")) for question in spec.declaration}
    values["answers"] = answers
    errors: list[dict[str, Any]] = []
    if any(answer not in ("yes", "no") for answer in answers.values()):
        errors.append(_from_domain(InvalidInput("answer every question of the health declaration", "declaration"),
                                   gettext))
    shares = int(values["shares"]) if values["shares"].isdigit() else 0
    if not 1 <= shares <= 5:
        errors.append(_from_domain(InvalidInput("shares must be a whole number from 1 to 5", "shares"), gettext))
    if not errors:

        def work() -> None:
            with context.transaction() as session:
                membership.join_plan(
                    session, context.vault, principal, code, id_number=values["id_number"], name=values["name"],
                    relationship=values["relationship"], tier=values["tier"], shares=shares,
                    declaration={key: answer == "yes" for key, answer in answers.items()},
                )

        try:
            await run_in_threadpool(work)
            return _go(request, f"{HOME}/me#memberships")
        except membership.JoinRefused as refused:
            errors = [_numbered(reason, gettext) for reason in refused.reasons]
        except GongjiError as error:
            errors = [_from_domain(error, gettext)]

    def page() -> dict[str, Any]:
        with context.transaction() as session:
            return _join_context(session, code, principal, values)

    return _form_answer(request, "mutual_aid/plan.html", await run_in_threadpool(page) | {"yuan": format_yuan},
                        JOIN_FIELDS, errors)


def _numbered(reason: Any, gettext: Any) -> dict[str, Any]:
    """A numbered refusal (J1 …) as a form error of its field."""
    return {"field": reason.field, "status": 422, "detail": f"{reason.code} {reason.text.render(gettext)}"}


# --- the member's home ----------------------------------------------------------------------------


def _masked(session: Session, person_ids: set[int]) -> dict[int, Person]:
    if not person_ids:
        return {}
    return {person.id: person for person in session.scalars(select(Person).where(Person.id.in_(person_ids)))}


def _receipt_links(session: Session, period: Period, charge: Charge) -> dict[str, str | None]:
    """The line's receipt (its path to the entry's lines_root) and the 查验凭证 page for the entry itself."""
    if period.entry_seq is None:
        return {"line": None, "verify": None}
    leaf = leaf_of_entry(session, period.entry_seq)
    return {
        "line": f"/api/ledger/entries/{period.entry_seq}/lines/{charge.line_no}/receipt",
        "verify": f"/ledger/verify?leaf={leaf.leaf_index}" if leaf is not None else None,
    }


def _reasons(claim: Claim, gettext: Any) -> list[dict[str, str]]:
    """The claim's numbered findings (R1 …) in the reader's language."""
    return [
        {"code": reason["code"], "text": Text(reason.get("template", reason["reason"]), reason.get("values", {}))
         .render(gettext)}
        for reason in claim.reasons or []
    ]


def _claim_rows(session: Session, found: list[Claim], gettext: Any) -> list[dict[str, Any]]:
    members = {m.id: m for m in session.scalars(select(Membership).where(
        Membership.id.in_({claim.membership_id for claim in found} or {0})))}
    persons = _masked(session, {m.person_id for m in members.values()})
    steps: dict[int, list[ClaimStep]] = {}
    for step in session.scalars(select(ClaimStep).where(ClaimStep.claim_id.in_({c.id for c in found} or {0}))
                                .order_by(ClaimStep.id)):
        steps.setdefault(step.claim_id, []).append(step)
    cases = {case.claim_id: case for case in session.scalars(
        select(JuryCase).where(JuryCase.claim_id.in_({c.id for c in found} or {0})))}
    return [
        {"claim": claim, "person": persons.get(members[claim.membership_id].person_id),
         "steps": steps.get(claim.id, []), "case": cases.get(claim.id), "reasons": _reasons(claim, gettext)}
        for claim in found
    ]


def _member_home(
    session: Session, principal: Principal, gettext: Any, values: dict[str, Any] | None = None
) -> dict[str, Any]:
    mine = list(membership.my_memberships(session, principal))
    persons = _masked(session, {m.person_id for m in mine})
    names = {}
    for code in {m.plan_code for m in mine}:
        names[code] = plan_at(session, code, today_in_china())[1].name
    bills = []
    if mine:
        rows = session.execute(
            select(Charge, Period).join(Period, Period.id == Charge.period_id)
            .where(Charge.membership_id.in_([m.id for m in mine]))
            .order_by(Period.cutoff_at.desc(), Charge.membership_id)
        ).all()
        bills = [{"charge": charge, "period": period, "links": _receipt_links(session, period, charge)}
                 for charge, period in rows]
    found = list(session.scalars(claims.readable_claims(principal).order_by(Claim.id.desc())))
    claimable = [m for m in mine if m.status in ("waiting", "protected", "suspended")]
    return {
        "memberships": [{"m": m, "person": persons.get(m.person_id), "plan_name": names[m.plan_code]} for m in mine],
        "bills": bills, "claims": _claim_rows(session, found, gettext), "claimable": claimable, "plan_names": names,
        "persons": persons, "levels": HOSPITAL_LEVELS,
        "values": values or ({name: "" for name in CLAIM_FIELDS} | {"hospital_level": "2"}),
    }


@router.get("/me", response_class=HTMLResponse, **access(MEMBER))
def member_page(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    """我的互助: memberships, bills with their proofs, claims with their numbered reasons, and filing a claim."""
    with context.transaction() as session:
        page = _member_home(session, principal, _gettext(request))
    return _page(request, "me.html", page | {"errors": [], "error_for": {}, "fields": CLAIM_FIELDS})


@router.post("/claims", response_class=HTMLResponse, **access(MEMBER))
async def file_claim(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    """File a claim (申请互助金): the stay's bill becomes a spine episode, its statutory layers are settled,
    then the claim is filed on what is left — in one transaction, so a refused claim leaves no episode."""
    gettext = _gettext(request)
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in CLAIM_FIELDS}
    submitted: dict[str, Any] = {name: values[name] for name in EPISODE_FIELDS}
    if values["hospital_level"].isdigit():
        submitted["hospital_level"] = int(values["hospital_level"])
    errors: list[dict[str, Any]] = []
    if not values["membership_id"].isdigit():
        errors.append(_from_domain(InvalidInput("choose the membership to claim under", "membership_id"), gettext))
    try:
        body = EpisodeCreate.model_validate(submitted)
    except ValidationError as error:
        errors += _from_validation(error, gettext)
    if not errors:

        def work() -> int:
            with context.transaction() as session:
                chosen = next((m for m in membership.my_memberships(session, principal)
                               if m.id == int(values["membership_id"])), None)
                if chosen is None:
                    raise NotFound("no such membership of yours", "membership_id")
                episode = episodes.create_episode(
                    session, chosen.person_id, body.admission_date, body.discharge_date, body.hospital_level,
                    body.icd10, body.class_a, body.class_b, body.out_of_catalogue, book=context.book,
                    actor=principal.username, subject=principal,
                )
                episodes.settle_statutory(session, context.book, episode.id, principal.username, principal)
                return claims.file_claim(session, context.vault, principal, chosen.id, episode.id).id

        try:
            return _go(request, f"{HOME}/me#claim-{await run_in_threadpool(work)}")
        except GongjiError as error:
            errors = [_from_domain(error, gettext)]

    def page() -> dict[str, Any]:
        with context.transaction() as session:
            return _member_home(session, principal, gettext, values)

    return _form_answer(request, "mutual_aid/me.html", await run_in_threadpool(page) | {"yuan": format_yuan},
                        CLAIM_FIELDS, errors)


@router.post("/claims/{claim_id}/dispute", response_class=HTMLResponse, **access(MEMBER))
async def dispute(request: Request, claim_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """Dispute a rejection (申诉): the case may then go to the member jury."""
    reason = str((await request.form()).get("reason", "")).strip()

    def work() -> None:
        with context.transaction() as session:
            claims.dispute(session, principal, claim_id, reason=reason)

    await run_in_threadpool(work)
    return _go(request, f"{HOME}/me#claim-{claim_id}")


@router.post("/memberships/{membership_id}/withdraw", response_class=HTMLResponse, **access(MEMBER))
def withdraw(request: Request, membership_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """Leave a plan (主动退出)."""
    with context.transaction() as session:
        membership.withdraw(session, principal, membership_id)
    return _go(request, f"{HOME}/me#membership-{membership_id}")


# --- public: notices and period statements --------------------------------------------------------


@router.get("/notices", response_class=HTMLResponse, **access(PUBLIC))
def notices_page(request: Request, context: Context) -> Response:
    """公示: approved cases in their notice period, identity masked, with the investigation's summary."""
    _viewer(request, context)
    plan = request.query_params.get("plan") or None
    with context.transaction() as session:
        found = claims.public_notices(session, plan_code=plan)
        names = {code: plan_at(session, code, today_in_china())[1].name for code in _plan_codes(session)}
    return _page(request, "notices.html", {"notices": found, "plan_names": names, "plan": plan})


def _chart(history: list[tuple[int, dt.date, int, int]], gettext: Any,
           view: actuarial.ActuarialView | None = None) -> str:
    """The share per member over the periods, as JSON for the page's chart (yuan numbers for the axis);
    with the actuarial view, the share the age mix explains and the projected periods (dashed) too."""
    data: dict[str, Any] = {
        "periods": [f"{number} · {day.isoformat()}" for number, day, _share, _members in history],
        "share": [share / 100 for _number, _day, share, _members in history],
        "members": [members for *_rest, members in history],
        "label": gettext("Share per member (yuan)"),
    }
    if view is not None and view.projection:
        ahead = [None] * len(view.projection)
        data |= {
            "periods": data["periods"] + [f"{gettext('projected')} · {p.cutoff_day.isoformat()}"
                                          for p in view.projection],
            "share": data["share"] + ahead,
            "expected": [point.expected / 100 for point in view.history] + ahead,
            "expected_label": gettext("Expected from the age mix (yuan)"),
            # The dashed line starts at the last actual share so the two read as one.
            "projection": [None] * max(len(history) - 1, 0) + data["share"][-1:]
            + [point.share / 100 for point in view.projection],
            "projection_label": gettext("Projected share per member (yuan)"),
        }
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


@router.get("/plans/{code}/periods", response_class=HTMLResponse, **access(PUBLIC))
def periods_page(request: Request, code: str, context: Context) -> Response:
    """分摊公示: each period's cases, payouts, fee, surplus, members and share, and the share over time;
    for a post-event plan also the actuarial view (精算): the projection, the age mix and the adverse-selection flag."""
    _viewer(request, context)
    with context.transaction() as session:
        plan = _plan(session, code)
        periods = list(session.scalars(
            select(Period).where(Period.plan_code == code, Period.status != "open").order_by(Period.number.desc())
        ))
        statements = [apportionment.period_statement(session, period.id) | {"id": period.id} for period in periods]
        history = list(apportionment.share_history(session, code))
        view = (actuarial.actuarial_view(session, code, today_in_china())
                if isinstance(plan["spec"].funding, PostEventFunding) else None)
    return _page(request, "periods.html", {
        "plan": plan, "statements": statements, "actuarial": view,
        "chart_json": _chart(history, _gettext(request), view),
    })


# --- the jury ------------------------------------------------------------------------------------


def _jury_context(session: Session, principal: Principal) -> dict[str, Any]:
    mine = membership.my_memberships(session, principal)
    qualified = set(session.scalars(select(Juror.plan_code).where(Juror.user_id == principal.user_id)))
    quizzes = []
    for code in sorted({m.plan_code for m in mine}):
        spec = plan_at(session, code, today_in_china())[1]
        if spec.jury is not None and code not in qualified:
            quizzes.append({"code": code, "spec": spec})
    cases = jury.open_cases_for(session, principal)
    return {"quizzes": quizzes, "qualified": sorted(qualified), "cases": cases}


@router.get("/jury", response_class=HTMLResponse, **access(MEMBER))
def jury_page(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    """评审团: the qualification quiz of each plan the member is in, and the open cases they may vote on."""
    with context.transaction() as session:
        page = _jury_context(session, principal)
    return _page(request, "jury.html", page | {"errors": []})


@router.post("/jury/{code}/qualify", response_class=HTMLResponse, **access(MEMBER))
async def qualify(request: Request, code: str, context: Context, principal: CurrentPrincipal) -> Response:
    """Take the quiz (评审员资格测试): each answer is the index of the chosen choice; refusals come numbered."""
    gettext = _gettext(request)
    form = await request.form()
    answers = {key.removeprefix("a-"): int(value) for key, value in form.items()
               if key.startswith("a-") and isinstance(value, str) and value.isdigit()}

    def work() -> None:
        with context.transaction() as session:
            jury.qualify_juror(session, context.vault, principal, code, answers)

    try:
        await run_in_threadpool(work)
        return _go(request, f"{HOME}/jury")
    except jury.JurorRefused as refused:
        errors = [_numbered(reason, gettext) for reason in refused.reasons]

    def page() -> dict[str, Any]:
        with context.transaction() as session:
            return _jury_context(session, principal)

    return _page(request, "jury.html", await run_in_threadpool(page) | {"errors": errors, "refused_plan": code},
                 status=422)


@router.post("/jury/cases/{case_id}/vote", response_class=HTMLResponse, **access(MEMBER))
async def vote(request: Request, case_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """Vote 支持 (support the claim) or 反对 (uphold the rejection)."""
    choice = str((await request.form()).get("vote", ""))
    if choice not in ("support", "oppose"):
        raise InvalidInput("vote must be support or oppose", "vote")

    def work() -> None:
        with context.transaction() as session:
            jury.cast_vote(session, principal, case_id, choice == "support")

    await run_in_threadpool(work)
    return _go(request, f"{HOME}/jury#case-{case_id}")


# --- the operator --------------------------------------------------------------------------------


def _operator_context(session: Session, principal: Principal, gettext: Any) -> dict[str, Any]:
    codes = _plan_codes(session, principal.operator_code)
    found = list(session.scalars(claims.readable_claims(principal).order_by(Claim.id)))
    rows = _claim_rows(session, found, gettext)
    by_status = [(status, [row for row in rows if row["claim"].status == status]) for status in REVIEW_ORDER]
    counts = Counter(
        (code, status) for code, status in session.execute(
            select(Membership.plan_code, Membership.status).where(Membership.plan_code.in_(codes or [""]))
        )
    )
    periods = list(session.scalars(
        select(Period).where(Period.plan_code.in_(codes or [""])).order_by(Period.plan_code, Period.number.desc())
    ))
    plans = []
    for code in codes:
        try:
            plan = _plan(session, code)
        except NotFound:
            continue
        if isinstance(plan["spec"].funding, PostEventFunding):
            cutoff, charge_on = apportionment.next_period_dates(plan["spec"], today_in_china())
            plan |= {"next_cutoff": china_day(cutoff), "next_charge": charge_on}
        plans.append(plan)
    return {
        "plans": plans, "by_status": [(s, r) for s, r in by_status if r], "statuses": MEMBERSHIP_STATUSES,
        "counts": counts, "periods": periods, "is_admin": principal.role == "operator_admin",
        "role": principal.role,
    }


@router.get("/operator", response_class=HTMLResponse, **access(*OPERATOR_ROLES))
def operator_page(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    """运营方工作台: the operator's claims by status with their next actions, periods and membership counts."""
    with context.transaction() as session:
        page = _operator_context(session, principal, _gettext(request))
    return _page(request, "operator.html", page)


def _approve(form: Any) -> bool:
    decision = str(form.get("decision", ""))
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision must be approve or reject", "decision")
    return decision == "approve"


async def _operator_action(request: Request, context: AppContext, action: Any, anchor: str) -> Response:
    """Run one review action in its own transaction, then back to the dashboard at the claim or period."""
    form = await request.form()

    def work() -> None:
        with context.transaction() as session:
            action(session, form)

    await run_in_threadpool(work)
    return _go(request, f"{HOME}/operator#{anchor}")


@router.post("/operator/claims/{claim_id}/first-review", response_class=HTMLResponse, **access(*OPERATOR_ROLES))
async def first_review(request: Request, claim_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """初审: approve (goes on to the assessor) or reject, with a note."""
    return await _operator_action(request, context, lambda session, form: claims.first_review(
        session, principal, claim_id, approve=_approve(form), note=str(form.get("note", "")).strip(),
    ), f"claim-{claim_id}")


@router.post("/operator/claims/{claim_id}/investigation", response_class=HTMLResponse, **access(*OPERATOR_ROLES))
async def investigation(request: Request, claim_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """公估调查: the assessor's summary (shown in the public notice) and findings (not shown)."""
    return await _operator_action(request, context, lambda session, form: claims.record_investigation(
        session, principal, claim_id, summary=str(form.get("summary", "")).strip(),
        findings=str(form.get("findings", "")).strip(),
    ), f"claim-{claim_id}")


def _amount(form: Any) -> int | None:
    text = str(form.get("amount", "")).strip()
    return parse_yuan(text, "amount") if text else None


@router.post("/operator/claims/{claim_id}/re-review", response_class=HTMLResponse, **access(*OPERATOR_ROLES))
async def re_review(request: Request, claim_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """复审 and decision: approve (optionally a different amount, in yuan) or reject."""
    return await _operator_action(request, context, lambda session, form: claims.re_review(
        session, context.vault, principal, claim_id, approve=_approve(form), note=str(form.get("note", "")).strip(),
        amount=_amount(form),
    ), f"claim-{claim_id}")


@router.post("/operator/claims/{claim_id}/jury", response_class=HTMLResponse, **access(*JURY_CLERKS))
async def open_jury_case(request: Request, claim_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """Put a disputed rejection to the jury (提交评审团)."""

    def action(session: Session, form: Any) -> None:
        jury.open_case(session, claim_id, actor=principal.username, subject=principal)

    return await _operator_action(request, context, action, f"claim-{claim_id}")


@router.post("/operator/cases/{case_id}/close", response_class=HTMLResponse, **access(*JURY_CLERKS))
async def close_jury_case(request: Request, case_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """Close a jury case once voting has ended: its votes decide the claim (below the quorum it runs on)."""

    def action(session: Session, form: Any) -> None:
        jury.close_case(session, case_id, actor=principal.username, subject=principal)

    return await _operator_action(request, context, action, f"case-{case_id}")


def _day(form: Any, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(form.get(name, "")))
    except ValueError:
        raise InvalidInput("enter a date as YYYY-MM-DD", name) from None


@router.post("/operator/plans/{code}/periods", response_class=HTMLResponse, **access("operator_admin"))
async def open_period(request: Request, code: str, context: Context, principal: CurrentPrincipal) -> Response:
    """Open the plan's next apportionment period (分摊期): members protected at 0:00 of the cut-off day share it."""

    def action(session: Session, form: Any) -> None:
        cutoff = dt.datetime.combine(_day(form, "cutoff_day"), dt.time(), CHINA_TIME)
        apportionment.open_period(session, code, cutoff_at=cutoff, charge_on=_day(form, "charge_on"),
                                  actor=principal.username, subject=principal)

    return await _operator_action(request, context, action, f"periods-{code}")


@router.post("/operator/periods/{period_id}/apportion", response_class=HTMLResponse, **access("operator_admin"))
async def apportion(request: Request, period_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """分摊: charge every member protected at the cut-off their share, as one bulk ledger entry."""

    def action(session: Session, form: Any) -> None:
        apportionment.apportion(session, period_id, actor=principal.username, subject=principal)

    return await _operator_action(request, context, action, f"period-{period_id}")
