"""Persistence helpers shared by every context: UTC timestamps and row locks that work on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from sqlalchemy import DateTime, select, update
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

Model = TypeVar("Model")


#: China Standard Time has no daylight saving, so a fixed offset is exact.
CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "CST")


def utcnow() -> dt.datetime:
    """The current instant, timezone-aware in UTC (the only kind of timestamp we store)."""
    return dt.datetime.now(dt.UTC)


def china_day(instant: dt.datetime) -> dt.date:
    """The calendar day in China at `instant`: the day waiting periods, notices and plan calendars count in."""
    return instant.astimezone(CHINA_TIME).date()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that always comes back timezone-aware in UTC, on SQLite and PostgreSQL alike.

    SQLite has no time zones, so the value is stored there as naive UTC; PostgreSQL
    stores ``timestamptz``. Returning the same aware value on both keeps the ledger's
    hashes (which include ``posted_at``) identical whichever database holds them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def lock_row(session: Session, model: type[Model], key: object) -> Model | None:
    """Fetch one row locked until the transaction ends, so read-check-write steps cannot interleave.

    PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite has no row locks, and pysqlite only
    begins a transaction at the first write, so a no-op UPDATE of the row first takes the
    database write lock; everything read after it is current until commit.
    """
    primary_key = model.__mapper__.primary_key[0]
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(model.__table__).where(primary_key == key).values({primary_key: primary_key}))
    return session.execute(
        select(model).where(primary_key == key).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
