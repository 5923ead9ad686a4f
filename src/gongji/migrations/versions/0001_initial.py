"""Initial schema: audit log, ledger (append-only), persons, episodes, coverage, users, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64
APPEND_ONLY_TABLES = ("journal_entries", "postings")


def _timestamp(name: str) -> sa.Column:
    """Stored as timestamptz on PostgreSQL and naive UTC on SQLite (see core.persistence.UTCDateTime)."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        _timestamp("at"),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_entity", "audit_log", ["entity", "entity_id"])

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _timestamp("created_at"),
        sa.UniqueConstraint("code", name="uq_accounts_code"),
        sa.CheckConstraint("kind IN ('asset', 'liability', 'income', 'expense', 'equity')", name="ck_accounts_kind"),
    )
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
    _install_append_only()

    op.create_table(
        "persons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_key", sa.String(64), nullable=False),
        sa.Column("id_number_enc", sa.Text, nullable=False),
        sa.Column("name_enc", sa.Text, nullable=False),
        sa.Column("masked_id", sa.String(18), nullable=False),
        sa.Column("masked_name", sa.String(64), nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("sex", sa.String(1), nullable=False),
        sa.Column("scheme", sa.String(16), nullable=False),
        sa.Column("assistance_category", sa.String(24), nullable=False),
        sa.Column("inclusive_enrolled", sa.Boolean, nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        _timestamp("created_at"),
        sa.UniqueConstraint("person_key", name="uq_persons_person_key"),
        sa.CheckConstraint("sex IN ('M', 'F')", name="ck_persons_sex"),
    )
    op.create_table(
        "episodes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("admission_date", sa.Date, nullable=False),
        sa.Column("discharge_date", sa.Date, nullable=False),
        sa.Column("hospital_level", sa.SmallInteger, nullable=False),
        sa.Column("icd10", sa.String(16), nullable=False),
        sa.Column("class_a", sa.BigInteger, nullable=False),
        sa.Column("class_b", sa.BigInteger, nullable=False),
        sa.Column("out_of_catalogue", sa.BigInteger, nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint("discharge_date >= admission_date", name="ck_episodes_dates"),
        sa.CheckConstraint("hospital_level IN (1, 2, 3)", name="ck_episodes_hospital_level"),
        sa.CheckConstraint("class_a >= 0 AND class_b >= 0 AND out_of_catalogue >= 0", name="ck_episodes_amounts"),
    )
    op.create_index("ix_episodes_person_discharge", "episodes", ["person_id", "discharge_date"])
    op.create_table(
        "coverage",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("episode_id", sa.Integer, sa.ForeignKey("episodes.id"), nullable=False),
        sa.Column("layer", sa.String(32), nullable=False),
        sa.Column("program", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("explanation", sa.JSON, nullable=False),
        _timestamp("recorded_at"),
        sa.Column("recorded_by", sa.String(100), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_coverage_amount_positive"),
    )
    op.create_index("ix_coverage_episode_id", "coverage", ["episode_id"])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        _timestamp("created_at"),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint("role IN ('admin', 'caseworker', 'analyst')", name="ck_users_role"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


def downgrade() -> None:
    # Dropping a table drops its triggers; only the PostgreSQL trigger function is left over.
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("coverage")
    op.drop_table("episodes")
    op.drop_table("persons")
    op.drop_table("ledger_head")
    op.drop_table("postings")
    op.drop_table("journal_entries")
    op.drop_table("accounts")
    op.drop_table("audit_log")
    if _is_postgres():
        op.execute("DROP FUNCTION ledger_append_only()")


def _install_append_only() -> None:
    """Triggers named <table>_no_update / <table>_no_delete (and _no_truncate on PostgreSQL).

    They stop accidents; the hash chain detects anyone who drops them first.
    """
    if _is_postgres():
        op.execute(
            """
            CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END;
            $$
            """
        )
        for table in APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
                )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
            )
        return
    for table in APPEND_ONLY_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
            )


def _is_postgres() -> bool:
    return op.get_context().dialect.name == "postgresql"
