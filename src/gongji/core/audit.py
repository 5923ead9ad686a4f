"""The audit log (审计日志): one row for every state change, written in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from gongji.core.db import Base
from gongji.core.persistence import UTCDateTime, utcnow


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


def record_audit(
    session: Session, actor: str, action: str, entity: str, entity_id: object, detail: dict[str, Any]
) -> AuditLog:
    """Add an audit row to the caller's transaction, so it commits or rolls back with the change.

    `detail` must never carry a raw ID number or name: use the masked forms.
    """
    row = AuditLog(actor=actor, action=action, entity=entity, entity_id=str(entity_id), detail=detail)
    session.add(row)
    session.flush()
    return row
