"""The hand-written migration must produce exactly the schema the models declare, on both databases."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from gongji.core.db import alembic_config, make_engine
from gongji.migrations import load_metadata


def test_migration_matches_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, load_metadata()) == []


def test_downgrade_and_upgrade_again(db_url, engine):
    config = alembic_config(db_url)
    command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert "journal_entries" in inspect(engine).get_table_names()


def test_migrates_inside_a_given_connection(db_url):
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        assert "ledger_leaves" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite:///unused.sqlite3", "postgresql://nobody@unused/unused"])
def test_offline_mode_renders_sql_for_review(url, capsys):
    command.upgrade(alembic_config(url), "head", sql=True)
    script = capsys.readouterr().out
    assert "CREATE TABLE journal_entries" in script
    assert "journal_entries_no_update" in script
    assert "CREATE TABLE ledger_checkpoints" in script
