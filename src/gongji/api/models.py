"""User accounts (staff and self-service), the regions staff work in, and bearer tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gongji.core.db import Base
from gongji.core.persistence import UTCDateTime, utcnow

#: Staff roles: admin configures and manages users; caseworker (审核员) verifies and decides; analyst reads and
#: exports. Operator staff — operator_admin (运营方管理员), assessor (公估/调查员), reviewer (审核员) — work for one
#: mutual-aid operator (`User.operator_code`) and see only its plans.
ROLES = ("admin", "caseworker", "analyst", "operator_admin", "assessor", "reviewer")
OPERATOR_ROLES = ("operator_admin", "assessor", "reviewer")
#: Self-service roles, acting for themselves only: family (患者家属) of a patient, member (互助会员, who may also
#: qualify as a juror). They carry no regions.
SELF_SERVICE_ROLES = ("family", "member")
ALL_ROLES = ROLES + SELF_SERVICE_ROLES
#: The region code (GB/T 2260 style) that stands for the whole country (全国).
NATIONWIDE = "000000"


def _role_check() -> str:
    return "role IN (" + ", ".join(f"'{role}'" for role in ALL_ROLES) + ")"


class UserRegion(Base):
    """One region (6-digit GB/T 2260 code) a staff member works in; "000000" is the whole country."""

    __tablename__ = "user_regions"
    __table_args__ = (CheckConstraint("length(region) = 6", name="ck_user_regions_region"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    region: Mapped[str] = mapped_column(String(6), primary_key=True)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username", name="uq_users_username"),
        CheckConstraint(_role_check(), name="ck_users_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Wrong passwords since the last successful login or unlock (连续登录失败次数).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Logins are refused until then (临时锁定); None or past means not locked.
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The mutual-aid operator an operator-staff user works for; null for everyone else.
    operator_code: Mapped[str | None] = mapped_column(String(64), nullable=True)

    region_rows: Mapped[list[UserRegion]] = relationship(
        order_by=UserRegion.region, lazy="selectin", cascade="all, delete-orphan"
    )

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(row.region for row in self.region_rows)

    def locked_at(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256 so a leaked table grants nothing."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        Index("ix_api_tokens_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class IdempotencyRecord(Base):
    """The first answer to a creating request, kept under the caller's `Idempotency-Key` for replay.

    Inserted before the work and completed (status, response) in the same transaction, so a
    committed row always carries its response and a rolled-back request leaves no row.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(255))
    #: SHA-256 (hex) of the request body, to tell a true retry from a reused key.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
