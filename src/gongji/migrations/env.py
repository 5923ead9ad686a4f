"""Alembic environment: the URL comes from ``sqlalchemy.url`` or a connection passed in
``config.attributes["connection"]`` (so tests and the app can migrate inside their own connection)."""

from __future__ import annotations

from alembic import context

from gongji.core.db import make_engine
from gongji.migrations import load_metadata

config = context.config
target_metadata = load_metadata()


def run_migrations_offline() -> None:
    """Emit SQL for a DBA to review (``alembic upgrade head --sql``)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:
    # render_as_batch lets later ALTERs work on SQLite, which can only rebuild tables.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
