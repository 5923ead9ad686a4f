"""Claims (互助金申请): filing against a spine episode, review by the operator, public notice, and payout.

报案 (filed, with numbered findings R1–R8 and the amount the rules would pay) →
初审 (reviewer) → 公估调查 (assessor) → 复审 (reviewer) → approved and publicly
noticed (公示) → paid; a rejection may be disputed and go to the member jury
(jury.py). The statutory layers are settled first (基本医保先行): mutual aid pays
only on the residual the coverage registry shows, and records what it paid there
so no later layer pays it again. Services flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gongji.core.access import Subject, is_self_service
from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gongji.core.identity import IdentityVault, birth_date
from gongji.core.persistence import china_day, lock_row, utcnow
from gongji.episodes.models import Episode, Person
from gongji.episodes.service import coverage_of, get_episode, record_coverage
from gongji.ledger.service import post_entry
from gongji.mutual_aid import rules
from gongji.mutual_aid.accounts import BANK, pool_account
from gongji.mutual_aid.membership import get_membership, readable_memberships
from gongji.mutual_aid.models import Claim, ClaimStep, Membership
from gongji.mutual_aid.plans import ContributionFunding, FixedPayment, PlanSpec, plan_at, plan_operator, plan_version

#: Claims that no longer count towards limits or block a new claim of the same group.
DEAD_STATUSES = ("rejected", "closed")
_MAX_NOTE = 2000


def readable_claims(subject: Subject | None) -> Select[tuple[Claim]]:
    """The claims a caller may see: those of the memberships it may see (`readable_memberships`)."""
    visible = readable_memberships(subject).with_only_columns(Membership.id)
    return select(Claim).where(Claim.membership_id.in_(visible))


def get_claim(session: Session, claim_id: int, subject: Subject | None = None) -> Claim:
    claim = session.scalars(readable_claims(subject).where(Claim.id == claim_id)).one_or_none()
    if claim is None:
        raise NotFound("no claim {id}", "claim_id", values={"id": claim_id})
    return claim


def _text(value: str, field: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or len(value) > _MAX_NOTE or (required and not value.strip()):
        raise InvalidInput("{field} must be 1–{max} characters", field, values={"field": field, "max": _MAX_NOTE})
    if any(not ch.isprintable() and ch not in "\n\t" for ch in value):
        raise InvalidInput("{field} contains control characters", field, values={"field": field})
    return value.strip()


def _step(session: Session, claim: Claim, step: str, outcome: str, note: str, actor: str, at: dt.datetime) -> None:
    session.add(ClaimStep(claim_id=claim.id, step=step, outcome=outcome, note=note, actor=actor, at=at))
    session.flush()
    record_audit(session, actor, f"claim.{step}", "claim", claim.id,
                 {"outcome": outcome, "status": claim.status, "note": note, "amount_approved": claim.amount_approved})


def _facts(
    session: Session, vault: IdentityVault, claim_id: int | None, membership: Membership, episode: Episode,
    spec: PlanSpec,
) -> rules.ClaimFacts:
    """Read what the rules need: birth date, the membership on the event day, this year's claims, the residual."""
    person = session.get(Person, membership.person_id)
    birth = birth_date(vault.decrypt(person.id_number_enc, "persons.id_number_enc"))
    event = episode.admission_date
    year = episode.discharge_date.year
    others = session.execute(
        select(Claim.amount_approved, Claim.amount_assessed, Episode.icd10, Episode.discharge_date)
        .join(Episode, Episode.id == Claim.episode_id)
        .where(Claim.membership_id == membership.id, Claim.status.not_in(DEAD_STATUSES),
               Claim.id != (claim_id or 0))
    ).all()
    this_year = [row for row in others if row.discharge_date.year == year]
    groups = {code for row in others for code in rules.groups_of(spec, row.icd10)}
    suspended = membership.status == "suspended" and china_day(membership.status_changed_at) <= event
    left = membership.left_at is not None and china_day(membership.left_at) <= event
    view = coverage_of(session, episode.id)
    return rules.ClaimFacts(
        icd10=episode.icd10, event_on=event, birth=birth, tier=membership.tier,
        joined_on=china_day(membership.joined_at), protected_from=membership.protected_from,
        active_at_event=not (suspended or left), claims_this_year=len(this_year),
        paid_this_year=sum(row.amount_approved if row.amount_approved is not None else row.amount_assessed
                           for row in this_year),
        groups_claimed=frozenset(groups), residual=view.residual,
        in_policy_residual=max(view.residual - episode.out_of_catalogue, 0), scheme=person.scheme,
    )


def file_claim(
    session: Session, vault: IdentityVault, subject: Subject, membership_id: int, episode_id: int,
    now: dt.datetime | None = None,
) -> Claim:
    """报案: a claim of one membership against one episode of the same person, judged under the plan version in
    force at discharge. The statutory layers must be settled first; one claim per episode and plan."""
    now = now or utcnow()
    get_membership(session, membership_id, subject)
    membership = lock_row(session, Membership, membership_id)
    episode = get_episode(session, episode_id, subject)
    if episode.person_id != membership.person_id:
        raise InvalidInput("the episode is not of this member", "episode_id")
    if episode.settled_at is None:
        raise Conflict("settle the statutory layers (basic insurance first) before claiming mutual aid", "episode_id")
    duplicate = session.scalar(select(Claim.id).where(Claim.episode_id == episode_id,
                                                      Claim.plan_code == membership.plan_code))
    if duplicate is not None:
        raise Conflict("R5: this episode is already claimed in this plan (claim {id})", "episode_id",
                       values={"id": duplicate})
    version, spec = plan_at(session, membership.plan_code, episode.discharge_date)
    assessment = rules.assess_claim(spec, _facts(session, vault, None, membership, episode, spec))
    claim = Claim(
        plan_code=membership.plan_code, plan_version=version, membership_id=membership.id, episode_id=episode.id,
        disease_group=assessment.group.code if assessment.group else None, status="filed",
        amount_assessed=assessment.amount, reasons=[reason.as_dict() for reason in assessment.reasons],
        filed_at=now, filed_by=subject.username,
    )
    session.add(claim)
    session.flush()
    _step(session, claim, "file", "filed", "", subject.username, now)
    record_audit(session, subject.username, "claim.assess", "claim", claim.id,
                 {"plan_version": version, "amount_assessed": claim.amount_assessed, "steps": assessment.steps,
                  "reasons": [reason.code for reason in assessment.reasons]})
    return claim


def _staff_claim(session: Session, subject: Subject, claim_id: int, roles: tuple[str, ...], status: str) -> Claim:
    """The claim locked for a step by operator staff of the plan's operator, in the status the step expects."""
    if subject.role not in roles:
        raise Forbidden("role {role} may not take this step", "role", values={"role": subject.role})
    claim = lock_row(session, Claim, claim_id)
    if claim is None or plan_operator(session, claim.plan_code) != subject.operator_code:
        # Another operator's claim does not exist for this caller, exactly like a missing one.
        raise NotFound("no claim {id}", "claim_id", values={"id": claim_id})
    if claim.status != status:
        raise Conflict("the claim is {status}; this step needs it {expected}", "status",
                       values={"status": claim.status, "expected": status})
    return claim


def _start_notice(session: Session, claim: Claim, amount: int, now: dt.datetime) -> None:
    """Approved: the amount is fixed and the public notice (公示) runs for the plan's notice days."""
    spec = plan_version(session, claim.plan_code, claim.plan_version)
    claim.amount_approved = amount
    claim.decided_at = now
    claim.notice_until = china_day(now) + dt.timedelta(days=spec.calendar.notice_days)
    claim.status = "noticed"


def first_review(
    session: Session, subject: Subject, claim_id: int, *, approve: bool, note: str, fraud: bool = False,
    now: dt.datetime | None = None,
) -> Claim:
    """初审 by a reviewer of the plan's operator: on to the assessor (公估), or rejected (marked fraud if so found)."""
    now = now or utcnow()
    note = _text(note, "note", required=not approve)
    outcome = _outcome(approve, fraud)
    claim = _staff_claim(session, subject, claim_id, ("reviewer",), "filed")
    _decide(claim, approve, "investigating", now)
    _step(session, claim, "first_review", outcome, note, subject.username, now)
    return claim


def _outcome(approve: bool, fraud: bool) -> str:
    if approve and fraud:
        raise InvalidInput("a claim found fraudulent cannot be approved", "fraud")
    return "approved" if approve else "fraud" if fraud else "rejected"


def _decide(claim: Claim, approve: bool, onward: str, now: dt.datetime) -> None:
    if approve:
        claim.status = onward
    else:
        claim.status, claim.decided_at = "rejected", now


def record_investigation(
    session: Session, subject: Subject, claim_id: int, *, summary: str, findings: str,
    now: dt.datetime | None = None,
) -> Claim:
    """公估调查 by an assessor of the plan's operator; the summary is shown in the public notice, so no names."""
    now = now or utcnow()
    summary, findings = _text(summary, "summary"), _text(findings, "findings", required=False)
    claim = _staff_claim(session, subject, claim_id, ("assessor",), "investigating")
    claim.investigation = {"assessor": subject.username, "summary": summary, "findings": findings,
                           "at": now.isoformat()}
    claim.status = "re_review"
    _step(session, claim, "investigation", "recorded", summary, subject.username, now)
    return claim


def re_review(
    session: Session, vault: IdentityVault, subject: Subject, claim_id: int, *, approve: bool, note: str,
    amount: int | None = None, fraud: bool = False, now: dt.datetime | None = None,
) -> Claim:
    """复审 and decision: approved for the amount the rules give now (lowered only with a note), or rejected.

    Findings are recomputed first (another claim may have used the year's limits meanwhile);
    a claim with findings cannot be approved here — only the jury may overturn a rejection.
    """
    now = now or utcnow()
    note = _text(note, "note", required=not approve or amount is not None)
    outcome = _outcome(approve, fraud)
    claim = _staff_claim(session, subject, claim_id, ("reviewer",), "re_review")
    if approve:
        assessment = _reassess(session, vault, claim)
        if assessment.reasons:
            raise Conflict("the claim cannot be approved: {reasons}", "approve",
                           values={"reasons": "; ".join(f"{r.code} {r.text.render()}" for r in assessment.reasons)})
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)
                                   or not 0 < amount <= assessment.amount):
            raise InvalidInput("amount must lie between 1 and the assessed {assessed} fen", "amount",
                               values={"assessed": assessment.amount})
        _start_notice(session, claim, assessment.amount if amount is None else amount, now)
    else:
        _decide(claim, False, "", now)
    _step(session, claim, "re_review", outcome, note, subject.username, now)
    return claim


def _reassess(session: Session, vault: IdentityVault, claim: Claim) -> rules.Assessment:
    spec = plan_version(session, claim.plan_code, claim.plan_version)
    membership = session.get(Membership, claim.membership_id)
    episode = session.get(Episode, claim.episode_id)
    assessment = rules.assess_claim(spec, _facts(session, vault, claim.id, membership, episode, spec))
    claim.amount_assessed = assessment.amount
    claim.reasons = [reason.as_dict() for reason in assessment.reasons]
    return assessment


def dispute(session: Session, subject: Subject, claim_id: int, *, reason: str, now: dt.datetime | None = None
            ) -> Claim:
    """申诉: the member's account disputes a rejection; the operator then puts it to the jury (评审团)."""
    now = now or utcnow()
    if not is_self_service(subject):
        raise Forbidden("only the member's own account disputes a rejection", "role")
    reason = _text(reason, "reason")
    get_claim(session, claim_id, subject)
    claim = lock_row(session, Claim, claim_id)
    if claim.status != "rejected":
        raise Conflict("only a rejected claim can be disputed; this one is {status}", "status",
                       values={"status": claim.status})
    claim.status = "disputed"
    _step(session, claim, "dispute", "disputed", reason, subject.username, now)
    return claim


def payable(claim: Claim, spec: PlanSpec, today: dt.date) -> bool:
    """Noticed and the notice over — or, where contributions fund the plan, as soon as it is approved."""
    if claim.status != "noticed":
        return False
    return isinstance(spec.funding, ContributionFunding) or claim.notice_until < today


def payable_amount(session: Session, claim: Claim, spec: PlanSpec) -> int:
    """What paying the claim now would pay: a fixed payout in full, a reimbursement within what is left of the bill."""
    if isinstance(spec.payment, FixedPayment):
        return claim.amount_approved or 0
    return min(claim.amount_approved or 0, coverage_of(session, claim.episode_id).residual)


def pay_claim(session: Session, claim_id: int, *, actor: str, now: dt.datetime | None = None) -> Claim:
    """互助金给付: the pool pays the family through custody, and the coverage registry records what covers the bill.

    A reimbursement is money towards the bill: it is paid only up to what is left of it now (if another layer
    paid meanwhile, the rest is paid and the step says so; nothing left closes the claim unpaid). A fixed
    payout (定额给付) is the plan's promise whatever the bill: it is paid in full, and only the part within
    the residual is recorded as coverage, so later layers still see the bill's true residual.
    """
    now = now or utcnow()
    claim = lock_row(session, Claim, claim_id)
    if claim is None:
        raise NotFound("no claim {id}", "claim_id", values={"id": claim_id})
    spec = plan_version(session, claim.plan_code, claim.plan_version)
    if not payable(claim, spec, china_day(now)):
        raise Conflict("the claim is not payable yet (status {status}, notice until {until})", "status",
                       values={"status": claim.status, "until": claim.notice_until})
    residual = coverage_of(session, claim.episode_id).residual
    covers = min(claim.amount_approved, residual)
    amount = payable_amount(session, claim, spec)
    note = "" if covers == claim.amount_approved else f"residual {residual} fen; {claim.amount_approved} approved"
    if amount <= 0:
        claim.status = "closed"
        _step(session, claim, "pay", "nothing_left", note, actor, now)
        return claim
    if covers > 0:
        claim.coverage_id = record_coverage(
            session, claim.episode_id, "mutual_aid", spec.name.zh, covers,
            {"plan_code": claim.plan_code, "plan_version": claim.plan_version, "claim_id": claim.id,
             "disease_group": claim.disease_group, "approved": claim.amount_approved, "paid": amount,
             "beyond_the_bill": amount - covers},
            recorded_by=actor,
        ).id
    entry = post_entry(session, "payout", f"{spec.name.zh} 互助金给付", f"ma-claim:{claim.id}",
                       [(pool_account(claim.plan_code), amount), (BANK, -amount)], actor=actor)
    claim.payout_entry_seq, claim.status = entry.seq, "paid"
    _step(session, claim, "pay", "paid", note, actor, now)
    return claim


@dataclass(frozen=True)
class Notice:
    """One line of the public notice (公示): nothing that identifies the member beyond the masked name."""

    claim_id: int
    plan_code: str
    masked_name: str
    age_band: str
    disease_group: str | None
    disease_name_zh: str | None
    disease_name_en: str | None
    amount: int
    summary: str
    notice_until: dt.date


def age_band(birth_year: int, on: dt.date) -> str:
    """A ten-year band ("30–39") from the year of birth: enough for the notice, too coarse to identify anyone."""
    low = (on.year - birth_year) // 10 * 10
    return f"{low}–{low + 9}"


def public_notices(session: Session, plan_code: str | None = None, today: dt.date | None = None) -> list[Notice]:
    """Claims under public notice today (approved, the notice running), oldest first."""
    today = today or china_day(utcnow())
    query = (
        select(Claim, Person.masked_name, Person.birth_year, Episode.admission_date)
        .join(Membership, Membership.id == Claim.membership_id)
        .join(Person, Person.id == Membership.person_id)
        .join(Episode, Episode.id == Claim.episode_id)
        .where(Claim.status == "noticed", Claim.notice_until >= today)
        .order_by(Claim.decided_at, Claim.id)
    )
    if plan_code is not None:
        query = query.where(Claim.plan_code == plan_code)
    notices = []
    specs: dict[tuple[str, int], PlanSpec] = {}
    for claim, masked_name, birth_year, admitted in session.execute(query):
        key = (claim.plan_code, claim.plan_version)
        spec = specs.setdefault(key, plan_version(session, *key))
        group = next((g for g in spec.diseases if g.code == claim.disease_group), None)
        notices.append(Notice(
            claim.id, claim.plan_code, masked_name, age_band(birth_year, admitted), claim.disease_group,
            group.name.zh if group else None, group.name.en if group else None, claim.amount_approved,
            (claim.investigation or {}).get("summary", ""), claim.notice_until,
        ))
    return notices

