"""Bulk entries on SQLite and PostgreSQL: a period's charges as one entry, its lines the leaves of their own subtree.

Each member's line is proved twice — into the entry's `lines_root`, and the entry's leaf into a signed
checkpoint — with `gongji.ledger.merkle` alone; a changed line is caught by `verify_log`.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from gongji.core.db import transaction
from gongji.core.errors import InvalidInput, NotFound
from gongji.ledger import merkle
from gongji.ledger.checkpoint import open_note
from gongji.ledger.lines import TILE, line_leaves
from gongji.ledger.models import Account, JournalEntry, LedgerBulkLine, LedgerLeaf, LedgerLineNode
from gongji.ledger.rules import entry_content, line_content
from gongji.ledger.service import (
    account_balance,
    line_inclusion_proof,
    open_account,
    post_bulk_entry,
    post_entry,
    sequence,
    verify_log,
)
from gongji.ledger.signing import LedgerSigner

SIGNER = LedgerSigner("gongji.test/ledger", Ed25519PrivateKey.from_private_bytes(bytes(32)))
#: Enough members for complete tiles of 256 lines, stored nodes above them, and a partial last tile.
MEMBERS = 3 * TILE + 77


def charge(member: int) -> int:
    """Each member's apportionment in fen: a few yuan, not all equal."""
    return 300 + member % 11


@pytest.fixture
def plan(sessions):
    with transaction(sessions) as session:
        open_account(session, "plan:1:pool", "互助计划1 资金池", "liability", public=True)
        open_account(session, "bank", "托管账户", "asset")
        session.execute(
            insert(Account), [{"code": f"plan:1:member:{i}", "name": "会员", "kind": "asset"} for i in range(MEMBERS)]
        )
    return sessions


def period_lines():
    return ((f"plan:1:member:{i}", charge(i)) for i in range(MEMBERS))


def post_period(sessions, memo: str = "2026年第1期分摊") -> JournalEntry:
    with transaction(sessions) as session:
        return post_bulk_entry(
            session, "apportionment", memo, "plan:1", period_lines(), counter_account="plan:1:pool", actor="test"
        )


def expected_lines() -> list[tuple[str, int]]:
    total = sum(charge(i) for i in range(MEMBERS))
    return [(f"plan:1:member:{i}", charge(i)) for i in range(MEMBERS)] + [("plan:1:pool", -total)]


def test_a_bulk_entry_balances_and_commits_to_its_lines(plan):
    entry = post_period(plan)
    total = sum(charge(i) for i in range(MEMBERS))
    with plan() as session:
        assert account_balance(session, "plan:1:pool") == -total
        assert account_balance(session, "plan:1:member:0") == charge(0)
        assert account_balance(session, f"plan:1:member:{MEMBERS - 1}") == charge(MEMBERS - 1)
        assert session.scalar(select(func.sum(LedgerBulkLine.amount))) == 0
        assert session.scalar(select(func.count()).select_from(LedgerBulkLine)) == MEMBERS + 1
        stored = session.get(JournalEntry, entry.seq)
    # The root, recomputed here from rules.line_content alone, is the one the entry's leaf carries.
    lines = expected_lines()
    leaves = [merkle.leaf_hash(line_content(stored.uid, n, code, fen)) for n, (code, fen) in enumerate(lines)]
    root = merkle.root(len(leaves), merkle.full_nodes_in_memory(leaves))
    assert stored.line_count == MEMBERS + 1 and stored.lines_root == root.hex()
    content = entry_content(stored.uid, stored.posted_at, "apportionment", "2026年第1期分摊", "plan:1", [],
                            lines_root=root.hex(), line_count=len(lines))
    assert stored.leaf_hash == merkle.leaf_hash(content).hex()
    assert '"lines_root"' in content.decode() and '"postings"' not in content.decode()


def test_only_full_nodes_from_level_8_up_are_stored(plan):
    entry = post_period(plan)
    with plan() as session:
        nodes = session.execute(
            select(LedgerLineNode.level, func.count()).where(LedgerLineNode.entry_seq == entry.seq)
            .group_by(LedgerLineNode.level).order_by(LedgerLineNode.level)
        ).all()
    assert [tuple(row) for row in nodes] == [(8, 3), (9, 1)]  # 3 complete tiles of 256, one pair of them


def test_a_members_line_is_proved_into_the_entry_and_the_entry_into_a_signed_checkpoint(plan):
    entry = post_period(plan)
    with transaction(plan) as session:
        post_entry(session, "donation", "捐款", None, [("bank", 500), ("plan:1:pool", -500)])
        sequence(session, SIGNER)
    count = MEMBERS + 1
    for line_no in (0, 1, TILE - 1, TILE, 2 * TILE + 5, 3 * TILE, MEMBERS - 1, MEMBERS):
        with plan() as session:
            receipt = line_inclusion_proof(session, entry.seq, line_no)
        line = json.loads(receipt.line_content)
        assert (line["line"], line["entry"]) == (line_no, entry.uid)
        merkle.verify_inclusion(
            merkle.leaf_hash(receipt.line_content), line_no, count, receipt.lines_proof, receipt.lines_root
        )
        entry_document = json.loads(receipt.entry_content)
        assert entry_document["lines_root"] == receipt.lines_root.hex() and entry_document["line_count"] == count
        checkpoint = open_note(receipt.checkpoint.note, SIGNER.verifier_key)
        merkle.verify_inclusion(
            merkle.leaf_hash(receipt.entry_content), receipt.leaf_index, checkpoint.size, receipt.entry_proof,
            checkpoint.root,
        )
    assert line == {"type": "line", "entry": entry.uid, "line": MEMBERS, "account": "plan:1:pool",
                    "amount": -sum(charge(i) for i in range(MEMBERS))}
    # One fen more on member 5's line, and the line no longer leads to the root its entry carries.
    with plan() as session:
        fifth = line_inclusion_proof(session, entry.seq, 5)
    changed = merkle.leaf_hash(line_content(entry.uid, 5, "plan:1:member:5", charge(5) + 1))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(changed, 5, count, fifth.lines_proof, fifth.lines_root)


def test_a_line_has_no_receipt_before_its_entry_is_under_a_checkpoint_nor_beyond_the_entry(plan):
    entry = post_period(plan)
    with plan() as session, pytest.raises(NotFound, match="not under a checkpoint"):
        line_inclusion_proof(session, entry.seq, 0)
    with transaction(plan) as session:
        sequence(session, SIGNER)
        post_entry(session, "donation", "捐款", None, [("bank", 500), ("plan:1:pool", -500)])
    with plan() as session:
        with pytest.raises(NotFound) as caught:
            line_inclusion_proof(session, entry.seq, MEMBERS + 1)
        assert caught.value.field == "line_no"
        with pytest.raises(NotFound, match="no bulk entry"):
            line_inclusion_proof(session, entry.seq + 1, 0)  # an ordinary entry


def drop_trigger(session, name: str, table: str) -> None:
    suffix = f" ON {table}" if session.get_bind().dialect.name == "postgresql" else ""
    session.execute(text(f"DROP TRIGGER IF EXISTS {name}{suffix}"))


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE ledger_bulk_lines SET amount = amount + 1 WHERE line_no = 300",
        "UPDATE ledger_bulk_lines SET account_code = 'plan:1:member:1' WHERE line_no = 2",
        "DELETE FROM ledger_bulk_lines WHERE line_no = 700",
    ],
)
def test_verify_log_recomputes_the_lines_and_names_the_changed_entry(plan, tamper):
    with transaction(plan) as session:
        post_entry(session, "donation", "捐款", None, [("bank", 500), ("plan:1:pool", -500)])
    entry = post_period(plan)
    with transaction(plan) as session:
        sequence(session, SIGNER)
    with plan() as session:
        assert verify_log(session, SIGNER.verifier_key).ok
    with transaction(plan) as session:
        for operation in ("update", "delete"):
            drop_trigger(session, f"ledger_bulk_lines_no_{operation}", "ledger_bulk_lines")
        session.execute(text(tamper))
    with plan() as session:
        report = verify_log(session, SIGNER.verifier_key)
        bad = session.get(LedgerLeaf, report.first_bad_leaf)
    assert not report.ok and (bad.source, bad.source_id) == ("entry", entry.seq)
    assert "changed" in report.reason


@pytest.mark.parametrize("table", ["ledger_bulk_lines", "ledger_line_nodes"])
@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"])
def test_bulk_tables_are_append_only(plan, table, statement):
    post_period(plan)
    column = {"ledger_bulk_lines": "amount", "ledger_line_nodes": "hash"}[table]
    with pytest.raises(DBAPIError, match="append-only"), plan.begin() as session:
        session.execute(text(statement.format(table=table, column=column)))


@pytest.mark.parametrize("statement", [
    "DELETE FROM accounts WHERE code = 'plan:1:member:3'",
    "UPDATE accounts SET code = 'plan:1:member:x' WHERE code = 'plan:1:member:3'",
])
def test_accounts_keep_their_code_and_are_never_deleted(plan, statement):
    """Bulk lines name accounts by code without a foreign key: the code must stay what it was."""
    with pytest.raises(DBAPIError, match="never deleted"), plan.begin() as session:
        session.execute(text(statement))
    with transaction(plan) as session:
        session.execute(text("UPDATE accounts SET name = '会员甲', public = false WHERE code = 'plan:1:member:3'"))


@pytest.mark.parametrize(
    ("lines", "counter", "field"),
    [
        ([("plan:1:member:1", 300), ("nobody", 200)], "plan:1:pool", "lines[1].account_code"),
        ([("plan:1:member:1", 300), ("plan:1:member:2", 0)], "plan:1:pool", "lines[1].amount"),
        ([("plan:1:member:1", 300), ("plan:1:member:2", 2.5)], "plan:1:pool", "lines[1].amount"),
        ([("plan:1:member:1", 300), ("plan:1:member:2", 10**12)], "plan:1:pool", "lines[1].amount"),
        ([("plan:1:member:1", 300), ("plan:1:member:2",)], "plan:1:pool", "lines[1]"),
        ([("plan:1:member:1", 300), (7, 300)], "plan:1:pool", "lines[1].account_code"),
        ([("plan:1:member:1", 300), ("plan:1:member:2", -300)], "plan:1:pool", "lines"),
        ([], "plan:1:pool", "lines"),
        ("plan:1:member:1", "plan:1:pool", "lines"),
        ([("plan:1:member:1", 300)], "nowhere", "counter_account"),
    ],
)
def test_bad_bulk_entries_are_refused_naming_the_field_and_write_nothing(plan, lines, counter, field):
    with pytest.raises(InvalidInput) as caught, transaction(plan) as session:
        post_bulk_entry(session, "apportionment", "分摊", None, lines, counter_account=counter)
    assert caught.value.field == field
    with plan() as session:
        assert session.scalar(select(func.count()).select_from(LedgerBulkLine)) == 0
        assert session.scalar(select(func.count()).select_from(JournalEntry)) == 0


def test_memos_of_bulk_entries_carry_no_personal_numbers(plan):
    with pytest.raises(InvalidInput) as caught, transaction(plan) as session:
        post_bulk_entry(session, "apportionment", "会员 13812345678 分摊", None, period_lines(),
                        counter_account="plan:1:pool")
    assert caught.value.field == "memo"


def test_odd_account_codes_survive_copy_and_hash_as_the_rules_say(plan):
    """Codes with a quote, a backslash, a tab or CJK text: COPY's escaping and JSON's both hold."""
    codes = ['会员"甲"', "a\\b", "tab\there", "行\u2028分", "plain"]
    with transaction(plan) as session:
        for code in codes:
            open_account(session, code, "会员", "asset")
        entry = post_bulk_entry(session, "apportionment", "分摊", None, [(code, 100) for code in codes],
                                counter_account="plan:1:pool")
        sequence(session, SIGNER)
    with plan() as session:
        stored = session.execute(
            select(LedgerBulkLine.account_code).where(LedgerBulkLine.entry_seq == entry.seq)
            .order_by(LedgerBulkLine.line_no)
        ).scalars().all()
        assert stored == [*codes, "plan:1:pool"]
        assert account_balance(session, "a\\b") == 100
        assert verify_log(session, SIGNER.verifier_key).ok
        receipt = line_inclusion_proof(session, entry.seq, 2)
    assert json.loads(receipt.line_content)["account"] == "tab\there"


@given(
    code=st.text(min_size=1, max_size=64),
    amount=st.integers(min_value=-(10**10), max_value=10**10).filter(bool),
    line_no=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_fast_line_leaves_are_the_hashes_of_rules_line_content(code, amount, line_no):
    uid = "0123456789abcdef" * 2
    assert line_leaves(uid, [(code, amount, line_no)]) == [
        merkle.leaf_hash(line_content(uid, line_no, code, amount))
    ]
