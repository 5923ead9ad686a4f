"""The member jury: who qualifies, one vote each, nothing decided below the quorum, a tie rejects."""

from __future__ import annotations

import datetime as dt
import shutil
from importlib import resources
from pathlib import Path

import pytest
import yaml
from mutual_aid_data import NOW

from gongji.core.db import transaction
from gongji.core.errors import Conflict, NotFound
from gongji.mutual_aid import claims as cl
from gongji.mutual_aid import jury
from gongji.mutual_aid.membership import advance_memberships
from gongji.mutual_aid.models import Claim, JuryCase, Membership
from gongji.mutual_aid.plans import sync_plans

PLAN = "jury-test"
RIGHT = {"j1": 1, "j2": 1, "j3": 1}
QUORUM = 4


@pytest.fixture
def plan(ma, tmp_path):
    """The comprehensive plan as `jury-test`: no waiting period and a jury of quorum 4."""
    shipped = Path(str(resources.files("gongji.data") / "mutual_aid"))
    shutil.copy(shipped / "operators.yaml", tmp_path / "operators.yaml")
    spec = yaml.safe_load((shipped / "plans" / "online-comprehensive-v1.yaml").read_text(encoding="utf-8"))
    spec.update(code=PLAN, waiting_days=0)
    spec["jury"]["quorum"] = QUORUM
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "jury-test-v1.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with transaction(ma) as session:
        sync_plans(session, tmp_path)
    return PLAN


@pytest.fixture
def juror(ma, vault, plan, join, make_user):
    """A factory: a member account that joined the plan a year ago (or `joined`) and qualified as a juror."""

    def make(joined=NOW - dt.timedelta(days=365), birth=dt.date(1980, 1, 1), qualify=True):
        subject = make_user("member")
        join(PLAN, birth=birth, subject=subject, now=joined)
        if qualify:
            with transaction(ma) as session:
                jury.qualify_juror(session, vault, subject, PLAN, RIGHT, now=NOW)
        return subject

    return make


@pytest.fixture
def disputed(ma, vault, plan, join, episode, member, make_user):
    """A factory: a claim of `member` rejected by the reviewer, disputed, and put to the jury; returns the case id."""
    reviewer = make_user("reviewer")

    def make(admitted=dt.date(2025, 2, 1), fraud=False, dispute=True):
        membership_id = join(PLAN)
        with ma() as session:
            person = session.get(Membership, membership_id).person_id
        with transaction(ma) as session:
            claim = cl.file_claim(session, vault, member, membership_id, episode(person, admitted), now=NOW)
            cl.first_review(session, reviewer, claim.id, approve=False, note="hid a prior illness", fraud=fraud,
                            now=NOW)
        if not dispute:
            return claim.id
        with transaction(ma) as session:
            cl.dispute(session, member, claim.id, reason="I did not know", now=NOW)
            return jury.open_case(session, claim.id, actor="operator", now=NOW).id

    return make


def _vote(ma, subject, case_id, supports, now=NOW + dt.timedelta(hours=1)):
    with transaction(ma) as session:
        return jury.cast_vote(session, subject, case_id, supports, now=now)


def _close(ma, case_id, now=NOW + dt.timedelta(days=3)):
    with transaction(ma) as session:
        return jury.close_case(session, case_id, actor="operator", now=now)


def _claim(ma, case_id) -> Claim:
    with ma() as session:
        return session.get(Claim, session.get(JuryCase, case_id).claim_id)


def refusal_codes(caught):
    return [reason.code for reason in caught.value.reasons]


def test_qualification_refusals(ma, vault, juror, disputed, member):
    with pytest.raises(jury.JurorRefused) as quiz:
        subject = juror(qualify=False)
        with transaction(ma) as session:
            jury.qualify_juror(session, vault, subject, PLAN, {"j1": 1, "j2": 0, "j3": 0}, now=NOW)
    assert refusal_codes(quiz) == ["Q4"] and quiz.value.field == "answers"
    with pytest.raises(jury.JurorRefused) as recent:
        subject = juror(joined=NOW - dt.timedelta(days=29), qualify=False)
        with transaction(ma) as session:
            jury.qualify_juror(session, vault, subject, PLAN, RIGHT, now=NOW)
    assert refusal_codes(recent) == ["Q3"]
    with pytest.raises(jury.JurorRefused) as minor:
        subject = juror(birth=dt.date(2007, 3, 2), qualify=False)  # 17 until tomorrow
        with transaction(ma) as session:
            jury.qualify_juror(session, vault, subject, PLAN, RIGHT, now=NOW)
    assert refusal_codes(minor) == ["Q2"]
    with transaction(ma) as session:
        adult = juror(birth=dt.date(2007, 3, 1))
        assert jury.open_cases_for(session, adult, NOW) == []
    with pytest.raises(Conflict), transaction(ma) as session:
        jury.qualify_juror(session, vault, adult, PLAN, RIGHT, now=NOW)


def test_a_fraud_record_bars_the_jury(ma, vault, juror, disputed, member, join):
    disputed(fraud=True, dispute=False)
    with pytest.raises(jury.JurorRefused) as caught, transaction(ma) as session:
        jury.qualify_juror(session, vault, member, PLAN, RIGHT, now=NOW)
    assert refusal_codes(caught) == ["Q5"]


def test_only_protected_members_qualify(ma, vault, plan, join, make_user):
    subject = make_user("member")
    join("online-comprehensive", subject=subject, now=NOW - dt.timedelta(days=30))  # still waiting (90 days)
    with pytest.raises(jury.JurorRefused) as caught, transaction(ma) as session:
        jury.qualify_juror(session, vault, subject, "online-comprehensive", RIGHT, now=NOW)
    assert refusal_codes(caught) == ["Q1"]
    with transaction(ma) as session:
        advance_memberships(session, "online-comprehensive", NOW + dt.timedelta(days=60))
        jury.qualify_juror(session, vault, subject, "online-comprehensive", RIGHT, now=NOW + dt.timedelta(days=60))


def test_one_vote_each_only_jurors_not_on_their_own_claim_and_only_while_open(ma, juror, disputed, member,
                                                                              make_user, vault):
    case_id = disputed()
    with ma() as session:
        brief = session.get(JuryCase, case_id).brief
    assert brief["masked_name"] == "张*明" and brief["rejections"] == ["hid a prior illness"]
    assert "id_number" not in brief and "name" not in brief
    voter = juror()
    with ma() as session:
        assert [case.id for case in jury.open_cases_for(session, voter, NOW)] == [case_id]
    _vote(ma, voter, case_id, True)
    with pytest.raises(Conflict):
        _vote(ma, voter, case_id, False)
    with ma() as session:
        assert jury.open_cases_for(session, voter, NOW) == []
    with pytest.raises(NotFound):  # not a juror of this plan: the case does not exist for them
        _vote(ma, make_user("member"), case_id, True)
    with transaction(ma) as session:  # the claimant's own account qualifies, but may not vote on its own claim
        jury.qualify_juror(session, vault, member, PLAN, RIGHT, now=NOW)
    with pytest.raises(NotFound):
        _vote(ma, member, case_id, True)
    with pytest.raises(Conflict):
        _vote(ma, juror(), case_id, True, now=NOW + dt.timedelta(days=3))


def test_below_quorum_nothing_is_decided_and_voting_goes_on(ma, juror, disputed):
    case_id = disputed()
    for supports in (True, True, True):
        _vote(ma, juror(), case_id, supports)
    with pytest.raises(Conflict):  # voting still runs
        _close(ma, case_id, now=NOW + dt.timedelta(days=2))
    result = _close(ma, case_id)
    assert (result.outcome, result.votes, result.supports) == (None, 3, 3)
    assert result.closes_at == NOW + dt.timedelta(days=6)
    assert _claim(ma, case_id).status == "jury"
    with ma() as session:
        assert session.get(JuryCase, case_id).outcome is None


def test_at_quorum_half_support_rejects(ma, juror, disputed):
    case_id = disputed()
    for supports in (True, True, False, False):
        _vote(ma, juror(), case_id, supports)
    result = _close(ma, case_id)
    assert (result.outcome, result.votes, result.supports) == ("rejected", 4, 2)
    assert _claim(ma, case_id).status == "closed"
    with pytest.raises(Conflict):
        _close(ma, case_id, now=NOW + dt.timedelta(days=4))


def test_at_quorum_half_plus_one_approves_and_the_notice_starts(ma, juror, disputed):
    case_id = disputed()
    for supports in (True, True, True, False):
        _vote(ma, juror(), case_id, supports)
    result = _close(ma, case_id)
    assert (result.outcome, result.supports) == ("approved", 3)
    claim = _claim(ma, case_id)
    assert (claim.status, claim.amount_approved) == ("noticed", claim.amount_assessed)
    assert claim.amount_assessed == 30_000_000
    assert claim.notice_until == (NOW + dt.timedelta(days=3)).date() + dt.timedelta(days=7)
    with ma() as session:
        assert [n.claim_id for n in cl.public_notices(session, PLAN, claim.notice_until)] == [claim.id]
