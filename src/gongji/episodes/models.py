"""Persons, episodes (one hospitalisation, 住院) and the coverage registry (各层支付登记)."""

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


class Person(Base):
    """A patient. The raw ID and name are stored only encrypted; matching uses `person_key` (HMAC)."""

    __tablename__ = "persons"
    __table_args__ = (
        UniqueConstraint("person_key", name="uq_persons_person_key"),
        CheckConstraint("sex IN ('M', 'F')", name="ck_persons_sex"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_key: Mapped[str] = mapped_column(String(64))
    id_number_enc: Mapped[str] = mapped_column(Text)
    name_enc: Mapped[str] = mapped_column(Text)
    masked_id: Mapped[str] = mapped_column(String(18))
    masked_name: Mapped[str] = mapped_column(String(64))
    #: Only the year, for age bands: a full birth date beside the masked ID would narrow it to a few candidates.
    birth_year: Mapped[int] = mapped_column(SmallInteger)
    sex: Mapped[str] = mapped_column(String(1))
    scheme: Mapped[str] = mapped_column(String(16))
    assistance_category: Mapped[str] = mapped_column(String(24))
    inclusive_enrolled: Mapped[bool] = mapped_column(Boolean)
    region: Mapped[str] = mapped_column(String(6))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Episode(Base):
    """One episode of care with its itemised cost in fen: class A (甲类), class B (乙类), out of catalogue (目录外)."""

    __tablename__ = "episodes"
    __table_args__ = (
        CheckConstraint("discharge_date >= admission_date", name="ck_episodes_dates"),
        CheckConstraint("hospital_level IN (1, 2, 3)", name="ck_episodes_hospital_level"),
        CheckConstraint("class_a >= 0 AND class_b >= 0 AND out_of_catalogue >= 0", name="ck_episodes_amounts"),
        Index("ix_episodes_person_discharge", "person_id", "discharge_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    admission_date: Mapped[dt.date] = mapped_column(Date)
    discharge_date: Mapped[dt.date] = mapped_column(Date)
    hospital_level: Mapped[int] = mapped_column(SmallInteger)
    icd10: Mapped[str] = mapped_column(String(16))
    class_a: Mapped[int] = mapped_column(BigInteger)
    class_b: Mapped[int] = mapped_column(BigInteger)
    out_of_catalogue: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the statutory layers were settled, and under which parameter set; null until then.
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    parameter_set: Mapped[str | None] = mapped_column(String(64))

    @property
    def total(self) -> int:
        """The whole bill in fen; never stored, so it cannot drift from its parts."""
        return self.class_a + self.class_b + self.out_of_catalogue


#: A payment is positive; an adjustment (from re-settling a year) corrects earlier payments either way.
COVERAGE_KINDS = ("payment", "adjustment")


class Coverage(Base):
    """One payment (or audited adjustment) by one layer towards one episode, with the rule trace behind it."""

    __tablename__ = "coverage"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'payment' AND amount > 0) OR (kind = 'adjustment' AND amount <> 0)", name="ck_coverage_amount"
        ),
        Index("ix_coverage_episode_id", "episode_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    kind: Mapped[str] = mapped_column(String(16), default="payment", server_default="payment")
    layer: Mapped[str] = mapped_column(String(32))
    program: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    explanation: Mapped[Any] = mapped_column(JSON)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[str | None] = mapped_column(String(100))


class PersonAccount(Base):
    """A self-service account (患者家属) linked to a person it may see, after the ID and name were verified."""

    __tablename__ = "person_accounts"
    __table_args__ = (
        UniqueConstraint("user_id", "person_id", name="uq_person_accounts_user_person"),
        Index("ix_person_accounts_person_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    relationship: Mapped[str] = mapped_column(String(16))
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
