"""Mutual aid (医疗互助): operators, versioned plans, memberships, claims, jury, periods and charges.

Plans are data (YAML under `gongji/data/mutual_aid/`, validated by
`plans.PlanSpec`); each version is kept as a row so a claim or a period is
always judged under the version in force at its date. Money is integer fen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gongji.core.db import Base
from gongji.core.persistence import UTCDateTime, utcnow

OPERATOR_KINDS = ("online", "union", "village")
#: 等待期 → 保障中 → 暂停（扣款失败，重试期内）→ 移出 / 主动退出
MEMBERSHIP_STATUSES = ("waiting", "protected", "suspended", "removed", "withdrawn")
TIERS = ("standard", "entry")
#: 报案 → 初审 → 公估调查 → 复审 → 决定; a rejection may be disputed and go to the member jury (评审团);
#: approved cases are publicly noticed (公示), then apportioned and paid.
CLAIM_STATUSES = (
    "filed", "first_review", "investigating", "re_review", "rejected", "disputed", "jury",
    "approved", "noticed", "paid", "closed",
)
PERIOD_STATUSES = ("open", "apportioned", "collected")
CHARGE_STATUSES = ("pending", "paid", "retrying", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


class Operator(Base):
    """An operator of plans: an online platform, a union branch (工会) or a village committee (村委会)."""

    __tablename__ = "ma_operators"
    __table_args__ = (
        UniqueConstraint("code", name="uq_ma_operators_code"),
        CheckConstraint(_in("kind", OPERATOR_KINDS), name="ck_ma_operators_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(6))


class PlanVersion(Base):
    """One version of a plan as its file wrote it (validated by plans.PlanSpec on load), in force from `effective_from`."""

    __tablename__ = "ma_plan_versions"
    __table_args__ = (UniqueConstraint("plan_code", "version", name="uq_ma_plan_versions_code_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    operator_code: Mapped[str] = mapped_column(ForeignKey("ma_operators.code"))
    effective_from: Mapped[dt.date] = mapped_column(Date)
    spec: Mapped[Any] = mapped_column(JSON)
    #: SHA-256 of the source's canonical JSON: loading the same file twice adds nothing; a change needs a new version.
    digest: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Membership(Base):
    """One person in one plan (会员), joined by a member account for themselves or family."""

    __tablename__ = "ma_memberships"
    __table_args__ = (
        CheckConstraint(_in("status", MEMBERSHIP_STATUSES), name="ck_ma_memberships_status"),
        CheckConstraint(_in("tier", TIERS), name="ck_ma_memberships_tier"),
        CheckConstraint("shares BETWEEN 1 AND 5", name="ck_ma_memberships_shares"),
        Index("ix_ma_memberships_plan_status", "plan_code", "status"),
        Index("ix_ma_memberships_person", "person_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_code: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    #: The member account that joined them (self or family); null for members loaded in bulk by an operator.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    tier: Mapped[str] = mapped_column(String(16))
    #: Union plans sell up to 5 shares (份); others have 1.
    shares: Mapped[int] = mapped_column(SmallInteger, default=1)
    status: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Protection starts here (joined + the plan's general waiting period); disease groups may wait longer.
    protected_from: Mapped[dt.date] = mapped_column(Date)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The health declaration (健康告知) as answered: {question id: bool}.
    declaration: Mapped[Any] = mapped_column(JSON)
    #: The ledger account of this member's apportionment charges (应收分摊).
    account_code: Mapped[str] = mapped_column(String(64))


class Claim(Base):
    """A claim (互助金申请) against one spine episode, with its numbered reasons and the amount decided."""

    __tablename__ = "ma_claims"
    __table_args__ = (
        CheckConstraint(_in("status", CLAIM_STATUSES), name="ck_ma_claims_status"),
        CheckConstraint("amount_approved IS NULL OR amount_approved >= 0", name="ck_ma_claims_amount"),
        Index("ix_ma_claims_membership", "membership_id"),
        Index("ix_ma_claims_plan_status", "plan_code", "status"),
        Index("ix_ma_claims_episode", "episode_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_code: Mapped[str] = mapped_column(String(64))
    plan_version: Mapped[int] = mapped_column(Integer)
    membership_id: Mapped[int] = mapped_column(ForeignKey("ma_memberships.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    disease_group: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    #: What the rules would pay (fen), computed at filing and again at decision.
    amount_assessed: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_approved: Mapped[int | None] = mapped_column(BigInteger)
    #: Numbered eligibility findings: [{"code": "R3", "reason": "..."}]; empty when eligible.
    reasons: Mapped[Any] = mapped_column(JSON)
    #: The assessor's (公估) investigation record: {"assessor", "summary", "findings", "at"}.
    investigation: Mapped[Any | None] = mapped_column(JSON)
    filed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    filed_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    notice_until: Mapped[dt.date | None] = mapped_column(Date)
    period_id: Mapped[int | None] = mapped_column(ForeignKey("ma_periods.id"))
    coverage_id: Mapped[int | None] = mapped_column(ForeignKey("coverage.id"))
    payout_entry_seq: Mapped[int | None] = mapped_column(BigInteger)


class ClaimStep(Base):
    """One step of a claim's review (初审, 公估, 复审, 决定, 评审团), in order, with who took it and why."""

    __tablename__ = "ma_claim_steps"
    __table_args__ = (Index("ix_ma_claim_steps_claim", "claim_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("ma_claims.id"))
    step: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Juror(Base):
    """A member account qualified for one plan's jury (评审团): adult, paying, joined ≥ N days, passed the quiz."""

    __tablename__ = "ma_jurors"
    __table_args__ = (UniqueConstraint("user_id", "plan_code", name="uq_ma_jurors_user_plan"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    plan_code: Mapped[str] = mapped_column(String(64))
    membership_id: Mapped[int] = mapped_column(ForeignKey("ma_memberships.id"))
    qualified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    quiz_score: Mapped[int] = mapped_column(SmallInteger)


class JuryCase(Base):
    """A disputed rejection put to the jury: a brief with masked identity, a quorum, and the outcome once decided."""

    __tablename__ = "ma_jury_cases"
    __table_args__ = (UniqueConstraint("claim_id", name="uq_ma_jury_cases_claim"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("ma_claims.id"))
    plan_code: Mapped[str] = mapped_column(String(64))
    brief: Mapped[Any] = mapped_column(JSON)
    quorum: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: null while open; "approved" or "rejected" once decided.
    outcome: Mapped[str | None] = mapped_column(String(16))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class JuryVote(Base):
    """One juror's one vote on one case."""

    __tablename__ = "ma_jury_votes"
    __table_args__ = (UniqueConstraint("case_id", "juror_id", name="uq_ma_jury_votes_case_juror"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("ma_jury_cases.id"))
    juror_id: Mapped[int] = mapped_column(ForeignKey("ma_jurors.id"))
    supports: Mapped[bool] = mapped_column(Boolean)
    cast_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Period(Base):
    """One apportionment period (分摊期) of a post-event plan, with its public statement figures once apportioned."""

    __tablename__ = "ma_periods"
    __table_args__ = (
        UniqueConstraint("plan_code", "number", name="uq_ma_periods_plan_number"),
        CheckConstraint(_in("status", PERIOD_STATUSES), name="ck_ma_periods_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_code: Mapped[str] = mapped_column(String(64))
    plan_version: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    #: Members protected at this instant (0:00 of the announcement day) share the period.
    cutoff_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    charge_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    cases: Mapped[int] = mapped_column(Integer, default=0)
    payouts: Mapped[int] = mapped_column(BigInteger, default=0)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    surplus_in: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_to_collect: Mapped[int] = mapped_column(BigInteger, default=0)
    members: Mapped[int] = mapped_column(Integer, default=0)
    #: The equal share before caps (fen; rounded up under the round-up rule).
    share: Mapped[int] = mapped_column(BigInteger, default=0)
    max_charge: Mapped[int] = mapped_column(BigInteger, default=0)
    charged: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Round-up excess (不足1分按1分) carried to the next period.
    surplus_out: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What the caps left uncollected; carried or taken off payouts, as the plan says.
    uncovered: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_seq: Mapped[int | None] = mapped_column(BigInteger)
    apportioned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Charge(Base):
    """One member's charge for one period; line `line_no` of the period's bulk ledger entry."""

    __tablename__ = "ma_charges"
    __table_args__ = (
        CheckConstraint(_in("status", CHARGE_STATUSES), name="ck_ma_charges_status"),
        CheckConstraint("amount > 0", name="ck_ma_charges_amount"),
        Index("ix_ma_charges_membership", "membership_id"),
    )

    #: No foreign keys here: a period's millions of rows are written by one INSERT … SELECT from ma_memberships
    #: while `apportion` holds that period's row locked, and a per-row key check would cost more than the write.
    period_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    membership_id: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    channel_ref: Mapped[str | None] = mapped_column(String(64))
    #: When collecting it first failed: the plan's retry window (funding.retry_days) runs from here.
    first_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
