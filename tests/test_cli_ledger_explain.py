"""The real `gongji` command: `ledger verify` catches a hand-edited entry; `explain` prints every layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from gongji.core.db import transaction
from gongji.ledger.service import open_account, post_entry

GONGJI = str(Path(sys.executable).with_name("gongji"))


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GONGJI, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd, timeout=120,
    )


def test_ledger_sequence_checkpoint_and_verify_since(db_url, sessions, tmp_path):
    """`ledger sequence` logs the entries, `checkpoint` prints the signed note a donor keeps, and `verify
    --since` catches the tail removed afterwards even when the database's own checkpoints are gone."""
    with transaction(sessions) as session:
        open_account(session, "bank", "银行存款 bank", "asset")
        open_account(session, "campaign:7", "筹款 campaign 7", "liability")
        for fen in (10_000, 25_050, 990, 4_000):
            post_entry(session, "donation", "捐款 donation", "campaign:7", [("bank", fen), ("campaign:7", -fen)])
    env = {"GONGJI_DATABASE_URL": db_url, "GONGJI_VAR_DIR": str(tmp_path / "var")}

    sequenced = run_cli("ledger", "sequence", env=env)
    assert sequenced.returncode == 0, sequenced.stderr
    assert "sequenced 4 leaves" in sequenced.stdout
    note = run_cli("ledger", "checkpoint", env=env)
    assert note.returncode == 0 and note.stdout.splitlines()[1] == "4"
    saved = tmp_path / "checkpoint.txt"
    saved.write_text(note.stdout, encoding="utf-8")
    intact = run_cli("ledger", "verify", "--since", str(saved), env=env)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "ledger intact" in intact.stdout and "4 leaves" in intact.stdout

    with transaction(sessions) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        for table in ("journal_entries", "postings", "ledger_leaves", "ledger_checkpoints", "ledger_nodes"):
            session.execute(text(f"DROP TRIGGER {table}_no_delete" + (f" ON {table}" if postgres else "")))
        session.execute(text("DELETE FROM ledger_checkpoints"))
        session.execute(text("DELETE FROM ledger_nodes"))
        session.execute(text("DELETE FROM ledger_leaves WHERE leaf_index >= 2"))
        session.execute(text("DELETE FROM postings WHERE entry_seq > 2"))
        session.execute(text("DELETE FROM journal_entries WHERE seq > 2"))
    tampered = run_cli("ledger", "verify", "--since", str(saved), env=env)
    assert tampered.returncode == 1
    assert "ledger tampered" in tampered.stdout and "fewer than the saved 4" in tampered.stdout


def test_explain_prints_each_layer_with_sources(tmp_path):
    episodes = tmp_path / "episodes.csv"
    assert run_cli("generate", "episodes", "-n", "300", "-o", str(episodes), "--seed", "3").returncode == 0
    episode_id = episodes.read_text().splitlines()[5].split(",")[0]
    shown = run_cli("explain", str(episodes), episode_id)
    assert shown.returncode == 0, shown.stderr
    for heading in ("基本医保", "医疗救助", "residual", "parameter set", "示例值"):
        assert heading in shown.stdout
    missing = run_cli("explain", str(episodes), "NO-SUCH-EPISODE")
    assert missing.returncode == 2 and "episode_id" in missing.stderr


def test_explain_at_80_columns_prints_every_source_whole(tmp_path):
    """The reproduction: an 80-column terminal used to cut the sources off."""
    from gongji.rules.cascade import default_book

    episodes = tmp_path / "episodes.csv"
    assert run_cli("generate", "episodes", "-n", "50", "-o", str(episodes), "--seed", "4").returncode == 0
    episode_id = episodes.read_text().splitlines()[1].split(",")[0]
    shown = run_cli("explain", str(episodes), episode_id, env={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    national = next(pset for pset in default_book().sets if pset.id == "national-2024")
    assert " ".join(national.sources["wp-basic-rate"].split()) in " ".join(shown.stdout.split())


def test_resettle_records_the_differences_and_a_second_run_finds_none(db_url, sessions, vault, tmp_path):
    """`gongji resettle PERSON YEAR`: a year settled out of order is brought to discharge order."""
    import datetime as dt

    from helpers import valid_id_number

    from gongji.episodes.service import create_episode, create_person, settle_statutory
    from gongji.rules.cascade import default_book

    book = default_book()
    with transaction(sessions) as session:
        person = create_person(session, vault, valid_id_number("330106", dt.date(1966, 5, 1), 17), "赵强",
                               "resident", "none", False, "330100")
        episodes = [
            create_episode(session, person.id, dt.date(2024, m, 1), dt.date(2024, m, 9), level, "C34.9",
                           amount, 0, 0, book=book)
            for m, amount, level in ((9, 30_000_000, 3), (2, 2_000_000, 1))
        ]
        for episode in episodes:
            settle_statutory(session, book, episode.id, "caseworker")
    env = {"GONGJI_DATABASE_URL": db_url, "GONGJI_VAR_DIR": str(tmp_path / "var"), "GONGJI_FIELD_KEY": "",
           "GONGJI_PERSON_KEY_SECRET": ""}
    first = run_cli("resettle", str(person.id), "2024", env=env)
    assert first.returncode == 0, first.stderr
    assert "adjustment" in first.stdout and "basic" in first.stdout
    second = run_cli("resettle", str(person.id), "2024", env=env)
    assert second.returncode == 0 and "already match" in second.stdout
