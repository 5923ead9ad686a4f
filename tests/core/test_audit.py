from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from gongji.core.audit import AuditLog, record_audit
from gongji.core.db import transaction


def test_record_audit_writes_in_the_callers_transaction(sessions):
    with sessions() as session, session.begin():
        row = record_audit(session, "alice", "thing.create", "thing", 7, {"note": "第一"})
        assert row.id is not None
    with sessions() as session:
        stored = session.scalars(select(AuditLog)).one()
        assert (stored.actor, stored.action, stored.entity, stored.entity_id) == ("alice", "thing.create", "thing", "7")
        assert stored.detail == {"note": "第一"}
        assert stored.at.tzinfo == dt.UTC


def test_record_audit_rolls_back_with_the_caller(sessions):
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        record_audit(session, "alice", "thing.create", "thing", 1, {})
        raise RuntimeError("the change itself failed")
    with sessions() as session:
        assert session.scalars(select(AuditLog)).all() == []
