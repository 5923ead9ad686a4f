"""Yearly settlement against what is recorded: settled episodes, coverage adjustments, birth year only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLE_ACTION = "episode.settle_statutory"


def upgrade() -> None:
    with op.batch_alter_table("episodes") as batch:
        batch.add_column(sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("parameter_set", sa.String(64), nullable=True))
    _mark_settled_episodes()

    with op.batch_alter_table("coverage", copy_from=_coverage_0001()) as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="payment"))
        batch.drop_constraint("ck_coverage_amount_positive", type_="check")
        batch.create_check_constraint(
            "ck_coverage_amount", "(kind = 'payment' AND amount > 0) OR (kind = 'adjustment' AND amount <> 0)"
        )

    with op.batch_alter_table("persons", copy_from=_persons_0001()) as batch:
        batch.add_column(sa.Column("birth_year", sa.SmallInteger, nullable=True))
    year = "EXTRACT(YEAR FROM birth_date)" if _is_postgres() else "CAST(strftime('%Y', birth_date) AS INTEGER)"
    op.execute(f"UPDATE persons SET birth_year = {year}")
    with op.batch_alter_table("persons", copy_from=_persons_0001(with_birth_year=True)) as batch:
        batch.alter_column("birth_year", existing_type=sa.SmallInteger, nullable=False)
        batch.drop_column("birth_date")


def downgrade() -> None:
    with op.batch_alter_table("persons") as batch:
        batch.add_column(sa.Column("birth_date", sa.Date, nullable=True))
    # Only the year is kept, so the way back can restore no more than 1 January of it.
    op.execute("UPDATE persons SET birth_date = CAST(CAST(birth_year AS VARCHAR(4)) || '-01-01' AS DATE)")
    with op.batch_alter_table("persons") as batch:
        batch.alter_column("birth_date", existing_type=sa.Date, nullable=False)
        batch.drop_column("birth_year")
    op.execute("DELETE FROM coverage WHERE kind = 'adjustment'")
    with op.batch_alter_table("coverage") as batch:
        batch.drop_constraint("ck_coverage_amount", type_="check")
        batch.create_check_constraint("ck_coverage_amount_positive", "amount > 0")
        batch.drop_column("kind")
    with op.batch_alter_table("episodes") as batch:
        batch.drop_column("parameter_set")
        batch.drop_column("settled_at")


def _mark_settled_episodes() -> None:
    """Episodes settled before this revision are known from the audit log (their first settle action).

    Plain SQL, so `alembic upgrade --sql` renders it for review too.
    """
    parameter_set = "a.detail->>'parameter_set'" if _is_postgres() else "json_extract(a.detail, '$.parameter_set')"
    first_settle = (
        "FROM audit_log a WHERE a.entity = 'episode' AND a.action = '" + SETTLE_ACTION + "'"
        " AND a.entity_id = CAST(episodes.id AS VARCHAR(64))"
    )
    op.execute(
        f"UPDATE episodes SET settled_at = (SELECT MIN(a.at) {first_settle}),"
        f" parameter_set = (SELECT MIN({parameter_set}) {first_settle})"
    )


def _coverage_0001() -> sa.Table:
    """The table as revision 0001 left it, so SQLite's batch rebuild needs no reflection (and works with --sql)."""
    return sa.Table(
        "coverage",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("episode_id", sa.Integer, sa.ForeignKey("episodes.id"), nullable=False),
        sa.Column("layer", sa.String(32), nullable=False),
        sa.Column("program", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("explanation", sa.JSON, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_coverage_amount_positive"),
        sa.Index("ix_coverage_episode_id", "episode_id"),
    )


def _persons_0001(*, with_birth_year: bool = False) -> sa.Table:
    birth_year = [sa.Column("birth_year", sa.SmallInteger, nullable=True)] if with_birth_year else []
    return sa.Table(
        "persons",
        sa.MetaData(),
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
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *birth_year,
        sa.UniqueConstraint("person_key", name="uq_persons_person_key"),
        sa.CheckConstraint("sex IN ('M', 'F')", name="ck_persons_sex"),
    )


def _is_postgres() -> bool:
    return op.get_context().dialect.name == "postgresql"
