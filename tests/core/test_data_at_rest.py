"""Personal data at rest: var/ (embedded database, its -wal/-shm, keys, demo passwords) is owner-only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gongji.api.app import create_app
from gongji.core.settings import Settings


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """The usual umask 022 would leave new files readable by everyone unless we say otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(var: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(var.stat().st_mode))}
    found.update({file.name: oct(stat.S_IMODE(file.stat().st_mode)) for file in var.iterdir()})
    return found


def start_and_write(var: Path) -> dict[str, str]:
    """Start the app on `var`, write through its engine and report the modes while the connection is open."""
    settings = Settings(database_url=f"sqlite:///{var / 'gongji.sqlite3'}", var_dir=var, params_dir=None)
    engine = create_app(settings).state.gongji.engine
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE IF NOT EXISTS at_rest_probe (x INTEGER)"))
            connection.execute(text("INSERT INTO at_rest_probe VALUES (1)"))
            connection.commit()
            return modes(var)
    finally:
        engine.dispose()


def test_a_new_var_folder_and_all_its_files_are_owner_only(tmp_path, wide_umask):
    var = tmp_path / "var"
    found = start_and_write(var)
    assert {"gongji.sqlite3", "gongji.sqlite3-wal", "gongji.sqlite3-shm", "keys.json"} <= set(found)
    assert found == {".": "0o700", **{name: "0o600" for name in found if name != "."}}


def test_modes_left_wider_by_earlier_versions_are_narrowed_at_start(tmp_path, wide_umask):
    var = tmp_path / "var"
    start_and_write(var)
    (var / "demo-credentials.txt").write_text("admin\tadmin\tsecret\n")
    for file in var.iterdir():
        file.chmod(0o644)
    var.chmod(0o755)
    found = start_and_write(var)
    assert {"gongji.sqlite3", "gongji.sqlite3-wal", "keys.json", "demo-credentials.txt"} <= set(found)
    assert found == {".": "0o700", **{name: "0o600" for name in found if name != "."}}
