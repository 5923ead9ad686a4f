"""Bulk entries (their lines and the stored part of their lines subtree) and public accounts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

A bulk entry's lines go to `ledger_bulk_lines` by COPY, without a foreign key
per row (each one's check would cost more than writing the line); the posting
checks all account codes in one query instead, and from here on an account
can be neither deleted nor given another code, so that check stays true.
`ledger_line_nodes` keeps the full nodes of each lines subtree from level 8
up (tiles of 256 lines); lower levels are recomputed from the lines. The
lines are indexed by (entry, account), so a new period only appends to the
index, and a partial index lists the few bulk entries among all entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("ledger_bulk_lines", "ledger_line_nodes")
#: Bulk lines name their account by code without a foreign key: the account must stay, under its code.
ACCOUNT_TRIGGERS = (
    ("accounts_no_delete", "DELETE", None),
    ("accounts_code_permanent", "UPDATE OF code", "OLD.code <> NEW.code"),
)


def _postgres() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    op.add_column("accounts", sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "ledger_bulk_lines",
        sa.Column("entry_seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("account_code", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_bulk_lines_amount_nonzero"),
    )
    op.create_index("ix_ledger_bulk_lines_entry_account", "ledger_bulk_lines", ["entry_seq", "account_code"])
    op.create_index(
        "ix_journal_entries_bulk", "journal_entries", ["seq"],
        postgresql_where=sa.text("lines_root IS NOT NULL"), sqlite_where=sa.text("lines_root IS NOT NULL"),
    )
    op.create_table(
        "ledger_line_nodes",
        sa.Column("entry_seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    postgres = _postgres()
    for table in APPEND_ONLY:
        for operation in ("UPDATE", "DELETE"):
            _refuse(table, f"{table}_no_{operation.lower()}", operation, postgres)
        if postgres:
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
            )
    if postgres:
        op.execute(
            """
            CREATE FUNCTION ledger_account_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'accounts are never deleted and keep their code: % refused', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END;
            $$
            """
        )
    for name, event, when in ACCOUNT_TRIGGERS:
        _refuse("accounts", name, event, postgres, when=when, function="ledger_account_permanent",
                message="accounts are never deleted and keep their code")


def downgrade() -> None:
    postgres = _postgres()
    for name, _event, _when in ACCOUNT_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}" + (" ON accounts" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION ledger_account_permanent()")
    op.drop_table("ledger_line_nodes")
    op.drop_index("ix_journal_entries_bulk", table_name="journal_entries")
    op.drop_index("ix_ledger_bulk_lines_entry_account", table_name="ledger_bulk_lines")
    op.drop_table("ledger_bulk_lines")
    op.drop_column("accounts", "public")


def _refuse(
    table: str,
    name: str,
    event: str,
    postgres: bool,
    *,
    when: str | None = None,
    function: str = "ledger_append_only",
    message: str | None = None,
) -> None:
    """A row trigger refusing `event` on `table`, like the append-only triggers of 0006."""
    operation = event.split()[0]
    if postgres:
        condition = f" WHEN ({when})" if when else ""
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW{condition} EXECUTE FUNCTION {function}()"
        )
    else:
        condition = f" WHEN {when}" if when else ""
        text = message or f"{table} is append-only"
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW{condition} "
            f"BEGIN SELECT RAISE(ABORT, '{text}: {operation} refused'); END"
        )
