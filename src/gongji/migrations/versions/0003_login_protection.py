"""Login protection: failed-login counters, lockouts, password change time; staff regions and the family role.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Downgrade refuses (the old role CHECK fails) while family accounts exist.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = ("admin", "caseworker", "analyst")
NEW_ROLES = (*OLD_ROLES, "family")
OLD_COLUMNS = ("id", "username", "password_hash", "role", "display_name", "created_at", "active")


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
    ]
    if new:
        columns += [
            sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
            _timestamp("locked_until", nullable=True),
            _timestamp("password_changed_at"),
        ]
    return columns


def upgrade() -> None:
    if _is_sqlite():
        _rebuild_users_on_sqlite(new=True, copy=", ".join(OLD_COLUMNS) + ", 0, NULL, created_at")
    else:
        op.add_column("users", sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"))
        op.add_column("users", _timestamp("locked_until", nullable=True))
        op.add_column("users", _timestamp("password_changed_at", nullable=True))
        op.execute("UPDATE users SET password_changed_at = created_at")
        op.alter_column("users", "password_changed_at", nullable=False)
        op.drop_constraint("ck_users_role", "users", type_="check")
        op.create_check_constraint("ck_users_role", "users", _role_check(NEW_ROLES))
    op.create_table(
        "user_regions",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("region", sa.String(6), primary_key=True),
        sa.CheckConstraint("length(region) = 6", name="ck_user_regions_region"),
    )


def downgrade() -> None:
    op.drop_table("user_regions")
    if _is_sqlite():
        _rebuild_users_on_sqlite(new=False, copy=", ".join(OLD_COLUMNS))
    else:
        op.drop_constraint("ck_users_role", "users", type_="check")
        op.create_check_constraint("ck_users_role", "users", _role_check(OLD_ROLES))
        op.drop_column("users", "password_changed_at")
        op.drop_column("users", "locked_until")
        op.drop_column("users", "failed_logins")


def _rebuild_users_on_sqlite(*, new: bool, copy: str) -> None:
    """SQLite cannot alter a CHECK, so the table is rebuilt, keeping its rows and the ids tokens point at.

    Foreign keys are on and cannot be switched off inside a transaction, so checks are deferred to
    commit, and the rows go back in only after the rename: each re-inserted user settles the
    references its DROP left dangling (Alembic's batch copy would insert first and fail). pysqlite
    opens the transaction only at a data change, and the deferral lasts only as long as the
    transaction, hence the no-op UPDATE first.
    """
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
