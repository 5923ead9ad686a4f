"""Sequencing is a handful of statements whatever the batch and the tree: no query per node or per leaf."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event

from gongji.core.db import transaction
from gongji.ledger.service import open_account, post_entry, sequence, verify_log
from gongji.ledger.signing import LedgerSigner

SIGNER = LedgerSigner("gongji.test/ledger", Ed25519PrivateKey.from_private_bytes(bytes(32)))


def post(sessions, count: int) -> None:
    with transaction(sessions) as session:
        for fen in range(1, count + 1):
            post_entry(session, "donation", "捐款", "campaign:1", [("bank", fen), ("campaign:1", -fen)])


def test_a_batch_onto_a_ragged_tree_takes_a_handful_of_statements(engine, sessions):
    with transaction(sessions) as session:
        open_account(session, "bank", "托管账户", "asset")
        open_account(session, "campaign:1", "项目资金", "liability")
    post(sessions, 1023)  # ten full subtrees on the tree's right edge: ten left siblings for the next leaves
    with transaction(sessions) as session:
        assert sequence(session, SIGNER).size == 1023
    post(sessions, 300)

    statements: list[str] = []

    def count(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    with transaction(sessions) as session:
        report = sequence(session, SIGNER)
    event.remove(engine, "before_cursor_execute", count)
    assert (report.sequenced, report.size) == (300, 1323)
    assert len(statements) <= 10, statements
    with sessions() as session:
        assert verify_log(session, SIGNER.verifier_key).ok
