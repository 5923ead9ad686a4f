"""The member jury (评审团): qualified members vote on disputed rejections; a quorum of valid votes decides.

A juror is an adult, protected (paying) member of the plan for some time who
passed the plan's quiz and has no fraud record. A case shows a brief with the
member's masked name only. Below the quorum nothing is decided and voting goes
on; at the quorum a strict majority of support approves (a tie rejects).
Services flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gongji.core.access import Subject
from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gongji.core.identity import IdentityVault, birth_date
from gongji.core.persistence import china_day, lock_row, utcnow
from gongji.episodes.models import Episode, Person, PersonAccount
from gongji.mutual_aid import rules
from gongji.mutual_aid.claims import _start_notice, _step, age_band
from gongji.mutual_aid.models import Claim, ClaimStep, Juror, JuryCase, JuryVote, Membership
from gongji.mutual_aid.plans import check_operator, plan_at, plan_version


class JurorRefused(InvalidInput):
    """Not qualified; `reasons` lists every numbered reason (Q1–Q6), the message the first."""

    def __init__(self, reasons: list[rules.Reason]):
        super().__init__(reasons[0].text, reasons[0].field)
        self.reasons = reasons


def has_fraud_record(session: Session, person_id: int) -> bool:
    """A claim of this person's that a reviewer rejected as fraud (a step with outcome "fraud")."""
    return session.scalar(
        select(func.count()).select_from(ClaimStep)
        .join(Claim, Claim.id == ClaimStep.claim_id)
        .join(Membership, Membership.id == Claim.membership_id)
        .where(Membership.person_id == person_id, ClaimStep.outcome == "fraud")
    ) > 0


def qualify_juror(
    session: Session, vault: IdentityVault, subject: Subject, plan_code: str, answers: Mapping[str, int],
    now: dt.datetime | None = None,
) -> Juror:
    """Admit the account holder (their own person, linked as "self") to the plan's jury, or refuse with reasons."""
    if subject.role != "member":
        raise Forbidden("only member accounts sit on a jury", "role")
    now = now or utcnow()
    today = china_day(now)
    _, spec = plan_at(session, plan_code, today)
    if spec.jury is None:
        raise InvalidInput("plan {plan} has no jury", "plan_code", values={"plan": plan_code})
    jury = spec.jury
    if session.scalar(select(Juror.id).where(Juror.user_id == subject.user_id, Juror.plan_code == plan_code)):
        raise Conflict("Q6: you are already a juror of {plan}", "plan_code", values={"plan": plan_code})
    own = session.execute(
        select(Membership, Person.id_number_enc)
        .join(Person, Person.id == Membership.person_id)
        .join(PersonAccount, PersonAccount.person_id == Person.id)
        .where(PersonAccount.user_id == subject.user_id, PersonAccount.relationship == "self",
               Membership.plan_code == plan_code, Membership.status == "protected")
    ).first()
    if own is None:
        raise JurorRefused([rules.Reason.because("Q1", "plan_code", "only protected members of {plan} sit on its jury",
                                            plan=plan_code)])
    membership, encrypted = own
    reasons = []
    age = rules.age_on(birth_date(vault.decrypt(encrypted, "persons.id_number_enc")), today)
    if age < jury.min_age:
        reasons.append(rules.Reason.because("Q2", "plan_code", "jurors must be at least {min} years old", min=jury.min_age))
    member_days = (today - china_day(membership.joined_at)).days
    if member_days < jury.min_member_days:
        reasons.append(rules.Reason.because("Q3", "plan_code", "jurors must have been members for {min} days",
                                       min=jury.min_member_days))
    score = sum(1 for question in jury.quiz if answers.get(question.id) == question.answer)
    if score < jury.pass_mark:
        reasons.append(rules.Reason.because("Q4", "answers", "the quiz needs {pass_mark} right answers; you had {score}",
                                       pass_mark=jury.pass_mark, score=score))
    if has_fraud_record(session, membership.person_id):
        reasons.append(rules.Reason.because("Q5", "plan_code", "a member with a claim rejected as fraud may not sit"))
    if reasons:
        raise JurorRefused(reasons)
    juror = Juror(user_id=subject.user_id, plan_code=plan_code, membership_id=membership.id, qualified_at=now,
                  quiz_score=score)
    session.add(juror)
    session.flush()
    record_audit(session, subject.username, "jury.qualify", "juror", juror.id,
                 {"plan_code": plan_code, "membership_id": membership.id, "quiz_score": score})
    return juror


def open_case(session: Session, claim_id: int, *, actor: str, now: dt.datetime | None = None,
              subject: Subject | None = None) -> JuryCase:
    """Put a disputed rejection to the jury with a brief that names no one (masked name, ten-year age band)."""
    now = now or utcnow()
    claim = lock_row(session, Claim, claim_id)
    missing = NotFound("no claim {id}", "claim_id", values={"id": claim_id})
    if claim is None:
        raise missing
    check_operator(session, subject, claim.plan_code, missing)
    if claim.status != "disputed":
        raise Conflict("only a disputed claim goes to the jury; this one is {status}", "status",
                       values={"status": claim.status})
    spec = plan_version(session, claim.plan_code, claim.plan_version)
    if spec.jury is None:
        raise Conflict("plan {plan} has no jury", "plan_code", values={"plan": claim.plan_code})
    person = session.scalars(
        select(Person).join(Membership, Membership.person_id == Person.id).where(Membership.id == claim.membership_id)
    ).one()
    admitted = session.scalar(select(Episode.admission_date).where(Episode.id == claim.episode_id))
    group = next((g for g in spec.diseases if g.code == claim.disease_group), None)
    rejections = session.scalars(
        select(ClaimStep.note).where(ClaimStep.claim_id == claim.id, ClaimStep.outcome.in_(("rejected", "fraud")))
        .order_by(ClaimStep.id)
    ).all()
    dispute = session.scalars(
        select(ClaimStep.note).where(ClaimStep.claim_id == claim.id, ClaimStep.step == "dispute")
        .order_by(ClaimStep.id.desc())
    ).first()
    brief = {
        "masked_name": person.masked_name, "age_band": age_band(person.birth_year, admitted),
        "disease_group": claim.disease_group, "disease_name": group.name.model_dump() if group else None,
        "amount_assessed": claim.amount_assessed, "findings": claim.reasons, "rejections": list(rejections),
        "investigation": (claim.investigation or {}).get("summary", ""), "dispute": dispute or "",
    }
    case = JuryCase(claim_id=claim.id, plan_code=claim.plan_code, brief=brief, quorum=spec.jury.quorum,
                    opened_at=now, closes_at=now + dt.timedelta(days=spec.jury.voting_days))
    session.add(case)
    claim.status = "jury"
    session.flush()
    _step(session, claim, "jury", "opened", "", actor, now)
    return case


def _own_claim(session: Session, subject: Subject, case: JuryCase) -> bool:
    return session.scalar(
        select(func.count()).select_from(PersonAccount)
        .join(Membership, Membership.person_id == PersonAccount.person_id)
        .join(Claim, Claim.membership_id == Membership.id)
        .where(Claim.id == case.claim_id, PersonAccount.user_id == subject.user_id)
    ) > 0


def cast_vote(
    session: Session, subject: Subject, case_id: int, supports: bool, now: dt.datetime | None = None
) -> JuryVote:
    """One vote per juror per case, while the case is open; never on a claim of one's own family."""
    now = now or utcnow()
    if not isinstance(supports, bool):
        raise InvalidInput("supports must be true or false", "supports")
    case = session.get(JuryCase, case_id)
    if case is None:
        raise NotFound("no jury case {id}", "case_id", values={"id": case_id})
    juror = session.scalars(
        select(Juror).join(Membership, Membership.id == Juror.membership_id)
        .where(Juror.user_id == subject.user_id, Juror.plan_code == case.plan_code, Membership.status == "protected")
    ).one_or_none()
    if juror is None or _own_claim(session, subject, case):
        # A case the caller may not vote on (not a juror of its plan, or a claim of their own family) does not
        # exist for them, exactly like a missing one (`open_cases_for` does not list it either).
        raise NotFound("no jury case {id}", "case_id", values={"id": case_id})
    if case.outcome is not None or now >= case.closes_at:
        raise Conflict("voting on this case is closed", "case_id")
    vote = JuryVote(case_id=case.id, juror_id=juror.id, supports=supports, cast_at=now)
    try:
        with session.begin_nested():
            session.add(vote)
    except IntegrityError:
        raise Conflict("you have already voted on this case", "case_id") from None
    return vote


@dataclass(frozen=True)
class JuryResult:
    case_id: int
    votes: int
    supports: int
    quorum: int
    #: "approved", "rejected", or None: below the quorum nothing is decided and voting goes on.
    outcome: str | None
    closes_at: dt.datetime


def close_case(session: Session, case_id: int, *, actor: str, now: dt.datetime | None = None,
               subject: Subject | None = None) -> JuryResult:
    """Count the votes when voting ends: approved → the claim is noticed; rejected → closed; below the quorum
    the case stays open for another voting period."""
    now = now or utcnow()
    case = lock_row(session, JuryCase, case_id)
    missing = NotFound("no jury case {id}", "case_id", values={"id": case_id})
    if case is None:
        raise missing
    check_operator(session, subject, case.plan_code, missing)
    if case.outcome is not None:
        raise Conflict("this case is already decided: {outcome}", "case_id", values={"outcome": case.outcome})
    if now < case.closes_at:
        raise Conflict("voting runs until {until}", "case_id", values={"until": case.closes_at.isoformat()})
    votes, supports = session.execute(
        select(func.count(), func.count().filter(JuryVote.supports.is_(True))).where(JuryVote.case_id == case.id)
    ).one()
    outcome = rules.jury_outcome(int(votes), int(supports), case.quorum)
    claim = lock_row(session, Claim, case.claim_id)
    detail = {"votes": int(votes), "supports": int(supports), "quorum": case.quorum, "outcome": outcome}
    if outcome is None:
        spec = plan_version(session, claim.plan_code, claim.plan_version)
        case.closes_at = now + dt.timedelta(days=spec.jury.voting_days)
        session.flush()
        record_audit(session, actor, "jury.undecided", "jury_case", case.id,
                     {**detail, "closes_at": case.closes_at.isoformat()})
        return JuryResult(case.id, int(votes), int(supports), case.quorum, None, case.closes_at)
    case.outcome, case.decided_at = outcome, now
    if outcome == "approved":
        _start_notice(session, claim, claim.amount_assessed, now)
    else:
        claim.status, claim.decided_at = "closed", now
    session.flush()
    record_audit(session, actor, "jury.decide", "jury_case", case.id, detail)
    _step(session, claim, "jury", outcome, f"{int(supports)}/{int(votes)}", actor, now)
    return JuryResult(case.id, int(votes), int(supports), case.quorum, outcome, case.closes_at)


def open_cases_for(session: Session, subject: Subject, now: dt.datetime | None = None) -> list[JuryCase]:
    """Open cases of the plans where the account is a protected juror, not yet voted on, not its family's."""
    now = now or utcnow()
    jurors = session.execute(
        select(Juror.id, Juror.plan_code).join(Membership, Membership.id == Juror.membership_id)
        .where(Juror.user_id == subject.user_id, Membership.status == "protected")
    ).all()
    if not jurors:
        return []
    own = (
        select(Claim.id).join(Membership, Membership.id == Claim.membership_id)
        .join(PersonAccount, PersonAccount.person_id == Membership.person_id)
        .where(PersonAccount.user_id == subject.user_id)
    )
    voted = select(JuryVote.case_id).where(JuryVote.juror_id.in_([juror_id for juror_id, _ in jurors]))
    return list(session.scalars(
        select(JuryCase).where(
            JuryCase.plan_code.in_([plan for _, plan in jurors]), JuryCase.outcome.is_(None),
            JuryCase.closes_at > now, JuryCase.claim_id.not_in(own), JuryCase.id.not_in(voted),
        ).order_by(JuryCase.opened_at, JuryCase.id)
    ))
