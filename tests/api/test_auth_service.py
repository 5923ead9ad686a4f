from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from gongji.api.auth_service import (
    TOKEN_LIFETIME,
    authenticate,
    create_user,
    issue_token,
    revoke_token,
    token_digest,
    user_for_token,
)
from gongji.api.models import ApiToken, User
from gongji.core.db import transaction
from gongji.core.errors import Conflict, InvalidInput

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(sessions) -> int:
    with transaction(sessions) as session:
        return create_user(session, " Alice ", PASSWORD, "caseworker", "审核员 Alice").id


def test_create_user_hashes_the_password(sessions, alice):
    with sessions() as session:
        user = session.get(User, alice)
        assert (user.username, user.role, user.active) == ("alice", "caseworker", True)
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("username", {"username": "a"}),
        ("username", {"username": "bad name"}),
        ("password", {"password": "short"}),
        ("role", {"role": "root"}),
        ("display_name", {"display_name": ""}),
    ],
)
def test_invalid_user_names_the_field(sessions, field, changes):
    args = {"username": "bob", "password": PASSWORD, "role": "analyst", "display_name": "Bob", **changes}
    with pytest.raises(InvalidInput) as caught, transaction(sessions) as session:
        create_user(session, **args)
    assert caught.value.field == field


def test_duplicate_username(sessions, alice):
    with pytest.raises(Conflict) as caught, transaction(sessions) as session:
        create_user(session, "ALICE", PASSWORD, "admin", "Another")
    assert caught.value.field == "username"


def test_authenticate(sessions, alice):
    with transaction(sessions) as session:
        assert authenticate(session, "alice", PASSWORD).id == alice
        assert authenticate(session, "ALICE ", PASSWORD).id == alice
        assert authenticate(session, "alice", PASSWORD + "x") is None
        assert authenticate(session, "nobody", PASSWORD) is None
        assert authenticate(session, "alice", None) is None
        session.get(User, alice).active = False
        assert authenticate(session, "alice", PASSWORD) is None


def test_authenticate_upgrades_old_hashes(sessions, alice):
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with transaction(sessions) as session:
        session.get(User, alice).password_hash = weak
    with transaction(sessions) as session:
        assert authenticate(session, "alice", PASSWORD) is not None
    with sessions() as session:
        upgraded = session.get(User, alice).password_hash
        assert upgraded != weak
        assert not PasswordHasher().check_needs_rehash(upgraded)


def test_tokens_are_stored_hashed_and_expire(sessions, alice):
    issued = dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC)
    with transaction(sessions) as session:
        raw = issue_token(session, session.get(User, alice), now=issued)
    assert len(raw) >= 43
    with sessions() as session:
        stored = session.scalars(select(ApiToken)).one()
        assert stored.token_hash == token_digest(raw) != raw
        assert stored.expires_at == issued + TOKEN_LIFETIME == issued + dt.timedelta(hours=12)
        just_before = issued + TOKEN_LIFETIME - dt.timedelta(seconds=1)
        assert user_for_token(session, raw, now=just_before).id == alice
        assert user_for_token(session, raw, now=issued + TOKEN_LIFETIME) is None
        assert user_for_token(session, raw + "x", now=issued) is None
        assert user_for_token(session, "", now=issued) is None


def test_token_of_disabled_user_or_revoked_token_grants_nothing(sessions, alice):
    with transaction(sessions) as session:
        first = issue_token(session, session.get(User, alice))
        second = issue_token(session, session.get(User, alice))
        assert first != second
    with transaction(sessions) as session:
        assert user_for_token(session, first).id == alice
        assert revoke_token(session, first) is True
        assert revoke_token(session, first) is False
        assert user_for_token(session, first) is None
        session.get(User, alice).active = False
    with sessions() as session:
        assert user_for_token(session, second) is None
