"""Mutual aid: operators, plan versions, memberships, claims and their steps, jury, periods and charges;
operator staff roles (operator_admin, assessor, reviewer) scoped by users.operator_code, and the member role.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = ("admin", "caseworker", "analyst", "family")
NEW_ROLES = (*OLD_ROLES, "operator_admin", "assessor", "reviewer", "member")
OLD_COLUMNS = ("id", "username", "password_hash", "role", "display_name", "created_at", "active", "failed_logins",
               "locked_until", "password_changed_at")


def _role_check(roles: tuple[str, ...]) -> str:
    return "role IN (" + ", ".join(f"'{role}'" for role in roles) + ")"


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _user_columns(new: bool) -> list[sa.Column]:
    columns = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        _timestamp("created_at"),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        _timestamp("locked_until", nullable=True),
        _timestamp("password_changed_at"),
    ]
    if new:
        columns.append(sa.Column("operator_code", sa.String(64), nullable=True))
    return columns


def upgrade() -> None:
    if _is_sqlite():
        _rebuild_users_on_sqlite(new=True, copy=", ".join(OLD_COLUMNS) + ", NULL")
    else:
        op.add_column("users", sa.Column("operator_code", sa.String(64), nullable=True))
        op.drop_constraint("ck_users_role", "users", type_="check")
        op.create_check_constraint("ck_users_role", "users", _role_check(NEW_ROLES))
    op.create_table(
        "ma_operators",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.UniqueConstraint("code", name="uq_ma_operators_code"),
        sa.CheckConstraint("kind IN ('online', 'union', 'village')", name="ck_ma_operators_kind"),
    )
    op.create_table(
        "ma_plan_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_code", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("operator_code", sa.String(64), sa.ForeignKey("ma_operators.code"), nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        _timestamp("loaded_at"),
        sa.UniqueConstraint("plan_code", "version", name="uq_ma_plan_versions_code_version"),
    )
    op.create_table(
        "ma_memberships",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_code", sa.String(64), nullable=False),
        sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("shares", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _timestamp("joined_at"),
        sa.Column("protected_from", sa.Date, nullable=False),
        _timestamp("status_changed_at"),
        _timestamp("left_at", nullable=True),
        sa.Column("declaration", sa.JSON, nullable=False),
        sa.Column("account_code", sa.String(64), nullable=False),
        sa.CheckConstraint("status IN ('waiting', 'protected', 'suspended', 'removed', 'withdrawn')",
                           name="ck_ma_memberships_status"),
        sa.CheckConstraint("tier IN ('standard', 'entry')", name="ck_ma_memberships_tier"),
        sa.CheckConstraint("shares BETWEEN 1 AND 5", name="ck_ma_memberships_shares"),
    )
    op.create_index("ix_ma_memberships_plan_status", "ma_memberships", ["plan_code", "status"])
    op.create_index("ix_ma_memberships_person", "ma_memberships", ["person_id"])
    op.create_table(
        "ma_periods",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_code", sa.String(64), nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        _timestamp("cutoff_at"),
        sa.Column("charge_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *[sa.Column(name, sa.Integer if name in ("cases", "members") else sa.BigInteger, nullable=False)
          for name in ("cases", "payouts", "fee", "surplus_in", "amount_to_collect", "members", "share",
                       "max_charge", "charged", "surplus_out", "uncovered")],
        sa.Column("entry_seq", sa.BigInteger, nullable=True),
        _timestamp("apportioned_at", nullable=True),
        sa.UniqueConstraint("plan_code", "number", name="uq_ma_periods_plan_number"),
        sa.CheckConstraint("status IN ('open', 'apportioned', 'collected')", name="ck_ma_periods_status"),
    )
    op.create_table(
        "ma_claims",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_code", sa.String(64), nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("membership_id", sa.Integer, sa.ForeignKey("ma_memberships.id"), nullable=False),
        sa.Column("episode_id", sa.Integer, sa.ForeignKey("episodes.id"), nullable=False),
        sa.Column("disease_group", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount_assessed", sa.BigInteger, nullable=False),
        sa.Column("amount_approved", sa.BigInteger, nullable=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("investigation", sa.JSON, nullable=True),
        _timestamp("filed_at"),
        sa.Column("filed_by", sa.String(100), nullable=False),
        _timestamp("decided_at", nullable=True),
        sa.Column("notice_until", sa.Date, nullable=True),
        sa.Column("period_id", sa.Integer, sa.ForeignKey("ma_periods.id"), nullable=True),
        sa.Column("coverage_id", sa.Integer, sa.ForeignKey("coverage.id"), nullable=True),
        sa.Column("payout_entry_seq", sa.BigInteger, nullable=True),
        sa.CheckConstraint(
            "status IN ('filed', 'first_review', 'investigating', 're_review', 'rejected', 'disputed', 'jury', "
            "'approved', 'noticed', 'paid', 'closed')", name="ck_ma_claims_status"),
        sa.CheckConstraint("amount_approved IS NULL OR amount_approved >= 0", name="ck_ma_claims_amount"),
    )
    op.create_index("ix_ma_claims_membership", "ma_claims", ["membership_id"])
    op.create_index("ix_ma_claims_plan_status", "ma_claims", ["plan_code", "status"])
    op.create_index("ix_ma_claims_episode", "ma_claims", ["episode_id"])
    op.create_table(
        "ma_claim_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("claim_id", sa.Integer, sa.ForeignKey("ma_claims.id"), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        _timestamp("at"),
    )
    op.create_index("ix_ma_claim_steps_claim", "ma_claim_steps", ["claim_id"])
    op.create_table(
        "ma_jurors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("plan_code", sa.String(64), nullable=False),
        sa.Column("membership_id", sa.Integer, sa.ForeignKey("ma_memberships.id"), nullable=False),
        _timestamp("qualified_at"),
        sa.Column("quiz_score", sa.SmallInteger, nullable=False),
        sa.UniqueConstraint("user_id", "plan_code", name="uq_ma_jurors_user_plan"),
    )
    op.create_table(
        "ma_jury_cases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("claim_id", sa.Integer, sa.ForeignKey("ma_claims.id"), nullable=False),
        sa.Column("plan_code", sa.String(64), nullable=False),
        sa.Column("brief", sa.JSON, nullable=False),
        sa.Column("quorum", sa.Integer, nullable=False),
        _timestamp("opened_at"),
        _timestamp("closes_at"),
        sa.Column("outcome", sa.String(16), nullable=True),
        _timestamp("decided_at", nullable=True),
        sa.UniqueConstraint("claim_id", name="uq_ma_jury_cases_claim"),
    )
    op.create_table(
        "ma_jury_votes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("ma_jury_cases.id"), nullable=False),
        sa.Column("juror_id", sa.Integer, sa.ForeignKey("ma_jurors.id"), nullable=False),
        sa.Column("supports", sa.Boolean, nullable=False),
        _timestamp("cast_at"),
        sa.UniqueConstraint("case_id", "juror_id", name="uq_ma_jury_votes_case_juror"),
    )
    op.create_table(
        "ma_charges",
        sa.Column("period_id", sa.Integer, primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("membership_id", sa.Integer, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.SmallInteger, nullable=False),
        sa.Column("channel_ref", sa.String(64), nullable=True),
        _timestamp("first_failed_at", nullable=True),
        _timestamp("updated_at", nullable=True),
        sa.CheckConstraint("status IN ('pending', 'paid', 'retrying', 'failed')", name="ck_ma_charges_status"),
        sa.CheckConstraint("amount > 0", name="ck_ma_charges_amount"),
    )
    op.create_index("ix_ma_charges_membership", "ma_charges", ["membership_id"])


def downgrade() -> None:
    for table in ("ma_charges", "ma_jury_votes", "ma_jury_cases", "ma_jurors", "ma_claim_steps", "ma_claims",
                  "ma_periods", "ma_memberships", "ma_plan_versions", "ma_operators"):
        op.drop_table(table)
    if _is_sqlite():
        _rebuild_users_on_sqlite(new=False, copy=", ".join(OLD_COLUMNS))
    else:
        op.drop_constraint("ck_users_role", "users", type_="check")
        op.create_check_constraint("ck_users_role", "users", _role_check(OLD_ROLES))
        op.drop_column("users", "operator_code")


def _rebuild_users_on_sqlite(*, new: bool, copy: str) -> None:
    """SQLite cannot alter a CHECK: the table is rebuilt as in revision 0003 (which explains the steps)."""
    op.execute("UPDATE users SET id = id WHERE 1 = 0")
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE _users_rows AS SELECT * FROM users")
    op.create_table(
        "_users_new",
        *_user_columns(new),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint(_role_check(NEW_ROLES if new else OLD_ROLES), name="ck_users_role"),
    )
    op.drop_table("users")
    op.rename_table("_users_new", "users")
    target = ", ".join(column.name for column in _user_columns(new))
    op.execute(f"INSERT INTO users ({target}) SELECT {copy} FROM _users_rows")
    op.drop_table("_users_rows")


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"
