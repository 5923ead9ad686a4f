"""Joining, the waiting period, status transitions and who may see which memberships."""

from __future__ import annotations

import datetime as dt

import pytest
from mutual_aid_data import NO, NOW, person_id_number
from sqlalchemy import func, select

from gongji.core.audit import AuditLog
from gongji.core.db import transaction
from gongji.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gongji.episodes.service import get_person
from gongji.ledger.models import Account
from gongji.mutual_aid import membership as ms
from gongji.mutual_aid.models import Membership


def _get(ma, membership_id) -> Membership:
    with ma() as session:
        return session.get(Membership, membership_id)


def test_joining_waits_then_protects_and_opens_the_member_account(ma, join, member):
    membership_id = join(now=NOW)
    row = _get(ma, membership_id)
    assert (row.status, row.user_id) == ("waiting", member.user_id)
    assert row.protected_from == NOW.date() + dt.timedelta(days=90)
    with ma() as session:
        assert session.scalar(select(Account.kind).where(Account.code == f"ma:m:{membership_id}")) == "asset"
        assert session.scalar(select(Account.id).where(Account.code == "ma:online-comprehensive:pool"))
        assert get_person(session, row.person_id, member).masked_name == "张*明"
        assert session.scalar(select(AuditLog.action).where(AuditLog.entity == "membership")) == "membership.join"
    with transaction(ma) as session:
        assert ms.advance_memberships(session, "online-comprehensive", NOW + dt.timedelta(days=89)) == 0
    assert _get(ma, membership_id).status == "waiting"
    with transaction(ma) as session:
        assert ms.advance_memberships(session, "online-comprehensive", NOW + dt.timedelta(days=90)) == 1
    assert _get(ma, membership_id).status == "protected"


def test_refusals_name_their_reasons(ma, join):
    with pytest.raises(ms.JoinRefused) as refused:
        join(declaration={"q-cancer": True, "q-hospital": False}, shares=2)
    assert [reason.code for reason in refused.value.reasons] == ["J3", "J5"]
    assert refused.value.field == "shares"
    with pytest.raises(InvalidInput) as old:
        join(birth=dt.date(1960, 1, 1))
    assert old.value.field == "id_number"


def test_one_membership_per_person_and_rejoin_after_the_plan_s_delay(ma, join, member):
    number = person_id_number(dt.date(1990, 6, 15))
    first = join(id_number=number, now=NOW)
    with pytest.raises(Conflict):
        join(id_number=number, now=NOW)
    with transaction(ma) as session:
        ms.withdraw(session, member, first, now=NOW + dt.timedelta(days=10))
    with pytest.raises(ms.JoinRefused) as soon:
        join(id_number=number, now=NOW + dt.timedelta(days=189))
    assert [reason.code for reason in soon.value.reasons] == ["J7"]
    again = join(id_number=number, now=NOW + dt.timedelta(days=190))
    assert again != first and _get(ma, again).status == "waiting"


def test_union_plan_protects_at_once_and_sells_shares(ma, join):
    membership_id = join("union-hospital", shares=3, declaration={})
    row = _get(ma, membership_id)
    assert (row.status, row.shares) == ("protected", 3)


def test_joining_a_known_person_needs_their_name(ma, join, make_user, vault):
    number = person_id_number(dt.date(1990, 6, 15))
    first = join(id_number=number)
    other = make_user("member")
    with pytest.raises(NotFound):
        join("online-icu", id_number=number, name="李四", subject=other, relationship="spouse", declaration={})
    membership_id = join("online-icu", id_number=number, subject=other, relationship="spouse", declaration={})
    with ma() as session:
        # linked to the person, the spouse's account sees both of the person's memberships
        assert [m.id for m in ms.my_memberships(session, other)] == [first, membership_id]


def test_transitions_are_checked_and_audited(ma, join):
    membership_id = join()
    with transaction(ma) as session:
        ms.suspend(session, membership_id, reason="charge failed", actor="payments", now=NOW)
    with transaction(ma) as session:
        assert ms.reinstate(session, membership_id, actor="payments", now=NOW).status == "protected"
    with transaction(ma) as session:
        ms.remove(session, membership_id, reason="charge failed after retries", actor="payments", now=NOW)
    with pytest.raises(Conflict), transaction(ma) as session:
        ms.reinstate(session, membership_id, actor="payments", now=NOW)
    with pytest.raises(Conflict), transaction(ma) as session:
        ms.suspend(session, membership_id, reason="x", actor="payments", now=NOW)
    with ma() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.entity == "membership",
                                                                AuditLog.entity_id == str(membership_id))
                                  .order_by(AuditLog.id)).all()
    assert actions == ["membership.join", "membership.suspended", "membership.protected", "membership.removed"]
    assert _get(ma, membership_id).left_at is not None


def test_members_past_the_last_age_leave_on_their_birthday(ma, join, vault):
    """Elderly cancer plan: 60–70; a member leaves the day they turn 71, not before."""
    membership_id = join("online-elderly-cancer", birth=dt.date(1954, 6, 1), declaration={"q-cancer": False},
                         now=dt.datetime(2024, 7, 1, tzinfo=dt.UTC))
    with transaction(ma) as session:
        assert ms.advance_memberships(session, "online-elderly-cancer", dt.datetime(2025, 5, 31, tzinfo=dt.UTC),
                                      vault=vault) == 1  # protected, still 70
    assert _get(ma, membership_id).status == "protected"
    with transaction(ma) as session:
        assert ms.advance_memberships(session, "online-elderly-cancer", dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
                                      vault=vault) == 1
    assert _get(ma, membership_id).status == "removed"


def test_scoping_of_memberships(ma, join, member, make_user):
    mine = join()
    union = join("union-hospital", declaration={})
    stranger = make_user("member")
    online_reviewer = make_user("reviewer")
    union_reviewer = make_user("reviewer", "union-hz")
    analyst = make_user("analyst")
    caseworker = make_user("caseworker")
    with ma() as session:

        def ids(subject):
            return [m.id for m in session.scalars(ms.readable_memberships(subject).order_by(Membership.id))]

        assert ids(member) == [mine, union]
        assert ids(stranger) == []
        assert ids(online_reviewer) == [mine]
        assert ids(union_reviewer) == [union]
        assert ids(analyst) == [mine, union]
        assert ids(caseworker) == []
        with pytest.raises(NotFound):
            ms.get_membership(session, mine, stranger)
    with pytest.raises(Forbidden), transaction(ma) as session:
        ms.withdraw(session, online_reviewer, mine)
    with pytest.raises(NotFound), transaction(ma) as session:
        ms.withdraw(session, stranger, mine)
    with pytest.raises(Forbidden), transaction(ma) as session:
        ms.join_plan(session, None, online_reviewer, "online-comprehensive", id_number="x", name="x",
                     relationship="self", declaration=NO)


def test_an_operator_enrols_its_roster_in_one_go_under_the_same_rules(ma, vault, make_user):
    union_admin = make_user("operator_admin", "union-hz")
    roster = [ms.RosterMember(person_id_number(dt.date(1961 + k, 3, 1)), f"王{k}明", shares=1 + k % 5) for k in range(40)]
    with transaction(ma) as session:
        ids = ms.enroll_roster(session, vault, union_admin, "union-hospital", roster, now=NOW)
    with ma() as session:
        rows = session.scalars(select(Membership).where(Membership.id.in_(ids)).order_by(Membership.id)).all()
        assert [row.shares for row in rows] == [1 + k % 5 for k in range(40)]
        assert {row.status for row in rows} == {"protected"}  # the union plan has no waiting period
        assert [row.account_code for row in rows] == [f"ma:m:{i}" for i in ids]
        assert session.scalar(select(func.count()).select_from(Account).where(
            Account.code.in_([row.account_code for row in rows]))) == 40
    too_old = [ms.RosterMember(person_id_number(dt.date(1940, 1, 1)), "李老")]
    with pytest.raises(InvalidInput) as refused, transaction(ma) as session:
        ms.enroll_roster(session, vault, union_admin, "union-hospital", roster[:1] + too_old, now=NOW)
    assert refused.value.field.startswith("roster[0]")  # already a member: the first row is refused
    with pytest.raises(NotFound), transaction(ma) as session:  # another operator's plan does not exist for them
        ms.enroll_roster(session, vault, union_admin, "online-comprehensive", too_old, now=NOW)
