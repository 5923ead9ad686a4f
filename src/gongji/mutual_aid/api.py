"""HTTP routes of mutual aid (医疗互助): plans, joining, claims and their review, the jury, periods and bills.

Who may call what: plans, notices and period statements are public; members (self-service) join, claim, dispute,
qualify as jurors and vote, seeing only their own persons' records; operator staff act on their own operator's
plans only (reviewer 初审/复审, assessor 公估, operator_admin juries and periods). The services scope every read
(`membership.readable_memberships`, `claims.readable_claims`): a record outside the caller's scope is 404.
Every route's database work is one transaction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from gongji.api.auth import PUBLIC, CurrentPrincipal, access
from gongji.api.deps import AppContext, RowId, get_context
from gongji.api.idempotency import Idempotent
from gongji.api.problems import problem_responses, request_gettext
from gongji.core.errors import InvalidInput, NotFound
from gongji.core.messages import Text
from gongji.episodes import service as episodes
from gongji.episodes.models import Person
from gongji.mutual_aid import apportionment, claims, jury, membership
from gongji.mutual_aid.models import Charge, Claim, ClaimStep, Membership, Period
from gongji.mutual_aid.plans import plan_operator
from gongji.mutual_aid.schemas import (
    BillOut,
    ClaimCreate,
    ClaimOut,
    DisputeRequest,
    InvestigationRequest,
    JoinRequest,
    JurorOut,
    JurorRequest,
    JuryCaseOut,
    JuryResultOut,
    MembershipOut,
    NoticeOut,
    PeriodOpen,
    PeriodOut,
    PlanOut,
    ReviewRequest,
    SharePoint,
    VoteRequest,
)
from gongji.rules.schemas import Money, today_in_china
from gongji.web.i18n import accepted_language

router = APIRouter(prefix="/api", tags=["mutual aid"], responses=problem_responses(401, 403, 404, 409, 422))
Context = Annotated[AppContext, Depends(get_context)]
PlanCode = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="A plan's code.")]
OPERATOR_STAFF = ("operator_admin", "reviewer", "assessor")
#: Reads of claims and memberships: the member's own, or the operator's; admins and analysts see all.
CLAIM_READERS = ("member", *OPERATOR_STAFF, "admin", "analyst")


def _masked_names(session: Session, person_ids: set[int]) -> dict[int, str]:
    if not person_ids:
        return {}
    return dict(session.execute(select(Person.id, Person.masked_name).where(Person.id.in_(person_ids))).all())


def _memberships_out(session: Session, rows: list[Membership]) -> list[MembershipOut]:
    names = _masked_names(session, {row.person_id for row in rows})
    return [MembershipOut.of(row, names.get(row.person_id, "")) for row in rows]


def _claim_out(session: Session, claim: Claim, request: Request) -> ClaimOut:
    gettext = request_gettext(request)
    steps = list(session.scalars(select(ClaimStep).where(ClaimStep.claim_id == claim.id).order_by(ClaimStep.id)))

    def render(reason: dict) -> str:
        return Text(reason["template"], reason.get("values") or {}).render(gettext)

    return ClaimOut.of(claim, steps, render)


def _period_out(period: Period) -> PeriodOut:
    return PeriodOut(
        id=period.id, plan_code=period.plan_code, plan_version=period.plan_version, number=period.number,
        cutoff_at=period.cutoff_at, charge_on=period.charge_on, status=period.status, cases=period.cases,
        payouts=Money.of(period.payouts), fee=Money.of(period.fee), surplus_in=Money.of(period.surplus_in),
        amount_to_collect=Money.of(period.amount_to_collect), members=period.members, share=Money.of(period.share),
        charged=Money.of(period.charged), surplus_out=Money.of(period.surplus_out),
        uncovered=Money.of(period.uncovered), entry_seq=period.entry_seq,
    )


# --- plans, public ----------------------------------------------------------------------------


def current_plans(session: Session, codes: list[str] | None = None) -> list[PlanOut]:
    """Every plan (or those of `codes`) in its version in force today, with the members protected now."""
    return [PlanOut.of(plan.version, plan.spec, plan.protected)
            for plan in membership.plans_in_force(session, today_in_china(), codes)]


@router.get("/mutual-aid/plans", response_model=list[PlanOut], **access(PUBLIC))
def list_plans(context: Context) -> list[PlanOut]:
    """The plans on the platform, each in the version in force today."""
    with context.transaction() as session:
        return current_plans(session)


@router.get("/mutual-aid/plans/{plan_code}", response_model=PlanOut, **access(PUBLIC))
def get_plan(plan_code: PlanCode, context: Context) -> PlanOut:
    """One plan in the version in force today: entry ages, payouts, waiting periods, diseases, funding, calendar."""
    with context.transaction() as session:
        found = current_plans(session, [plan_code])
        if not found:
            raise NotFound("no plan {code}", "plan_code", values={"code": plan_code})
        return found[0]


@router.get("/mutual-aid/notices", response_model=list[NoticeOut], **access(PUBLIC))
def notices(
    context: Context, request: Request,
    plan: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = None,
) -> list[NoticeOut]:
    """The public notice board (公示): approved cases in their notice period, identity masked."""
    english = accepted_language(request.headers.get("accept-language")) == "en"
    with context.transaction() as session:
        return [
            NoticeOut(
                claim_id=notice.claim_id, plan_code=notice.plan_code, masked_name=notice.masked_name,
                age_band=notice.age_band,
                disease=notice.disease_name_en if english else notice.disease_name_zh,
                amount=Money.of(notice.amount), summary=notice.summary, notice_until=notice.notice_until,
            )
            for notice in claims.public_notices(session, plan)
        ]


@router.get("/mutual-aid/plans/{plan_code}/periods", response_model=list[PeriodOut], **access(PUBLIC))
def plan_periods(plan_code: PlanCode, context: Context) -> list[PeriodOut]:
    """Every apportioned period's public statement (分摊公示), oldest first."""
    with context.transaction() as session:
        plan_operator(session, plan_code)
        rows = session.scalars(
            select(Period).where(Period.plan_code == plan_code, Period.status != "open").order_by(Period.number)
        )
        return [_period_out(period) for period in rows]


@router.get("/mutual-aid/plans/{plan_code}/shares", response_model=list[SharePoint], **access(PUBLIC))
def plan_shares(plan_code: PlanCode, context: Context) -> list[SharePoint]:
    """Share per member over the periods (for the chart)."""
    with context.transaction() as session:
        plan_operator(session, plan_code)
        return [
            SharePoint(number=number, cutoff=cutoff, share=Money.of(share), members=members)
            for number, cutoff, share, members in apportionment.share_history(session, plan_code)
        ]


@router.get("/mutual-aid/periods/{period_id}", response_model=PeriodOut, **access(PUBLIC))
def get_period(period_id: RowId, context: Context) -> PeriodOut:
    """One apportioned period's public statement."""
    with context.transaction() as session:
        period = session.get(Period, period_id)
        if period is None or period.status == "open":
            raise NotFound("no apportioned period {id}", "period_id", values={"id": period_id})
        return _period_out(period)


# --- members ----------------------------------------------------------------------------------


@router.post("/mutual-aid/plans/{plan_code}/join", status_code=201, response_model=MembershipOut,
             **access("member"))
def join(
    plan_code: PlanCode, body: JoinRequest, context: Context, principal: CurrentPrincipal, once: Idempotent
) -> MembershipOut | JSONResponse:
    """Join oneself or a family member (real name, the ID checked); refused with numbered reasons (J1–J7)."""

    def work(session: Session) -> MembershipOut:
        joined = membership.join_plan(
            session, context.vault, principal, plan_code, id_number=body.id_number, name=body.name,
            relationship=body.relationship, tier=body.tier, shares=body.shares, declaration=body.declaration,
            scheme=body.scheme, region=body.region,
        )
        return _memberships_out(session, [joined])[0]

    return once.run(work)


@router.get("/me/memberships", response_model=list[MembershipOut], **access("member"))
def my_memberships(context: Context, principal: CurrentPrincipal) -> list[MembershipOut]:
    """This account's memberships: itself and the family it joined."""
    with context.transaction() as session:
        return _memberships_out(session, membership.my_memberships(session, principal))


@router.post("/me/memberships/{membership_id}/withdraw", response_model=MembershipOut, **access("member"))
def withdraw(membership_id: RowId, context: Context, principal: CurrentPrincipal) -> MembershipOut:
    """主动退出: protection ends now; re-joining waits for the plan's re-join period."""
    with context.transaction() as session:
        return _memberships_out(session, [membership.withdraw(session, principal, membership_id)])[0]


@router.get("/me/bills", response_model=list[BillOut], **access("member"))
def my_bills(context: Context, principal: CurrentPrincipal) -> list[BillOut]:
    """Every period's charge of this account's memberships, each with the link to its ledger receipt."""
    with context.transaction() as session:
        bills = []
        for member in membership.my_memberships(session, principal):
            charged = select(Charge.period_id).where(Charge.membership_id == member.id).order_by(Charge.period_id)
            for period_id in session.scalars(charged):
                bill = apportionment.member_bill(session, member.id, period_id)
                bills.append(BillOut(
                    period_id=bill.period_id, number=bill.number, line_no=bill.line_no, amount=Money.of(bill.amount),
                    status=bill.status, entry_seq=bill.entry_seq,
                    receipt_url=f"/api/ledger/entries/{bill.entry_seq}/lines/{bill.line_no}/receipt",
                ))
        return bills


@router.post("/mutual-aid/claims", status_code=201, response_model=ClaimOut, **access("member"))
def file_claim(
    body: ClaimCreate, context: Context, principal: CurrentPrincipal, request: Request, once: Idempotent
) -> ClaimOut | JSONResponse:
    """报案 against an episode of the member's person; with `bill`, the hospital bill is recorded and its
    statutory layers settled first (so the claim sees only what is left after them)."""
    if (body.episode_id is None) == (body.bill is None):
        raise InvalidInput("give either episode_id or bill", "episode_id")

    def work(session: Session) -> ClaimOut:
        episode_id = body.episode_id
        if body.bill is not None:
            member = membership.get_membership(session, body.membership_id, principal)
            bill = body.bill
            episode = episodes.create_episode(
                session, member.person_id, bill.admission_date, bill.discharge_date, bill.hospital_level,
                bill.icd10, bill.class_a, bill.class_b, bill.out_of_catalogue, book=context.book,
                actor=principal.username, subject=principal,
            )
            episodes.settle_statutory(session, context.book, episode.id, principal.username, principal)
            episode_id = episode.id
        claim = claims.file_claim(session, context.vault, principal, body.membership_id, episode_id)
        return _claim_out(session, claim, request)

    return once.run(work)


@router.get("/mutual-aid/claims", response_model=list[ClaimOut], **access(*CLAIM_READERS))
def list_claims(
    context: Context, principal: CurrentPrincipal, request: Request,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ClaimOut]:
    """Claims the caller may see (their own, or their operator's), newest first, optionally of one status."""
    with context.transaction() as session:
        query = claims.readable_claims(principal).order_by(Claim.id.desc()).limit(limit)
        if status is not None:
            query = query.where(Claim.status == status)
        return [_claim_out(session, claim, request) for claim in session.scalars(query)]


@router.get("/mutual-aid/claims/{claim_id}", response_model=ClaimOut, **access(*CLAIM_READERS))
def get_claim(claim_id: RowId, context: Context, principal: CurrentPrincipal, request: Request) -> ClaimOut:
    with context.transaction() as session:
        return _claim_out(session, claims.get_claim(session, claim_id, principal), request)


@router.post("/mutual-aid/claims/{claim_id}/dispute", response_model=ClaimOut, **access("member"))
def dispute(
    claim_id: RowId, body: DisputeRequest, context: Context, principal: CurrentPrincipal, request: Request
) -> ClaimOut:
    """申诉: the member disputes a rejection; the operator puts it to the member jury (评审团)."""
    with context.transaction() as session:
        return _claim_out(session, claims.dispute(session, principal, claim_id, reason=body.reason), request)


# --- operator staff ---------------------------------------------------------------------------


@router.post("/mutual-aid/claims/{claim_id}/first-review", response_model=ClaimOut, **access("reviewer"))
def first_review(
    claim_id: RowId, body: ReviewRequest, context: Context, principal: CurrentPrincipal, request: Request
) -> ClaimOut:
    """初审: on to the assessor (公估), or rejected with a note."""
    if body.amount is not None:
        raise InvalidInput("an amount is set at re-review only", "amount")
    with context.transaction() as session:
        claim = claims.first_review(session, principal, claim_id, approve=body.approve, note=body.note,
                                    fraud=body.fraud)
        return _claim_out(session, claim, request)


@router.post("/mutual-aid/claims/{claim_id}/investigation", response_model=ClaimOut, **access("assessor"))
def investigation(
    claim_id: RowId, body: InvestigationRequest, context: Context, principal: CurrentPrincipal, request: Request
) -> ClaimOut:
    """公估调查: the assessor's record; its summary is published with the notice."""
    with context.transaction() as session:
        claim = claims.record_investigation(session, principal, claim_id, summary=body.summary,
                                            findings=body.findings)
        return _claim_out(session, claim, request)


@router.post("/mutual-aid/claims/{claim_id}/re-review", response_model=ClaimOut, **access("reviewer"))
def re_review(
    claim_id: RowId, body: ReviewRequest, context: Context, principal: CurrentPrincipal, request: Request
) -> ClaimOut:
    """复审 and decision: approved (the public notice starts) or rejected."""
    with context.transaction() as session:
        claim = claims.re_review(session, context.vault, principal, claim_id, approve=body.approve, note=body.note,
                                 amount=body.amount, fraud=body.fraud)
        return _claim_out(session, claim, request)


@router.post("/mutual-aid/claims/{claim_id}/jury", status_code=201, response_model=JuryCaseOut,
             **access("operator_admin"))
def open_jury_case(claim_id: RowId, context: Context, principal: CurrentPrincipal) -> JuryCaseOut:
    """Put a disputed rejection to the member jury: a brief with masked identity, the plan's quorum."""
    with context.transaction() as session:
        return JuryCaseOut.of(jury.open_case(session, claim_id, actor=principal.username, subject=principal))


@router.post("/mutual-aid/jury/cases/{case_id}/close", response_model=JuryResultOut, **access("operator_admin"))
def close_jury_case(case_id: RowId, context: Context, principal: CurrentPrincipal) -> JuryResultOut:
    """Count the votes: below the quorum nothing is decided; otherwise more than half approves."""
    with context.transaction() as session:
        result = jury.close_case(session, case_id, actor=principal.username, subject=principal)
        return JuryResultOut(case_id=result.case_id, votes=result.votes, supports=result.supports,
                             quorum=result.quorum, outcome=result.outcome, closes_at=result.closes_at)


@router.post("/mutual-aid/plans/{plan_code}/periods", status_code=201, response_model=PeriodOut,
             **access("operator_admin"))
def open_period(plan_code: PlanCode, body: PeriodOpen, context: Context, principal: CurrentPrincipal) -> PeriodOut:
    """Open the next apportionment period: at the given cut-off, or the plan calendar's next announcement day."""
    if (body.cutoff_at is None) != (body.charge_on is None):
        raise InvalidInput("give both cutoff_at and charge_on, or neither", "cutoff_at")
    with context.transaction() as session:
        if body.cutoff_at is None:
            period = apportionment.period_schedule(session, plan_code, today_in_china(), actor=principal.username,
                                                   subject=principal)
        else:
            period = apportionment.open_period(session, plan_code, cutoff_at=body.cutoff_at,
                                               charge_on=body.charge_on, actor=principal.username, subject=principal)
        return _period_out(period)


@router.post("/mutual-aid/periods/{period_id}/apportion", response_model=PeriodOut, **access("operator_admin"))
def apportion(period_id: RowId, context: Context, principal: CurrentPrincipal) -> PeriodOut:
    """分摊: charge every member protected at the cut-off (one bulk ledger entry) and pay the period's cases."""
    with context.transaction() as session:
        return _period_out(apportionment.apportion(session, period_id, actor=principal.username, subject=principal))


@router.get("/mutual-aid/memberships", response_model=list[MembershipOut], **access(*OPERATOR_STAFF, "admin"))
def list_memberships(
    context: Context, principal: CurrentPrincipal,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MembershipOut]:
    """Memberships of the caller's operator (admins: all), newest first."""
    with context.transaction() as session:
        query = membership.readable_memberships(principal).order_by(Membership.id.desc()).limit(limit)
        if status is not None:
            query = query.where(Membership.status == status)
        return _memberships_out(session, list(session.scalars(query)))


# --- the jury ---------------------------------------------------------------------------------


@router.post("/mutual-aid/plans/{plan_code}/jurors", status_code=201, response_model=JurorOut,
             **access("member"))
def qualify(plan_code: PlanCode, body: JurorRequest, context: Context, principal: CurrentPrincipal) -> JurorOut:
    """Sit on the plan's jury: adult, paying member for 30 days or more, quiz passed, no fraud record."""
    with context.transaction() as session:
        juror = jury.qualify_juror(session, context.vault, principal, plan_code, body.answers)
        return JurorOut(id=juror.id, plan_code=juror.plan_code, qualified_at=juror.qualified_at,
                        quiz_score=juror.quiz_score)


@router.get("/mutual-aid/jury/cases", response_model=list[JuryCaseOut], **access("member"))
def jury_cases(context: Context, principal: CurrentPrincipal) -> list[JuryCaseOut]:
    """Open cases this juror may vote on."""
    with context.transaction() as session:
        return [JuryCaseOut.of(case) for case in jury.open_cases_for(session, principal)]


@router.post("/mutual-aid/jury/cases/{case_id}/votes", status_code=201, **access("member"))
def vote(case_id: RowId, body: VoteRequest, context: Context, principal: CurrentPrincipal) -> dict[str, bool]:
    """One vote per juror per case: 支持 (supports) or 反对."""
    with context.transaction() as session:
        cast = jury.cast_vote(session, principal, case_id, body.supports)
        return {"supports": cast.supports}
