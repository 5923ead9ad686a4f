"""The journal as a transparency log, on SQLite and PostgreSQL: post without waiting, sequence, prove, verify."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from gongji.core.db import transaction
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.ledger import merkle
from gongji.ledger.checkpoint import open_note
from gongji.ledger.models import JournalEntry, LedgerLeaf, LedgerPending
from gongji.ledger.rules import entry_content
from gongji.ledger.service import (
    account_balance,
    consistency_proof,
    inclusion_proof,
    latest_checkpoint,
    leaf_of_entry,
    open_account,
    post_entry,
    sequence,
    verify_log,
)
from gongji.ledger.signing import LedgerSigner

ACCOUNTS = [
    ("bank", "平台托管账户 custody bank", "asset"),
    ("campaign:1", "筹款项目1 campaign fund", "liability"),
    ("hospital:1", "医院应付 hospital payable", "liability"),
    ("fee_income", "服务费收入 fee income", "income"),
]
SIGNER = LedgerSigner("gongji.test/ledger", Ed25519PrivateKey.from_private_bytes(bytes(32)))
VERIFIER = SIGNER.verifier_key


@pytest.fixture
def ledger(sessions):
    with transaction(sessions) as session:
        for code, name, kind in ACCOUNTS:
            open_account(session, code, name, kind)
    return sessions


def donate(session, fen: int, memo: str = "捐款"):
    return post_entry(session, "donation", memo, "campaign:1", [("bank", fen), ("campaign:1", -fen)])


def sequenced(ledger):
    with transaction(ledger) as session:
        return sequence(session, SIGNER)


def test_entries_are_logged_proven_and_balanced(ledger):
    with transaction(ledger) as session:
        first = donate(session, 10_000)
        second = post_entry(
            session, "disbursement", "拨付医院", "campaign:1",
            [("campaign:1", 9_640), ("hospital:1", -9_280), ("fee_income", -360)], actor="caseworker1",
        )
    with ledger() as session:
        assert session.scalar(select(func.count()).select_from(LedgerPending)) == 2
        stored = session.get(JournalEntry, second.seq)
        lines = [(p.account.code, p.amount) for p in stored.postings]
        content = entry_content(stored.uid, stored.posted_at, "disbursement", "拨付医院", "campaign:1", lines)
        assert stored.leaf_hash == merkle.leaf_hash(content).hex()
        assert account_balance(session, "campaign:1") == -360
    report = sequenced(ledger)
    assert (report.sequenced, report.size) == (2, 2)
    with ledger() as session:
        checkpoint = latest_checkpoint(session)
        signed = open_note(checkpoint.note, VERIFIER)
        assert (signed.size, signed.root.hex()) == (2, checkpoint.root)
        for entry in (first, second):
            leaf = leaf_of_entry(session, entry.seq)
            proof = inclusion_proof(session, leaf.leaf_index, 2)
            merkle.verify_inclusion(bytes.fromhex(leaf.leaf_hash), leaf.leaf_index, 2, proof, signed.root)
        assert verify_log(session, VERIFIER).ok


def test_checkpoints_extend_each_other(ledger):
    sizes = []
    for batch in (3, 1, 5):
        with transaction(ledger) as session:
            for fen in range(batch):
                donate(session, 100 + fen)
        sizes.append(sequenced(ledger).size)
    assert sizes == [3, 4, 9]
    with ledger() as session:
        old = open_note(session.get_one(type(latest_checkpoint(session)), 3).note, VERIFIER)
        new = open_note(latest_checkpoint(session).note, VERIFIER)
        merkle.verify_consistency(3, 9, old.root, new.root, consistency_proof(session, 3, 9))


def test_empty_ledger_verifies_and_has_no_checkpoint(ledger):
    assert sequenced(ledger).sequenced == 0
    with ledger() as session:
        assert verify_log(session, VERIFIER).ok
        with pytest.raises(NotFound):
            latest_checkpoint(session)


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
        ("donation", "张三 13800138000", None, [("bank", 100), ("campaign:1", -100)], "memo"),
        ("donation", "", "110105199001010011", [("bank", 100), ("campaign:1", -100)], "reference"),
    ],
)
def test_bad_entries_are_refused_naming_the_field(ledger, kind, memo, reference, lines, field):
    with pytest.raises(InvalidInput) as caught, transaction(ledger) as session:
        post_entry(session, kind, memo, reference, lines)
    assert caught.value.field == field
    with ledger() as session:
        assert session.scalars(select(JournalEntry)).all() == []
        assert session.scalars(select(LedgerPending)).all() == []


def test_accounts(ledger):
    with pytest.raises(Conflict) as caught, transaction(ledger) as session:
        open_account(session, "bank", "again", "asset")
    assert caught.value.field == "code"
    with pytest.raises(InvalidInput) as caught, transaction(ledger) as session:
        open_account(session, "x", "x", "revenue")
    assert caught.value.field == "kind"
    with pytest.raises(NotFound), ledger() as session:
        account_balance(session, "nowhere")


@pytest.mark.parametrize("table", ["journal_entries", "postings", "ledger_leaves", "ledger_checkpoints"])
@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"])
def test_append_only_triggers_refuse_changes(ledger, table, statement):
    with transaction(ledger) as session:
        donate(session, 500)
    sequenced(ledger)
    column = {"journal_entries": "memo", "postings": "amount", "ledger_leaves": "leaf_hash",
              "ledger_checkpoints": "note"}[table]
    with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as session:
        session.execute(text(statement.format(table=table, column=column)))
    with ledger() as session:
        assert verify_log(session, VERIFIER).ok


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
@pytest.mark.parametrize("table", ["journal_entries", "postings", "ledger_leaves"])
def test_truncate_is_refused_on_postgres(ledger, table):
    with transaction(ledger) as session:
        donate(session, 500)
    with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as session:
        session.execute(text(f"TRUNCATE {table} CASCADE"))


def drop_trigger(session, name: str, table: str) -> None:
    suffix = f" ON {table}" if session.get_bind().dialect.name == "postgresql" else ""
    session.execute(text(f"DROP TRIGGER IF EXISTS {name}{suffix}"))


def drop_all_triggers(session) -> None:
    for table in ("journal_entries", "postings", "ledger_leaves", "ledger_nodes", "ledger_checkpoints"):
        for operation in ("update", "delete"):
            drop_trigger(session, f"{table}_no_{operation}", table)


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE postings SET amount = amount + 1 WHERE entry_seq = 2 AND amount > 0",
        "UPDATE postings SET amount = -amount WHERE entry_seq = 2",
        "UPDATE journal_entries SET memo = '改过' WHERE seq = 2",
        "UPDATE journal_entries SET reference = NULL WHERE seq = 2",
    ],
)
def test_a_changed_entry_is_named_by_its_leaf(ledger, tamper):
    with transaction(ledger) as session:
        for fen in (100, 200, 300):
            donate(session, fen)
    sequenced(ledger)
    with transaction(ledger) as session:
        drop_all_triggers(session)
        session.execute(text(tamper))
    with ledger() as session:
        report = verify_log(session, VERIFIER)
        bad = session.get(LedgerLeaf, report.first_bad_leaf)
    assert not report.ok and (bad.source, bad.source_id) == ("entry", 2)
    assert "changed" in report.reason


def test_removing_the_last_entries_and_their_leaves_is_caught_by_a_saved_checkpoint(ledger):
    """The reproduction: deleting the tail and rewinding the head was not detected."""
    with transaction(ledger) as session:
        for fen in range(1, 11):
            donate(session, fen * 100)
    sequenced(ledger)
    with ledger() as session:
        saved = latest_checkpoint(session).note
    with transaction(ledger) as session:
        drop_all_triggers(session)
        session.execute(text("DELETE FROM ledger_checkpoints"))
        session.execute(text("DELETE FROM ledger_nodes"))
        session.execute(text("DELETE FROM ledger_leaves WHERE leaf_index >= 5"))
        session.execute(text("DELETE FROM postings WHERE entry_seq > 5"))
        session.execute(text("DELETE FROM journal_entries WHERE seq > 5"))
    with ledger() as session:
        assert verify_log(session, VERIFIER).ok  # self-consistent after the rewrite …
        report = verify_log(session, VERIFIER, since=saved)  # … but not with what a donor kept
    assert not report.ok and "fewer than the saved" in report.reason


def test_rewriting_history_is_caught_by_a_saved_checkpoint(ledger):
    with transaction(ledger) as session:
        for fen in range(1, 5):
            donate(session, fen * 100)
    sequenced(ledger)
    with ledger() as session:
        saved = latest_checkpoint(session).note
        forged_seq = session.scalar(select(LedgerLeaf.source_id).where(LedgerLeaf.leaf_index == 1))
    with transaction(ledger) as session:
        drop_all_triggers(session)
        entry = session.get(JournalEntry, forged_seq)
        lines = [(p.account.code, p.amount) for p in entry.postings]
        forged = merkle.leaf_hash(entry_content(entry.uid, entry.posted_at, entry.kind, "伪造", entry.reference, lines))
        session.execute(text("UPDATE journal_entries SET memo = '伪造', leaf_hash = :h WHERE seq = :s"),
                        {"h": forged.hex(), "s": forged_seq})
        session.execute(text("UPDATE ledger_leaves SET leaf_hash = :h WHERE leaf_index = 1"), {"h": forged.hex()})
        session.execute(text("DELETE FROM ledger_checkpoints"))
    with ledger() as session:
        report = verify_log(session, VERIFIER, since=saved)
    assert not report.ok and "rewritten" in report.reason


def test_concurrent_writers_never_wait_and_every_entry_is_logged(ledger):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
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
    assert sequenced(ledger).size == 40
    with ledger() as session:
        report = verify_log(session, VERIFIER)
        assert (report.ok, report.leaves_checked) == (True, 40)
        assert account_balance(session, "bank") == 4_000
