"""Claims: findings at filing, limits, duplicates, the review path, public notice, and payout on the residual."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from mutual_aid_data import NOW
from sqlalchemy import func, select

from gongji.core.db import transaction
from gongji.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gongji.episodes.models import Coverage
from gongji.episodes.service import coverage_of, record_coverage
from gongji.ledger.models import JournalEntry
from gongji.ledger.service import account_balance
from gongji.mutual_aid import claims as cl
from gongji.mutual_aid.models import Claim, ClaimStep, Membership

BIRTH = dt.date(1985, 3, 2)  # 39 until 2 March 2025, then 40


def person_of(ma, membership_id) -> int:
    with ma() as session:
        return session.get(Membership, membership_id).person_id


@pytest.fixture
def file(ma, vault, member):
    def make(membership_id, episode_id, subject=None, now=NOW) -> Claim:
        with transaction(ma) as session:
            return cl.file_claim(session, vault, subject or member, membership_id, episode_id, now=now)

    return make


def codes(claim):
    return [reason["code"] for reason in claim.reasons]


def test_fixed_payout_follows_the_age_band_at_the_event(ma, join, episode, file):
    """Comprehensive plan: 300,000 yuan up to 39, 100,000 from 40 — the birthday between two admissions decides."""
    at_39 = join(birth=BIRTH)
    at_40 = join(birth=BIRTH)
    young = file(at_39, episode(person_of(ma, at_39), dt.date(2025, 3, 1)))
    old = file(at_40, episode(person_of(ma, at_40), dt.date(2025, 3, 2)))
    assert (codes(young), young.amount_assessed, young.disease_group) == ([], 30_000_000, "cancer")
    assert (codes(old), old.amount_assessed) == ([], 10_000_000)


def test_entry_tier_pays_its_own_band(ma, join, episode, file):
    membership_id = join(birth=BIRTH, tier="entry")
    claim = file(membership_id, episode(person_of(ma, membership_id), dt.date(2025, 3, 1)))
    assert claim.amount_assessed == 10_000_000


def test_waiting_period_is_counted_from_joining(ma, join, episode, file):
    membership_id = join(now=NOW)  # protected from 30 May 2025
    person = person_of(ma, membership_id)
    early = file(membership_id, episode(person, dt.date(2025, 5, 29)))
    assert (codes(early), early.amount_assessed, early.status) == (["R1"], 0, "filed")
    on_time = file(membership_id, episode(person, dt.date(2025, 5, 30), "I21.0"))
    assert (codes(on_time), on_time.amount_assessed) == ([], 30_000_000)


def test_duplicate_episode_is_refused_and_a_second_cancer_payout_is_found(ma, join, episode, file):
    membership_id = join()
    person = person_of(ma, membership_id)
    first = episode(person, dt.date(2025, 3, 1))
    file(membership_id, first)
    with pytest.raises(Conflict) as duplicate:
        file(membership_id, first)
    assert duplicate.value.field == "episode_id"
    second = file(membership_id, episode(person, dt.date(2025, 6, 1), "C18.0"))
    assert (codes(second), second.amount_assessed) == (["R5"], 0)


def test_statutory_layers_settle_first(ma, join, episode, file):
    membership_id = join()
    unsettled = episode(person_of(ma, membership_id), dt.date(2025, 3, 1), settle=False)
    with pytest.raises(Conflict) as caught:
        file(membership_id, unsettled)
    assert "settle" in caught.value.detail


def test_only_the_member_s_own_episodes_and_memberships(ma, join, episode, file, make_user):
    mine = join()
    spouse = join(relationship="spouse", name="李芳")
    with pytest.raises(InvalidInput):
        file(mine, episode(person_of(ma, spouse), dt.date(2025, 3, 1)))
    other_member = make_user("member")
    with pytest.raises(NotFound):
        file(mine, episode(person_of(ma, mine), dt.date(2025, 3, 1)), subject=other_member)


def test_reimbursement_count_per_year(ma, join, episode, file):
    """ICU plan: at most 4 claims a year; the fifth is found R4 and assessed 0."""
    membership_id = join("online-icu", declaration={})
    person = person_of(ma, membership_id)
    found = [file(membership_id, episode(person, dt.date(2025, month, 1), "A41.9", days=3, class_a=200_000,
                                         class_b=100_000, out=0)) for month in range(1, 6)]
    assert [codes(claim) for claim in found] == [[], [], [], [], ["R4"]]
    assert found[0].amount_assessed > 0 and found[4].amount_assessed == 0


def test_reimbursement_per_claim_and_annual_caps(ma, join, episode, file):
    """Union plan: 70% above 1,000 yuan of the in-policy self-payment, ≤ 100,000 a claim and a year."""
    membership_id = join("union-hospital", declaration={})
    person = person_of(ma, membership_id)
    first = file(membership_id, episode(person, dt.date(2025, 2, 1), "J18.9", class_a=60_000_000, class_b=40_000_000,
                                        out=0))
    assert first.amount_assessed == 10_000_000
    second = file(membership_id, episode(person, dt.date(2025, 5, 1), "J18.9", class_a=20_000_000, out=0))
    assert (codes(second), second.amount_assessed) == (["R4"], 0)


def test_reimbursement_pays_on_the_residual_after_the_statutory_layers(ma, join, episode, file):
    membership_id = join("online-icu", declaration={})
    episode_id = episode(person_of(ma, membership_id), dt.date(2025, 3, 1), "A41.9")
    with ma() as session:
        view = coverage_of(session, episode_id)
    assert view.covered > 0  # basic insurance and the rest paid first
    claim = file(membership_id, episode_id)
    in_policy = max(view.residual - 1_000_000, 0)
    assert claim.amount_assessed == min(in_policy, 10_000_000)


@pytest.fixture
def approved(ma, vault, join, episode, file, make_user):
    """A factory: an ICU claim through first review, investigation and re-review; returns (claim id, episode id)."""
    reviewer, assessor = make_user("reviewer"), make_user("assessor")

    def make(now=NOW):
        membership_id = join("online-icu", declaration={})
        episode_id = episode(person_of(ma, membership_id), dt.date(2025, 2, 1), "A41.9")
        claim_id = file(membership_id, episode_id).id
        with transaction(ma) as session:
            claim = cl.first_review(session, reviewer, claim_id, approve=True, note="", now=now)
            assert claim.status == "investigating"
        with transaction(ma) as session:
            cl.record_investigation(session, assessor, claim_id, summary="ICU 12 days, sepsis confirmed",
                                    findings="records match", now=now)
        with transaction(ma) as session:
            claim = cl.re_review(session, vault, reviewer, claim_id, approve=True, note="", now=now)
            assert (claim.status, claim.notice_until) == ("noticed", now.date() + dt.timedelta(days=7))
        return claim_id, episode_id

    make.reviewer, make.assessor = reviewer, assessor
    return make


def test_review_path_notice_and_payout(ma, approved):
    claim_id, episode_id = approved()
    with ma() as session:
        notices = cl.public_notices(session, "online-icu", NOW.date())
        assert [n.claim_id for n in notices] == [claim_id]
        notice = notices[0]
        assert (notice.masked_name, notice.age_band) == ("张*明", "30–39")
        assert notice.summary == "ICU 12 days, sepsis confirmed"
        assert not {"id_number", "name", "person_id"} & {f.name for f in dataclasses.fields(notice)}
        amount = session.get(Claim, claim_id).amount_approved
    with pytest.raises(Conflict), transaction(ma) as session:
        cl.pay_claim(session, claim_id, actor="payments", now=NOW + dt.timedelta(days=7))
    with transaction(ma) as session:
        claim = cl.pay_claim(session, claim_id, actor="payments", now=NOW + dt.timedelta(days=8))
        assert claim.status == "paid"
    with ma() as session:
        claim = session.get(Claim, claim_id)
        coverage = session.get(Coverage, claim.coverage_id)
        assert (coverage.layer, coverage.amount) == ("mutual_aid", amount)
        view = coverage_of(session, episode_id)
        assert view.covered <= view.total
        assert session.scalar(select(JournalEntry.kind).where(JournalEntry.seq == claim.payout_entry_seq)) == "payout"
        assert account_balance(session, "ma:online-icu:pool") == amount
        assert account_balance(session, "bank") == -amount
        steps = session.scalars(select(ClaimStep.step).where(ClaimStep.claim_id == claim_id)
                                .order_by(ClaimStep.id)).all()
        assert steps == ["file", "first_review", "investigation", "re_review", "pay"]
        assert cl.public_notices(session, "online-icu", NOW.date()) == []
    with pytest.raises(Conflict), transaction(ma) as session:
        cl.pay_claim(session, claim_id, actor="payments", now=NOW + dt.timedelta(days=9))


def test_a_shrunk_residual_pays_what_is_left(ma, approved):
    claim_id, episode_id = approved()
    with ma() as session:
        residual = coverage_of(session, episode_id).residual
    with transaction(ma) as session:
        record_coverage(session, episode_id, "charity", "某基金会", residual - 1_000, {})
    with transaction(ma) as session:
        claim = cl.pay_claim(session, claim_id, actor="payments", now=NOW + dt.timedelta(days=8))
    with ma() as session:
        assert session.get(Coverage, claim.coverage_id).amount == 1_000
        view = coverage_of(session, episode_id)
        assert view.residual == 0 and view.covered == view.total
        assert "residual 1000 fen" in session.scalars(select(ClaimStep.note).where(
            ClaimStep.claim_id == claim_id, ClaimStep.step == "pay")).one()


def test_operator_scoping_and_roles(ma, join, episode, file, make_user, vault):
    membership_id = join("online-icu", declaration={})
    claim_id = file(membership_id, episode(person_of(ma, membership_id), dt.date(2025, 2, 1), "A41.9")).id
    union_reviewer, assessor = make_user("reviewer", "union-hz"), make_user("assessor")
    with pytest.raises(NotFound), transaction(ma) as session:  # another operator's claim is not there for them
        cl.first_review(session, union_reviewer, claim_id, approve=True, note="")
    with pytest.raises(Forbidden), transaction(ma) as session:
        cl.first_review(session, assessor, claim_id, approve=True, note="")
    with ma() as session:
        assert session.scalar(select(func.count()).select_from(cl.readable_claims(union_reviewer).subquery())) == 0
        assert cl.get_claim(session, claim_id, assessor).id == claim_id


def test_rejection_dispute_and_lowered_approval(ma, approved, join, episode, file, member, vault):
    reviewer = approved.reviewer
    membership_id = join("online-icu", declaration={})
    claim_id = file(membership_id, episode(person_of(ma, membership_id), dt.date(2025, 2, 1), "A41.9")).id
    with pytest.raises(InvalidInput), transaction(ma) as session:
        cl.first_review(session, reviewer, claim_id, approve=False, note="")  # a rejection says why
    with transaction(ma) as session:
        assert cl.first_review(session, reviewer, claim_id, approve=False, note="records missing").status == "rejected"
    with pytest.raises(Forbidden), transaction(ma) as session:
        cl.dispute(session, reviewer, claim_id, reason="x")
    with transaction(ma) as session:
        assert cl.dispute(session, member, claim_id, reason="records were sent").status == "disputed"
    with pytest.raises(Conflict), transaction(ma) as session:
        cl.dispute(session, member, claim_id, reason="again")


def test_re_review_may_lower_the_amount_only_with_a_note(ma, vault, join, episode, file, make_user):
    reviewer, assessor = make_user("reviewer"), make_user("assessor")
    membership_id = join("online-icu", declaration={})
    claim_id = file(membership_id, episode(person_of(ma, membership_id), dt.date(2025, 2, 1), "A41.9")).id
    with transaction(ma) as session:
        cl.first_review(session, reviewer, claim_id, approve=True, note="")
        cl.record_investigation(session, assessor, claim_id, summary="ok", findings="")
    with ma() as session:
        assessed = session.get(Claim, claim_id).amount_assessed
    with pytest.raises(InvalidInput), transaction(ma) as session:
        cl.re_review(session, vault, reviewer, claim_id, approve=True, note="", amount=assessed - 100)
    with pytest.raises(InvalidInput), transaction(ma) as session:
        cl.re_review(session, vault, reviewer, claim_id, approve=True, note="more", amount=assessed + 1)
    with transaction(ma) as session:
        claim = cl.re_review(session, vault, reviewer, claim_id, approve=True, note="one day not ICU",
                             amount=assessed - 100)
        assert claim.amount_approved == assessed - 100
