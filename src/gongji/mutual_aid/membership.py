"""Membership (会员): real-name joining, the waiting period, suspension and removal, leaving, and who sees what.

A member account (self-service role "member") joins a person — itself or family —
by ID number and name; the person is found by keyed hash or registered, and
linked to the account. Status moves waiting → protected → (suspended ↔
protected) → removed / withdrawn; every transition is checked against
`TRANSITIONS` and audited. Services flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, String, cast, false, func, insert, literal, select, update
from sqlalchemy.orm import Session

from gongji.core.access import Subject, is_self_service
from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gongji.core.identity import IdentityVault, birth_date, normalise_id_number
from gongji.core.persistence import china_day, lock_row, utcnow
from gongji.episodes.models import Person, PersonAccount
from gongji.episodes.service import (
    RELATIONSHIPS,
    NewPerson,
    create_person,
    find_person_by_id_number,
    link_person,
    register_persons,
)
from gongji.ledger.service import open_account, open_accounts
from gongji.mutual_aid import rules
from gongji.mutual_aid.accounts import MEMBER_ACCOUNT_PREFIX, ensure_plan_accounts, member_account
from gongji.mutual_aid.models import Membership, PlanVersion
from gongji.mutual_aid.plans import PlanSpec, check_operator, plan_at

#: Allowed status changes; removed and withdrawn are final (a person who left joins again as a new membership).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "waiting": ("protected", "suspended", "removed", "withdrawn"),
    "protected": ("suspended", "removed", "withdrawn"),
    "suspended": ("waiting", "protected", "removed", "withdrawn"),
    "removed": (),
    "withdrawn": (),
}
OPERATOR_STAFF = ("operator_admin", "assessor", "reviewer")
#: Roles that see every plan's memberships and claims (platform administration and statistics).
PLATFORM_ROLES = ("admin", "analyst")
_MAX_REASON = 500


class JoinRefused(InvalidInput):
    """A join refused by the plan's rules; `reasons` lists every numbered reason, the message the first."""

    def __init__(self, reasons: list[rules.Reason]):
        super().__init__(reasons[0].text, reasons[0].field)
        self.reasons = reasons


def readable_memberships(subject: Subject | None) -> Select[tuple[Membership]]:
    """The memberships a caller may see — every read of memberships goes through here.

    Member accounts see those of persons linked to them; operator staff those of
    their operator's plans; admin and analyst all; `None` is the system itself;
    anyone else sees nothing (answered as 404).
    """
    query = select(Membership)
    if subject is None or subject.role in PLATFORM_ROLES:
        return query
    if is_self_service(subject):
        linked = select(PersonAccount.person_id).where(PersonAccount.user_id == subject.user_id)
        return query.where(Membership.person_id.in_(linked))
    if subject.role in OPERATOR_STAFF and subject.operator_code:
        plans = select(PlanVersion.plan_code).where(PlanVersion.operator_code == subject.operator_code)
        return query.where(Membership.plan_code.in_(plans))
    return query.where(false())


@dataclass(frozen=True)
class PlanInForce:
    """A plan as members see it today: the version in force and how many members it protects now."""

    code: str
    version: int
    spec: PlanSpec
    protected: int


def plans_in_force(session: Session, today: dt.date, codes: Sequence[str] | None = None) -> list[PlanInForce]:
    """Every plan (or those of `codes`) in its version in force on `today`; plans with only later versions are
    not in force yet and left out."""
    query = (select(PlanVersion.plan_code).where(PlanVersion.effective_from <= today).distinct()
             .order_by(PlanVersion.plan_code))
    if codes is not None:
        query = query.where(PlanVersion.plan_code.in_(codes))
    found = list(session.scalars(query))
    protected = dict(session.execute(
        select(Membership.plan_code, func.count())
        .where(Membership.plan_code.in_(found), Membership.status == "protected").group_by(Membership.plan_code)
    ).all())
    return [PlanInForce(code, *plan_at(session, code, today), protected.get(code, 0)) for code in found]


def get_membership(session: Session, membership_id: int, subject: Subject | None = None) -> Membership:
    membership = session.scalars(
        readable_memberships(subject).where(Membership.id == membership_id)
    ).one_or_none()
    if membership is None:
        raise NotFound("no membership {id}", "membership_id", values={"id": membership_id})
    return membership


def my_memberships(session: Session, subject: Subject) -> list[Membership]:
    return list(session.scalars(readable_memberships(subject).order_by(Membership.id)))


def _person_for(
    session: Session, vault: IdentityVault, subject: Subject, number: str, name: str, relationship: str,
    scheme: str, region: str,
) -> Person:
    """The person with this ID, registered if new, and linked to the member account (实名: ID and name must match)."""
    person = find_person_by_id_number(session, vault, number)
    if person is None:
        person = create_person(session, vault, number, name, scheme, "none", False, region, actor=subject.username)
        session.add(PersonAccount(user_id=subject.user_id, person_id=person.id, relationship=relationship))
        session.flush()
        record_audit(session, subject.username, "person_account.link", "person", person.id,
                     {"user_id": subject.user_id, "relationship": relationship, "masked_id": person.masked_id})
        return person
    link_person(session, vault, subject, number, name, relationship)
    return person


def join_plan(
    session: Session,
    vault: IdentityVault,
    subject: Subject,
    plan_code: str,
    *,
    id_number: str,
    name: str,
    relationship: str,
    tier: str = "standard",
    shares: int = 1,
    declaration: Mapping[str, bool],
    scheme: str = "resident",
    region: str = "330100",
    now: dt.datetime | None = None,
) -> Membership:
    """A member account joins a person (itself or family) to a plan; refused with numbered reasons (J1–J7).

    Protection starts after the plan's waiting period (等待期); at once where it has none.
    The person row is locked, so two joins of one person cannot both pass the one-membership check.
    """
    if subject.role != "member":
        raise Forbidden("only member accounts join plans", "role")
    if relationship not in RELATIONSHIPS:
        raise InvalidInput("relationship must be one of {choices}", "relationship",
                           values={"choices": ", ".join(RELATIONSHIPS)})
    if not isinstance(declaration, Mapping):
        raise InvalidInput("the health declaration must map each question to yes or no", "declaration")
    now = now or utcnow()
    today = china_day(now)
    version, spec = plan_at(session, plan_code, today)
    number = normalise_id_number(id_number, "id_number", today=today)
    person = _person_for(session, vault, subject, number, name, relationship, scheme, region)
    lock_row(session, Person, person.id)
    mine = list(session.scalars(
        select(Membership).where(Membership.person_id == person.id, Membership.plan_code == plan_code)
    ))
    left = [china_day(membership.left_at) for membership in mine if membership.left_at is not None]
    reasons = rules.join_refusals(
        spec, birth=birth_date(number), on=today, tier=tier, shares=shares, declaration=declaration,
        last_left=max(left, default=None),
        already_member=any(membership.status in rules.ACTIVE_STATUSES for membership in mine),
    )
    if reasons:
        if reasons[0].code == "J6":
            raise Conflict(reasons[0].text, reasons[0].field)
        raise JoinRefused(reasons)
    protected_from = today + dt.timedelta(days=spec.waiting_days)
    membership = Membership(
        plan_code=plan_code, person_id=person.id, user_id=subject.user_id, tier=tier, shares=shares,
        status="protected" if protected_from <= today else "waiting", joined_at=now, protected_from=protected_from,
        status_changed_at=now, declaration={key: bool(value) for key, value in declaration.items()},
        account_code="",
    )
    session.add(membership)
    session.flush()
    membership.account_code = member_account(membership.id)
    ensure_plan_accounts(session, plan_code, spec.name.zh, actor=subject.username)
    open_account(session, membership.account_code, f"{spec.name.zh} 会员{membership.id} 应收分摊", "asset",
                 actor=subject.username)
    session.flush()
    record_audit(session, subject.username, "membership.join", "membership", membership.id, {
        "plan_code": plan_code, "plan_version": version, "person_id": person.id, "masked_id": person.masked_id,
        "tier": tier, "shares": shares, "status": membership.status, "protected_from": protected_from.isoformat(),
        "free_to_join": spec.free_to_join,
    })
    return membership


@dataclass(frozen=True)
class RosterMember:
    """One person of an operator's roster (工会会员名册, 村民名册), joined at `joined_at` (default: now)."""

    id_number: str
    name: str
    scheme: str = "resident"
    region: str = "330100"
    tier: str = "standard"
    shares: int = 1
    joined_at: dt.datetime | None = None


def enroll_roster(
    session: Session, vault: IdentityVault, subject: Subject | None, plan_code: str, roster: Sequence[RosterMember],
    *, now: dt.datetime | None = None,
) -> list[int]:
    """集体加入: an operator enrols its roster — a union its members, a village its villagers — in one go.

    Each person is checked by the same rules as a member's own join (ages, tier, shares, already a member,
    re-joining too soon), the operator attesting the health declaration; any refusal names the row and nothing
    is written. Persons, memberships and receivable accounts are written set-based and audited as one batch.
    `subject` is the plan's operator_admin (None: the platform itself, as the demo loader). Returns the
    membership ids in roster order.
    """
    now = now or utcnow()
    if subject is not None and (subject.role != "operator_admin" or subject.operator_code is None):
        raise Forbidden("only the plan's operator enrols a roster", "role")
    version, spec = plan_at(session, plan_code, china_day(now))
    check_operator(session, subject, plan_code, NotFound("no plan {code}", "plan_code", values={"code": plan_code}))
    actor = subject.username if subject is not None else "system"
    person_ids = register_persons(
        session, vault, [NewPerson(row.id_number, row.name, row.scheme, row.region) for row in roster],
        actor=actor, field="roster",
    )
    if len(set(person_ids)) != len(person_ids):
        raise InvalidInput("a person appears twice in the roster", "roster")
    active: set[int] = set()
    last_left: dict[int, dt.date] = {}
    for start in range(0, len(person_ids), 5_000):
        rows = session.execute(
            select(Membership.person_id, Membership.status, Membership.left_at)
            .where(Membership.plan_code == plan_code, Membership.person_id.in_(person_ids[start:start + 5_000]))
        ).all()
        for person_id, status, left_at in rows:
            if status in rules.ACTIVE_STATUSES:
                active.add(person_id)
            if left_at is not None:
                last_left[person_id] = max(last_left.get(person_id, dt.date.min), china_day(left_at))
    attested = {question.id: False for question in spec.declaration}
    members = []
    for index, (row, person_id) in enumerate(zip(roster, person_ids, strict=True)):
        joined_at = row.joined_at or now
        joined_on = china_day(joined_at)
        reasons = rules.join_refusals(
            spec, birth=birth_date(normalise_id_number(row.id_number, f"roster[{index}].id_number")), on=joined_on,
            tier=row.tier, shares=row.shares, declaration=attested, last_left=last_left.get(person_id),
            already_member=person_id in active,
        )
        if reasons:
            raise InvalidInput("roster row {row}: {reason}", f"roster[{index}].{reasons[0].field}",
                               values={"row": index, "reason": f"{reasons[0].code} {reasons[0].text.render()}"})
        protected_from = joined_on + dt.timedelta(days=spec.waiting_days)
        members.append({
            "plan_code": plan_code, "person_id": person_id, "user_id": None, "tier": row.tier, "shares": row.shares,
            "status": "protected" if protected_from <= china_day(now) else "waiting", "joined_at": joined_at,
            "protected_from": protected_from, "status_changed_at": now, "declaration": attested, "account_code": "",
        })
    if not members:
        return []
    ids = list(session.scalars(insert(Membership).returning(Membership.id, sort_by_parameter_order=True), members))
    session.execute(update(Membership).where(Membership.id.in_(ids)).execution_options(synchronize_session=False)
                    .values(account_code=literal(MEMBER_ACCOUNT_PREFIX).concat(cast(Membership.id, String))))
    ensure_plan_accounts(session, plan_code, spec.name.zh, actor=actor)
    open_accounts(session, [(member_account(i), f"{spec.name.zh} 会员{i} 应收分摊", "asset") for i in ids], actor=actor)
    record_audit(session, actor, "membership.enroll_roster", "plan", plan_code,
                 {"plan_version": version, "enrolled": len(ids), "first": ids[0], "last": ids[-1]})
    return ids


def _transition(
    session: Session, membership_id: int, to: str, *, actor: str, reason: str, now: dt.datetime | None,
    membership: Membership | None = None,
) -> Membership:
    if not isinstance(reason, str) or len(reason) > _MAX_REASON or any(not ch.isprintable() for ch in reason):
        raise InvalidInput("reason must be text of at most {max} characters", "reason", values={"max": _MAX_REASON})
    membership = lock_row(session, Membership, membership_id) if membership is None else membership
    if membership is None:
        raise NotFound("no membership {id}", "membership_id", values={"id": membership_id})
    if to not in TRANSITIONS[membership.status]:
        raise Conflict("a {status} membership cannot become {to}", "status",
                       values={"status": membership.status, "to": to})
    now = now or utcnow()
    before = membership.status
    membership.status = to
    membership.status_changed_at = now
    if to in ("removed", "withdrawn"):
        membership.left_at = now
    session.flush()
    record_audit(session, actor, f"membership.{to}", "membership", membership.id,
                 {"from": before, "to": to, "reason": reason, "plan_code": membership.plan_code})
    return membership


def suspend(session: Session, membership_id: int, *, reason: str, actor: str, now: dt.datetime | None = None
            ) -> Membership:
    """暂停: a charge failed; the member is not protected until reinstated (or removed after the retry window)."""
    return _transition(session, membership_id, "suspended", actor=actor, reason=reason, now=now)


def reinstate(session: Session, membership_id: int, *, actor: str, reason: str = "charge paid",
              now: dt.datetime | None = None) -> Membership:
    """Back in force after a suspension: protected, or still waiting if the waiting period has not run out."""
    now = now or utcnow()
    membership = lock_row(session, Membership, membership_id)
    if membership is None:
        raise NotFound("no membership {id}", "membership_id", values={"id": membership_id})
    if membership.status != "suspended":
        raise Conflict("only a suspended membership can be reinstated", "status")
    to = "protected" if membership.protected_from <= china_day(now) else "waiting"
    return _transition(session, membership_id, to, actor=actor, reason=reason, now=now, membership=membership)


def remove(session: Session, membership_id: int, *, reason: str, actor: str, now: dt.datetime | None = None
           ) -> Membership:
    """移出: by the operator or the rules (a charge still failing after the retry window, age past the plan's)."""
    return _transition(session, membership_id, "removed", actor=actor, reason=reason, now=now)


def withdraw(session: Session, subject: Subject, membership_id: int, *, now: dt.datetime | None = None
             ) -> Membership:
    """主动退出 by the member account that can see the membership."""
    if not is_self_service(subject):
        raise Forbidden("only the member's own account withdraws a membership", "role")
    get_membership(session, membership_id, subject)
    return _transition(session, membership_id, "withdrawn", actor=subject.username, reason="withdrawn by member",
                       now=now)


def advance_memberships(
    session: Session, plan_code: str, now: dt.datetime | None = None, *, vault: IdentityVault | None = None,
    actor: str = "system",
) -> int:
    """Daily step: waiting members whose protection has started become protected (one UPDATE), and members
    past the plan's last age leave (removed, reason age). Returns how many memberships changed.

    Only a year of birth is stored in the clear; with the vault the exact birthday of the few born
    near the limit is read from the ID, without it only those certainly too old leave.
    """
    now = now or utcnow()
    today = china_day(now)
    _, spec = plan_at(session, plan_code, today)
    protected = session.execute(
        update(Membership)
        .where(Membership.plan_code == plan_code, Membership.status == "waiting", Membership.protected_from <= today)
        .values(status="protected", status_changed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if protected:
        record_audit(session, actor, "membership.advance", "plan", plan_code,
                     {"protected": protected, "on": today.isoformat()})
    leaving = _past_last_age(session, spec, today, vault)
    for membership_id in leaving:
        _transition(session, membership_id, "removed", actor=actor, reason="age", now=now)
    session.expire_all()
    return protected + len(leaving)


def _past_last_age(session: Session, spec: PlanSpec, today: dt.date, vault: IdentityVault | None) -> list[int]:
    """Memberships in force whose person is older than the plan's last age today."""
    rows = session.execute(
        select(Membership.id, Person.id_number_enc, Person.birth_year)
        .join(Person, Person.id == Membership.person_id)
        .where(Membership.plan_code == spec.code, Membership.status.in_(rules.ACTIVE_STATUSES),
               Person.birth_year < today.year - spec.last_age)
        .order_by(Membership.id)
    )
    leaving = []
    for membership_id, encrypted, birth_year in rows:
        if vault is not None:
            age = rules.age_on(birth_date(vault.decrypt(encrypted, "persons.id_number_enc")), today)
        else:
            age = today.year - birth_year - 1
        if age > spec.last_age:
            leaving.append(membership_id)
    return leaving
