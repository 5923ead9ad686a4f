"""The ledger as a transparency log: no chain head to lock, leaves, full nodes, signed checkpoints.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

The hash-chained journal of 0001 had no producer yet (no context posted to
it), so its tables are replaced rather than converted; the upgrade refuses to
run over a journal that holds entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("journal_entries", "postings", "ledger_leaves", "ledger_nodes", "ledger_checkpoints", "coverage")
GENESIS_HASH = "0" * 64


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    if not op.get_context().as_sql:
        entries = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM journal_entries")).scalar_one()
        if entries:
            raise RuntimeError("journal_entries holds entries of the old hash chain; export them before upgrading")
    op.drop_table("postings")
    op.drop_table("journal_entries")
    op.drop_table("ledger_head")

    op.create_table(
        "journal_entries",
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(32), nullable=False),
        _timestamp("posted_at"),
        sa.Column("posted_by", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("memo", sa.Text, nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("line_count", sa.Integer, nullable=False),
        sa.Column("lines_root", sa.String(64), nullable=True),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "postings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entry_seq", sa.Integer, sa.ForeignKey("journal_entries.seq"), nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_postings_amount_nonzero"),
        sa.UniqueConstraint("entry_seq", "line_no", name="uq_postings_entry_line"),
    )
    op.create_index("ix_postings_account_id", "postings", ["account_id"])
    op.create_table(
        "ledger_pending",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_id", sa.BigInteger, nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "ledger_leaves",
        sa.Column("leaf_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_id", sa.BigInteger, nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        _timestamp("sequenced_at"),
        sa.UniqueConstraint("source", "source_id", name="uq_ledger_leaves_source"),
    )
    op.create_table(
        "ledger_nodes",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        _timestamp("issued_at"),
    )
    _install_append_only(APPEND_ONLY)


def downgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for operation in ("update", "delete", "truncate") if postgres else ("update", "delete"):
        op.execute(f"DROP TRIGGER coverage_no_{operation}" + (" ON coverage" if postgres else ""))
    for table in ("ledger_checkpoints", "ledger_nodes", "ledger_leaves", "ledger_pending", "postings",
                  "journal_entries"):
        op.drop_table(table)
    op.create_table(
        "journal_entries",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        _timestamp("posted_at"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("memo", sa.Text, nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "postings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entry_seq", sa.Integer, sa.ForeignKey("journal_entries.seq"), nullable=False),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_postings_amount_nonzero"),
    )
    op.create_index("ix_postings_entry_seq", "postings", ["entry_seq"])
    op.create_index("ix_postings_account_id", "postings", ["account_id"])
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_ledger_head_single_row"),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}])
    _install_append_only(("journal_entries", "postings"))


def _install_append_only(tables: Sequence[str]) -> None:
    """Triggers <table>_no_update / _no_delete (and _no_truncate on PostgreSQL), as in revision 0001.

    They stop accidents; the log's leaves and signed checkpoints detect anyone who drops them first.
    """
    postgres = op.get_context().dialect.name == "postgresql"
    for table in tables:
        for operation in ("UPDATE", "DELETE"):
            if postgres:
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
                )
            else:
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
                )
        if postgres:
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
            )
