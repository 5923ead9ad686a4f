from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from gongji.core.audit import AuditLog
from gongji.core.db import transaction
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.ledger.models import JournalEntry, LedgerHead
from gongji.ledger.rules import GENESIS_HASH, entry_hash
from gongji.ledger.service import account_balance, open_account, post_entry, verify_chain

ACCOUNTS = [
    ("bank", "平台托管账户 custody bank", "asset"),
    ("campaign:1", "筹款项目1 campaign fund", "liability"),
    ("hospital:1", "医院应付 hospital payable", "liability"),
    ("fee_income", "服务费收入 fee income", "income"),
]


@pytest.fixture
def ledger(sessions):
    with transaction(sessions) as session:
        for code, name, kind in ACCOUNTS:
            open_account(session, code, name, kind)
    return sessions


def donate(session, fen: int, memo: str = "捐款"):
    return post_entry(session, "donation", memo, "campaign:1", [("bank", fen), ("campaign:1", -fen)])


def test_balanced_entry_updates_balances_and_chain(ledger):
    with transaction(ledger) as session:
        first = donate(session, 10_000)
        second = post_entry(
            session,
            "disbursement",
            "拨付医院",
            "campaign:1",
            [("campaign:1", 9_640), ("hospital:1", -9_280), ("fee_income", -360)],
            actor="caseworker1",
        )
    with ledger() as session:
        assert (first.seq, second.seq) == (1, 2)
        assert first.prev_hash == GENESIS_HASH
        assert second.prev_hash == first.hash
        stored = session.get(JournalEntry, 2)
        lines = [(p.account.code, p.amount) for p in stored.postings]
        assert stored.posted_at.tzinfo == dt.UTC
        assert stored.hash == entry_hash(
            2, stored.posted_at, "disbursement", "拨付医院", "campaign:1", lines, first.hash
        )
        assert account_balance(session, "bank") == 10_000
        assert account_balance(session, "campaign:1") == -360
        assert account_balance(session, "hospital:1") == -9_280
        assert account_balance(session, "fee_income") == -360
        head = session.get(LedgerHead, 1)
        assert (head.last_seq, head.last_hash) == (2, second.hash)
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions.count("ledger.post") == 2
        assert verify_chain(session) == verify_chain(session)
        report = verify_chain(session)
        assert (report.ok, report.entries_checked, report.first_bad_seq, report.reason) == (True, 2, None, None)


def test_empty_ledger_verifies(sessions):
    with sessions() as session:
        report = verify_chain(session)
        assert report.ok and report.entries_checked == 0


@pytest.mark.parametrize(
    ("kind", "memo", "reference", "lines", "field"),
    [
        ("donation", "", None, [("bank", 100), ("campaign:1", -99)], "lines"),
        ("donation", "", None, [("bank", 100)], "lines"),
        ("donation", "", None, [("bank", 100), ("nowhere", -100)], "lines[1].account_code"),
        ("donation", "", None, [("bank", 1.5), ("campaign:1", -1.5)], "lines[0].amount"),
        ("donation", "", None, [("bank", "100"), ("campaign:1", -100)], "lines[0].amount"),
        ("donation", "", None, [("bank", True), ("campaign:1", -1)], "lines[0].amount"),
        ("donation", "", None, [("bank", 0), ("campaign:1", 0)], "lines[0].amount"),
        ("donation", "", None, [("bank", 5), ("campaign:1",)], "lines[1]"),
        ("donation", "", None, "bank", "lines"),
        ("gift", "", None, [("bank", 100), ("campaign:1", -100)], "kind"),
        ("donation", None, None, [("bank", 100), ("campaign:1", -100)], "memo"),
        ("donation", "", 42, [("bank", 100), ("campaign:1", -100)], "reference"),
    ],
)
def test_bad_entries_are_refused_naming_the_field(ledger, kind, memo, reference, lines, field):
    with pytest.raises(InvalidInput) as caught, transaction(ledger) as session:
        post_entry(session, kind, memo, reference, lines)
    assert caught.value.field == field
    with ledger() as session:
        assert session.scalars(select(JournalEntry)).all() == []
        assert session.get(LedgerHead, 1).last_seq == 0


def test_accounts(ledger):
    with pytest.raises(Conflict) as caught, transaction(ledger) as session:
        open_account(session, "bank", "again", "asset")
    assert caught.value.field == "code"
    with pytest.raises(InvalidInput) as caught, transaction(ledger) as session:
        open_account(session, "x", "x", "revenue")
    assert caught.value.field == "kind"
    with pytest.raises(NotFound), ledger() as session:
        account_balance(session, "nowhere")


@pytest.mark.parametrize("table", ["journal_entries", "postings"])
@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"])
def test_append_only_triggers_refuse_changes(ledger, table, statement):
    with transaction(ledger) as session:
        donate(session, 500)
    column = "memo" if table == "journal_entries" else "amount"
    with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as session:
        session.execute(text(statement.format(table=table, column=column)))
    with ledger() as session:
        assert verify_chain(session).ok


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
@pytest.mark.parametrize("table", ["journal_entries", "postings"])
def test_truncate_is_refused_on_postgres(ledger, table):
    with transaction(ledger) as session:
        donate(session, 500)
    with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as session:
        session.execute(text(f"TRUNCATE {table} CASCADE"))


def drop_trigger(session, name: str, table: str) -> None:
    suffix = f" ON {table}" if session.get_bind().dialect.name == "postgresql" else ""
    session.execute(text(f"DROP TRIGGER {name}{suffix}"))


@pytest.mark.parametrize(
    ("table", "tamper", "reason"),
    [
        ("postings", "UPDATE postings SET amount = amount + 1 WHERE entry_seq = 2 AND amount > 0", "balance"),
        ("postings", "UPDATE postings SET amount = -amount WHERE entry_seq = 2", "hash mismatch"),
        ("journal_entries", "UPDATE journal_entries SET memo = '改过' WHERE seq = 2", "hash mismatch"),
        ("journal_entries", "UPDATE journal_entries SET reference = NULL WHERE seq = 2", "hash mismatch"),
    ],
)
def test_tampering_is_detected_and_named(ledger, table, tamper, reason):
    with transaction(ledger) as session:
        for fen in (100, 200, 300):
            donate(session, fen)
    with transaction(ledger) as session:
        drop_trigger(session, f"{table}_no_update", table)
        session.execute(text(tamper))
    with ledger() as session:
        report = verify_chain(session)
    assert not report.ok
    assert report.first_bad_seq == 2
    assert report.entries_checked == 2
    assert reason in report.reason


def test_rehashed_forgery_breaks_the_next_link(ledger):
    with transaction(ledger) as session:
        for fen in (100, 200, 300):
            donate(session, fen)
    with transaction(ledger) as session:
        drop_trigger(session, "journal_entries_no_update", "journal_entries")
        entry = session.get(JournalEntry, 2)
        lines = [(p.account.code, p.amount) for p in entry.postings]
        forged = entry_hash(2, entry.posted_at, entry.kind, "伪造", entry.reference, lines, entry.prev_hash)
        session.execute(text("UPDATE journal_entries SET memo = '伪造', hash = :h WHERE seq = 2"), {"h": forged})
    with ledger() as session:
        report = verify_chain(session)
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "prev_hash" in report.reason


def test_removed_tail_is_detected(ledger):
    with transaction(ledger) as session:
        for fen in (100, 200, 300):
            donate(session, fen)
    with transaction(ledger) as session:
        drop_trigger(session, "postings_no_delete", "postings")
        drop_trigger(session, "journal_entries_no_delete", "journal_entries")
        session.execute(text("DELETE FROM postings WHERE entry_seq = 3"))
        session.execute(text("DELETE FROM journal_entries WHERE seq = 3"))
    with ledger() as session:
        report = verify_chain(session)
    assert (report.ok, report.entries_checked, report.first_bad_seq) == (False, 2, 3)
    assert "head" in report.reason


def test_concurrent_appends_take_turns(ledger):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                with transaction(ledger) as session:
                    donate(session, 100)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with ledger() as session:
        report = verify_chain(session)
        assert (report.ok, report.entries_checked) == (True, 20)
        assert account_balance(session, "bank") == 2_000
