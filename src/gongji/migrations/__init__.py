"""Alembic migrations, one set for SQLite and PostgreSQL (script_location ``gongji:migrations``)."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from gongji.core.db import Base

#: Every module that defines tables; add a context's models here when it gains tables.
MODEL_MODULES = (
    "gongji.core.audit",
    "gongji.ledger.models",
    "gongji.episodes.models",
    "gongji.api.models",
    "gongji.mutual_aid.models",
)


def load_metadata() -> MetaData:
    """Import every model module so Base.metadata holds the complete schema."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
