"""The mutual-aid demo data: rosters with an age mix, a claim in every state of review, closed periods whose
charges add up on the ledger, and the demo member's own story (memberships, a dispute, a jury case to vote on)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from gongji.api.auth import Principal
from gongji.api.auth_service import create_user
from gongji.core.db import transaction
from gongji.demo import DEMO_USERS, _demo_name
from gongji.episodes.models import Person
from gongji.ledger.models import LedgerBulkLine
from gongji.mutual_aid import jury
from gongji.mutual_aid.demo import load_mutual_aid_demo
from gongji.mutual_aid.models import CLAIM_STATUSES, Charge, Claim, Membership, Period
from gongji.rules.cascade import default_book


def test_the_demo_tells_every_state_and_its_money_adds_up(ma, vault):
    with transaction(ma) as session:
        accounts = {}
        for username, role, name, regions, operator in DEMO_USERS:
            user = create_user(session, username, "a long and unusual passphrase 7", role, name, regions=regions,
                               operator_code=operator)
            accounts[username] = Principal(user.id, username, role, name, user.regions, operator)
        loaded = load_mutual_aid_demo(session, vault, default_book(), _demo_name, accounts, scale=0.02)
    assert loaded.periods >= 13 and loaded.members > 500
    with ma() as session:
        states = set(session.scalars(select(Claim.status).distinct()))
        assert states == set(CLAIM_STATUSES) - {"first_review", "approved"}  # passing states, never at rest
        assert set(session.scalars(select(Membership.status).distinct())) >= {"protected", "waiting", "removed"}
        for period in session.scalars(select(Period).where(Period.entry_seq.is_not(None))):
            charged = session.scalar(select(func.sum(Charge.amount)).where(Charge.period_id == period.id))
            lines = session.scalar(select(func.sum(LedgerBulkLine.amount)).where(
                LedgerBulkLine.entry_seq == period.entry_seq, LedgerBulkLine.amount > 0))
            assert charged == lines == period.charged
        elderly = session.scalars(select(Person.birth_year).join(Membership, Membership.person_id == Person.id)
                                  .where(Membership.plan_code == "online-elderly-cancer")).all()
        assert elderly and all(60 <= dt.date.today().year - year <= 72 for year in elderly)
        young = session.scalars(select(Person.birth_year).join(Membership, Membership.person_id == Person.id)
                                .where(Membership.plan_code == "online-comprehensive")).all()
        assert sum(dt.date.today().year - year < 40 for year in young) > len(young) / 2  # online plans skew young
        assert [case.claim_id for case in jury.open_cases_for(session, accounts["juror"])]
        mine = session.scalar(select(func.count()).select_from(Membership).where(
            Membership.user_id == accounts["member"].user_id))
        assert mine == 3
