"""`gongji demo`: an embedded database with demo staff and settled synthetic episodes, ready to click through.

The demo data goes through the same service functions and the same
settlement path (`episodes.service.settle_statutory`) as the API, so what the demo
shows is what the API would have recorded.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gongji.api.auth import Principal
from gongji.api.auth_service import create_user
from gongji.api.models import User
from gongji.core.db import make_engine, migrate, session_factory, transaction
from gongji.core.identity import IdentityVault
from gongji.core.settings import Settings, load_vault
from gongji.episodes import service
from gongji.episodes.service import settle_statutory
from gongji.episodes.models import Person
from gongji.episodes.synthetic import generate_episodes
from gongji.mutual_aid.demo import MutualAidDemo, load_mutual_aid_demo
from gongji.mutual_aid.plans import sync_plans
from gongji.rules.params import ParameterBook, load_parameter_book

#: (username, role, display name, regions, operator) of the demo accounts: the admin sees the whole country
#: (000000), the caseworker the two demo regions (杭州 330100, 成都 510100); the mutual-aid operator's staff
#: work for the demo online platform; "member" and "juror" are self-service mutual-aid members.
DEMO_USERS = (
    ("admin", "admin", "演示管理员", ("000000",), None),
    ("caseworker", "caseworker", "演示审核员", ("330100", "510100"), None),
    ("ma.admin", "operator_admin", "互助运营管理员", (), "online-demo"),
    ("ma.reviewer", "reviewer", "互助审核员", (), "online-demo"),
    ("ma.assessor", "assessor", "公估调查员", (), "online-demo"),
    ("member", "member", "演示会员", (), None),
    ("juror", "member", "演示评审员", (), None),
)
#: Persons per region; the synthetic generator gives each about two episodes a year.
DEMO_REGIONS = {"330100": 25, "510100": 25}
DEMO_EPISODES_PER_REGION = 300
DEMO_SEED = 2024
ACTOR = "demo"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAMES = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


@dataclass(frozen=True)
class DemoReport:
    credentials_file: Path
    credentials: str
    persons_loaded: int
    episodes_loaded: int
    mutual_aid: MutualAidDemo


def prepare_demo(settings: Settings) -> DemoReport:
    """Migrate, create the demo accounts once, and load demo episodes and mutual aid into an empty database."""
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            sync_plans(session)
        credentials_file = settings.var_dir / "demo-credentials.txt"
        credentials = _ensure_users(sessions, credentials_file)
        vault, book = load_vault(settings), load_parameter_book(settings.params_dir)
        persons, episodes = _load_episodes(sessions, vault, book)
        with transaction(sessions) as session:
            accounts = {
                user.username: Principal(user.id, user.username, user.role, user.display_name, user.regions,
                                         user.operator_code)
                for user in session.scalars(select(User))
            }
            mutual_aid = load_mutual_aid_demo(session, vault, book, _demo_name, accounts, seed=DEMO_SEED)
    finally:
        engine.dispose()
    return DemoReport(credentials_file, credentials, persons, episodes, mutual_aid)


def _ensure_users(sessions: sessionmaker[Session], credentials_file: Path) -> str:
    """Create the demo staff with random 16-character passwords, saved (owner-only) to `credentials_file`.

    On later runs the users exist and the saved file is shown again.
    """
    with transaction(sessions) as session:
        existing = set(session.scalars(select(User.username)))
        missing = [user for user in DEMO_USERS if user[0] not in existing]
        lines = []
        for username, role, display_name, regions, operator in missing:
            password = secrets.token_urlsafe(12)
            create_user(session, username, password, role, display_name, regions=regions, operator_code=operator,
                        actor=ACTOR)
            lines.append(f"{username}\t{role}\t{password}")
        if lines:
            credentials_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(credentials_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))
    if credentials_file.exists():
        return credentials_file.read_text(encoding="utf-8")
    return "(demo users exist but their credentials file is missing)\n"


def _demo_name(index: int) -> str:
    return SURNAMES[index % len(SURNAMES)] + GIVEN_NAMES[(index * 7) % len(GIVEN_NAMES)] + GIVEN_NAMES[index % 11]


def _load_episodes(sessions: sessionmaker[Session], vault: IdentityVault, book: ParameterBook) -> tuple[int, int]:
    """Create the demo persons and their episodes, then settle each episode, in one transaction."""
    with transaction(sessions) as session:
        if session.scalar(select(func.count()).select_from(Person)):
            return 0, 0
        persons = episodes = 0
        for region, wanted in DEMO_REGIONS.items():
            frame = generate_episodes(DEMO_EPISODES_PER_REGION, seed=DEMO_SEED, region=region)
            chosen = frame.get_column("id_number").unique(maintain_order=True).head(wanted)
            frame = frame.filter(pl.col("id_number").is_in(chosen.implode()))
            for rows in frame.sort("discharge_date").partition_by("id_number", maintain_order=True):
                first = rows.row(0, named=True)
                person = service.create_person(
                    session, vault, first["id_number"], _demo_name(persons), first["scheme"],
                    first["assistance_category"], first["inclusive_enrolled"], region, actor=ACTOR,
                )
                persons += 1
                for row in rows.iter_rows(named=True):
                    episode = service.create_episode(
                        session, person.id, row["admission_date"], row["discharge_date"], row["hospital_level"],
                        row["icd10"], row["class_a"], row["class_b"], row["out_of_catalogue"], book=book, actor=ACTOR,
                    )
                    settle_statutory(session, book, episode.id, ACTOR)
                    episodes += 1
        return persons, episodes
