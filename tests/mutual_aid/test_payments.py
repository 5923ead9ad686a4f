"""Collection through a payment channel (SQLite and PostgreSQL): nothing paid before the channel says so, each
notification counted once, failures suspended and retried, members removed after the retry window, and the
ledger's member receivables equal to what is still owed."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, update

from gongji.core.audit import AuditLog
from gongji.core.errors import InvalidInput
from gongji.core.db import transaction
from gongji.episodes.models import Episode, Person
from gongji.ledger.models import Account, JournalEntry
from gongji.ledger.service import account_balance
from gongji.mutual_aid import apportionment, payments
from gongji.mutual_aid.accounts import BANK, ensure_plan_accounts, member_account, pool_account
from gongji.mutual_aid.models import Charge, Claim, Membership, Period
from gongji.mutual_aid.payments import DebitRequest, Notification, SandboxChannel

PLAN = "online-icu"  # no caps, largest remainder: charges differ by a fen; retry_days 5 (the default)
CUTOFF = dt.datetime(2024, 3, 20, 16, 0, tzinfo=dt.UTC)  # 2024-03-21 0:00 China time
CHARGE_AT = dt.datetime(2024, 3, 28, 1, 0, tzinfo=dt.UTC)  # the charge day, 9:00 China time
MEMBERS = 30
LATE = dt.timedelta(minutes=5)  # past the sandbox's longest latency
DAY = dt.timedelta(days=1, minutes=10)  # a daily round, a little after the last one's notifications


def add_member(session) -> int:
    person_id = session.execute(insert(Person).values(
        person_key=secrets.token_hex(16), id_number_enc="-", name_enc="-", masked_id="-", masked_name="-",
        birth_year=1985, sex="M", scheme="resident", assistance_category="none", inclusive_enrolled=False,
        region="330100",
    ).returning(Person.id)).scalar_one()
    joined = CUTOFF - dt.timedelta(days=200)
    membership_id = session.execute(insert(Membership).values(
        plan_code=PLAN, person_id=person_id, tier="standard", shares=1, status="protected", joined_at=joined,
        protected_from=(joined + dt.timedelta(days=90)).date(), status_changed_at=joined, declaration={},
        account_code="-",
    ).returning(Membership.id)).scalar_one()
    session.execute(update(Membership).where(Membership.id == membership_id).values(
        account_code=member_account(membership_id)))
    session.execute(insert(Account).values(code=member_account(membership_id), name="会员应收分摊", kind="asset"))
    return membership_id


def add_claim(session, membership_id: int, amount: int) -> None:
    person_id = session.scalar(select(Membership.person_id).where(Membership.id == membership_id))
    episode_id = session.execute(insert(Episode).values(
        person_id=person_id, admission_date=dt.date(2024, 1, 5), discharge_date=dt.date(2024, 1, 20),
        hospital_level=3, icd10="C34.1", class_a=amount, class_b=0, out_of_catalogue=0,
    ).returning(Episode.id)).scalar_one()
    session.execute(insert(Claim).values(
        plan_code=PLAN, plan_version=1, membership_id=membership_id, episode_id=episode_id, disease_group=None,
        status="noticed", amount_assessed=amount, amount_approved=amount, reasons=[], filed_at=CUTOFF,
        filed_by="test", notice_until=dt.date(2024, 3, 18),
    ))


@pytest.fixture
def period(ma) -> tuple:
    """An apportioned period of 30 members sharing one claim of 1,000.07 yuan plus the fee."""
    with transaction(ma) as session:
        ensure_plan_accounts(session, PLAN, PLAN)
        members = [add_member(session) for _ in range(MEMBERS)]
        add_claim(session, members[0], 100_007)
        period = apportionment.open_period(session, PLAN, cutoff_at=CUTOFF, charge_on=CHARGE_AT.date(), actor="test")
        apportionment.apportion(session, period.id, actor="test")
        return ma, period.id, account_balance(session, BANK)


def charges(session, period_id: int) -> dict[int, Charge]:
    session.expire_all()
    return {charge.membership_id: charge for charge in session.scalars(
        select(Charge).where(Charge.period_id == period_id))}


def statuses(session, ids) -> dict[int, str]:
    return dict(session.execute(select(Membership.id, Membership.status).where(Membership.id.in_(list(ids)))).all())


def collect_and_handle(sessions, period_id: int, channel: SandboxChannel, now: dt.datetime) -> list[Notification]:
    """One round as the scheduler runs it: submit (committed), then handle what has arrived by `now + LATE`."""
    with transaction(sessions) as session:
        payments.collect_period(session, period_id, channel, now=now)
    notes = channel.poll(now + LATE)
    with transaction(sessions) as session:
        payments.handle_notifications(session, notes, now=now + LATE)
    return notes


def assert_ledger_owes_what_is_unpaid(session, period_id: int, bank_before: int) -> None:
    """Each member's receivable is what they still owe; custody received exactly the paid charges."""
    rows = charges(session, period_id)
    for membership_id, charge in rows.items():
        owed = charge.amount if charge.status in ("pending", "retrying") else 0
        assert account_balance(session, member_account(membership_id)) == owed
    assert account_balance(session, BANK) - bank_before == sum(c.amount for c in rows.values() if c.status == "paid")


def test_nothing_is_paid_before_the_channel_reports_and_nothing_is_submitted_twice(period):
    sessions, period_id, bank = period
    channel = SandboxChannel(seed=1, failure_rate=0.0)
    with transaction(sessions) as session:
        assert payments.collect_period(session, period_id, channel, now=CHARGE_AT, batch=7) == MEMBERS
        assert payments.collect_period(session, period_id, channel, now=CHARGE_AT) == 0  # all in flight
    with sessions() as session:
        rows = charges(session, period_id)
        assert {c.status for c in rows.values()} == {"pending"}
        assert all(c.channel_ref == f"r:{period_id}:{c.line_no}:0" for c in rows.values())
        assert_ledger_owes_what_is_unpaid(session, period_id, bank)
    assert channel.poll(CHARGE_AT) == []  # notifications come later
    notes = channel.poll(CHARGE_AT + LATE)
    assert {note.request_id for note in notes} == {c.channel_ref for c in rows.values()}


def test_a_period_collected_with_failures_ends_paid_or_retrying_each_notification_counted_once(period):
    sessions, period_id, bank = period
    channel = SandboxChannel(seed=3, failure_rate=0.3, duplicate_rate=0.5)
    notes = collect_and_handle(sessions, period_id, channel, CHARGE_AT)
    assert len(notes) > len({note.request_id for note in notes})  # the channel repeated some
    with transaction(sessions) as session:  # the whole batch delivered again, later
        again = payments.handle_notifications(session, notes, now=CHARGE_AT + 2 * LATE)
    assert again["paid"] == again["failed"] == again["suspended"] == 0 and again["ignored"] == len(notes)
    with sessions() as session:
        rows = charges(session, period_id)
        failed = {m for m, c in rows.items() if c.status == "retrying"}
        paid = {m for m, c in rows.items() if c.status == "paid"}
        assert failed and paid and failed | paid == set(rows)
        assert {c.attempts for m, c in rows.items() if m in failed} == {1}
        assert {c.attempts for m, c in rows.items() if m in paid} == {0}
        assert all(rows[m].channel_ref is None for m in failed)
        assert all(rows[m].channel_ref.startswith("sbx-") for m in paid)  # the channel's reference
        assert statuses(session, failed) == dict.fromkeys(failed, "suspended")
        assert statuses(session, paid) == dict.fromkeys(paid, "protected")
        entries = session.scalars(select(JournalEntry).where(JournalEntry.kind == "collection")).all()
        assert len(entries) == 1 and entries[0].line_count == len(paid) + 1
        assert_ledger_owes_what_is_unpaid(session, period_id, bank)
        suspended = session.scalars(select(AuditLog).where(AuditLog.action == "membership.suspended")).all()
        assert len(suspended) == 1 and set(suspended[0].detail["memberships"]) == failed
        assert session.get(Period, period_id).status == "apportioned"


def test_a_retry_succeeds_later_reinstates_the_member_and_a_stale_failure_changes_nothing(period):
    sessions, period_id, bank = period
    first = collect_and_handle(sessions, period_id, SandboxChannel(seed=3, failure_rate=0.3), CHARGE_AT)
    with sessions() as session:
        failed = {m for m, c in charges(session, period_id).items() if c.status == "retrying"}
    assert failed
    retry = SandboxChannel(seed=4, failure_rate=0.0)
    with transaction(sessions) as session:  # too soon: a failed charge waits a day
        assert payments.collect_period(session, period_id, retry, now=CHARGE_AT + dt.timedelta(hours=12)) == 0
    collect_and_handle(sessions, period_id, retry, CHARGE_AT + DAY)
    with transaction(sessions) as session:  # the first round's failures, delivered once more
        late = payments.handle_notifications(session, [note for note in first if not note.ok],
                                             now=CHARGE_AT + DAY + 2 * LATE)
    assert late["failed"] == late["suspended"] == 0
    with sessions() as session:
        rows = charges(session, period_id)
        assert {c.status for c in rows.values()} == {"paid"}
        assert {rows[m].attempts for m in failed} == {1}
        assert statuses(session, failed) == dict.fromkeys(failed, "protected")
        assert session.scalar(select(func.count()).where(AuditLog.action == "membership.reinstated")) == 1
        assert_ledger_owes_what_is_unpaid(session, period_id, bank)
        assert session.get(Period, period_id).status == "collected"


def test_a_member_still_failing_after_the_retry_days_is_removed_and_the_charge_written_off(period):
    sessions, period_id, bank = period
    with sessions() as session:
        ids = sorted(charges(session, period_id))
        pool_before = account_balance(session, pool_account(PLAN))
    stuck, other = ids[4], ids[5]
    channel = SandboxChannel(seed=5, failure_rate=0.0, failing=frozenset({stuck, other}))
    collect_and_handle(sessions, period_id, channel, CHARGE_AT)  # both fail and are suspended at CHARGE_AT + LATE
    for day in range(1, 5):  # retried daily within the 5 days
        now = CHARGE_AT + day * DAY
        if day == 3:
            channel.failing = frozenset({stuck})  # the other member's mandate is fixed
        collect_and_handle(sessions, period_id, channel, now)
        with transaction(sessions) as session:
            assert payments.retry_failed(session, PLAN, now + LATE)["members_removed"] == 0
    with transaction(sessions) as session:  # one second short of 5 days since the suspension
        assert payments.retry_failed(session, PLAN, CHARGE_AT + LATE + dt.timedelta(days=5, seconds=-1)) == {
            "charges_failed": 0, "members_removed": 0, "written_off": 0}
    with sessions() as session:
        assert statuses(session, [stuck, other]) == {stuck: "suspended", other: "protected"}
    day5 = CHARGE_AT + 5 * DAY
    with transaction(sessions) as session:  # a retry in flight is left to its notification
        assert payments.collect_period(session, period_id, channel, now=day5) == 1
        assert payments.retry_failed(session, PLAN, day5)["charges_failed"] == 0
    with transaction(sessions) as session:
        payments.handle_notifications(session, channel.poll(day5 + LATE), now=day5 + LATE)
        result = payments.retry_failed(session, PLAN, day5 + LATE)
    with sessions() as session:
        rows = charges(session, period_id)
        assert result == {"charges_failed": 1, "members_removed": 1, "written_off": rows[stuck].amount}
        assert rows[stuck].attempts == 6 and rows[stuck].status == "failed"
        assert statuses(session, [stuck]) == {stuck: "removed"}
        assert session.scalar(select(Membership.left_at).where(Membership.id == stuck)) is not None
        assert {c.status for m, c in rows.items() if m != stuck} == {"paid"}
        assert_ledger_owes_what_is_unpaid(session, period_id, bank)
        assert account_balance(session, pool_account(PLAN)) == pool_before + rows[stuck].amount  # the shortfall
        adjustment = session.scalars(select(JournalEntry).where(JournalEntry.kind == "adjustment")).one()
        assert adjustment.line_count == 2
        removed = session.scalars(select(AuditLog).where(AuditLog.action == "membership.removed")).one()
        assert removed.detail["memberships"] == [stuck]
        assert session.get(Period, period_id).status == "collected"
    with transaction(sessions) as session:
        assert payments.retry_failed(session, PLAN, day5 + DAY)["charges_failed"] == 0


# --- the sandbox on its own ------------------------------------------------------------------------------------

def requests_of(count: int) -> list[DebitRequest]:
    return [DebitRequest(f"r:1:{line}:0", 100 + line, 10 + line) for line in range(count)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 40), split=st.integers(1, 40),
       failure_rate=st.sampled_from([0.0, 0.2, 1.0]), duplicate_rate=st.sampled_from([0.0, 0.3, 1.0]))
def test_the_sandbox_reports_each_request_reproducibly_late_and_maybe_twice(seed, count, split,
                                                                             failure_rate,
                                                                             duplicate_rate):
    requests = requests_of(count)
    one = SandboxChannel(seed, (2.0, 9.0), failure_rate, duplicate_rate, failing=frozenset({100}))
    other = SandboxChannel(seed, (2.0, 9.0), failure_rate, duplicate_rate, failing=frozenset({100}))
    assert one.submit(requests, CHARGE_AT) == [request.request_id for request in requests]
    other.submit(requests[:split], CHARGE_AT)
    other.submit(requests[split:], CHARGE_AT)
    assert one.poll(CHARGE_AT + dt.timedelta(seconds=1.9)) == []
    notes = one.poll(CHARGE_AT + dt.timedelta(seconds=9))
    assert sorted(notes, key=repr) == sorted(other.poll(CHARGE_AT + dt.timedelta(seconds=9)), key=repr)
    assert one.in_flight == 0 and one.poll(CHARGE_AT + dt.timedelta(days=1)) == []
    by_id: dict[str, set[Notification]] = {}
    for note in notes:
        by_id.setdefault(note.request_id, set()).add(note)
    assert set(by_id) == {request.request_id for request in requests}
    assert all(len(found) == 1 for found in by_id.values())  # a repeat is the same notification
    assert len(notes) <= 2 * count and (duplicate_rate < 1 or len(notes) == 2 * count)
    assert (duplicate_rate > 0 or len(notes) == count)
    outcome = {request_id: next(iter(found)) for request_id, found in by_id.items()}
    assert not outcome["r:1:0:0"].ok and outcome["r:1:0:0"].reason in payments.FAILURE_REASONS
    assert failure_rate < 1 or not any(note.ok for note in notes)
    assert failure_rate > 0 or all(note.ok for note in notes if note.request_id != "r:1:0:0")


def test_the_sandbox_debits_a_request_id_once_and_reports_its_first_outcome_again():
    channel = SandboxChannel(seed=9, failure_rate=0.5, duplicate_rate=0.0)
    channel.submit(requests_of(20), CHARGE_AT)
    first = {note.request_id: note for note in channel.poll(CHARGE_AT + LATE)}
    channel.failure_rate = 1.0
    channel.submit(requests_of(20), CHARGE_AT + LATE)
    again = {note.request_id: note for note in channel.poll(CHARGE_AT + 2 * LATE)}
    assert again == first and any(note.ok for note in first.values())
    with pytest.raises(InvalidInput):
        SandboxChannel(failure_rate=1.5)
