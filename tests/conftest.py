"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests create a throw-away database ``gongji_test_<random>`` on the
server at GONGJI_TEST_PG_URL and drop it afterwards. If the server is not
reachable they skip, or fail when GONGJI_STRICT=1.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from gongji.core.db import make_engine, migrate, normalise_url, session_factory
from gongji.core.identity import IdentityVault

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the maintenance database, for CREATE/DROP DATABASE."""
    url = normalise_url(os.environ.get("GONGJI_TEST_PG_URL", DEFAULT_PG_URL))
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any connection failure means the same thing here
        engine.dispose()
        message = f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {error}"
        if os.environ.get("GONGJI_STRICT") == "1":
            pytest.fail(f"{message} (GONGJI_STRICT=1)")
        pytest.skip("PostgreSQL not reachable (set GONGJI_STRICT=1 to fail instead)")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of a fresh, empty database: a temp SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gongji.sqlite3'}"
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    name = f"gongji_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the fresh database, migrated to the latest schema."""
    migrate(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def vault() -> IdentityVault:
    """A vault with fixed test keys (never used outside tests)."""
    return IdentityVault(bytes(range(32)), b"gongji-test-person-key-secret")


@pytest.fixture
def app(db_url: str, tmp_path):
    """The application on the fresh database (a module may override it to seed or to change settings)."""
    from gongji.api.app import create_app
    from gongji.core.settings import Settings

    return create_app(Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None))


@pytest.fixture
def client(app) -> Iterator:
    """An HTTP client on `app`, with its start-up and shut-down (lifespan) run."""
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client
