from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from gongji.api.auth_service import (
    LOCKOUT_AFTER,
    LOCKOUT_FOR,
    TOKEN_LIFETIME,
    authenticate,
    change_password,
    common_passwords,
    create_user,
    issue_token,
    revoke_token,
    token_digest,
    unlock_user,
    user_for_token,
)
from gongji.api.models import ApiToken, User
from gongji.core.audit import AuditLog
from gongji.core.db import transaction
from gongji.core.errors import Conflict, InvalidInput, NotFound, TooManyRequests

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
        ("password", {"password": "password"}),
        ("password", {"password": "12345678"}),
        ("password", {"password": "elevenchars"}),
        ("password", {"password": "WoAiNi1314520"}),
        ("password", {"password": "1qaz2wsx3edc"}),
        ("password", {"password": "qwertyuiop123"}),
        ("password", {"password": None}),
        ("password", {"username": "zhangxiaoming", "password": "zhangxiaoming"}),
        ("password", {"username": "zhangxiaoming", "password": "ZhangXiaoming-2025"}),
        ("role", {"role": "root"}),
        ("regions", {"regions": ["3301"]}),
        ("regions", {"regions": ["990100"]}),
        ("regions", {"regions": "330100"}),
        ("regions", {"regions": ["000000", "330100"]}),
        ("regions", {"role": "family", "regions": ["330100"]}),
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


def test_the_common_password_list_is_shipped_and_lowercased():
    listed = common_passwords()
    assert len(listed) >= 300
    assert {"password", "12345678", "woaini1314", "5201314", "1qaz2wsx3edc", "qwertyuiop"} <= listed
    assert all(entry == entry.lower() and not entry.startswith("#") for entry in listed)


def test_users_carry_regions_and_family_none(sessions):
    with transaction(sessions) as session:
        staff = create_user(session, "wang", PASSWORD, "caseworker", "王", regions=["510100", "330100", "330100"])
        everywhere = create_user(session, "boss", PASSWORD, "admin", "Boss", regions=["000000"])
        family = create_user(session, "family1", PASSWORD, "family", "患者家属")
        ids = staff.id, everywhere.id, family.id
    with sessions() as session:
        assert [session.get(User, user_id).regions for user_id in ids] == [("330100", "510100"), ("000000",), ()]
        created = select(AuditLog).where(AuditLog.action == "user.create", AuditLog.entity_id == str(ids[0]))
        assert session.scalars(created).one().detail == {
            "username": "wang", "role": "caseworker", "regions": ["330100", "510100"], "operator_code": None
        }


def fail(sessions, username: str, times: int, now: dt.datetime) -> None:
    for _ in range(times):
        with transaction(sessions) as session:
            assert authenticate(session, username, "not the password", now=now) is None


def test_consecutive_failures_lock_the_account_and_are_audited(sessions, alice):
    start = dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC)
    fail(sessions, "alice", LOCKOUT_AFTER - 1, start)
    with sessions() as session:
        user = session.get(User, alice)
        assert (user.failed_logins, user.locked_until) == (LOCKOUT_AFTER - 1, None)
    fail(sessions, "ALICE", 1, start)
    with transaction(sessions) as session:
        user = session.get(User, alice)
        assert (user.failed_logins, user.locked_until) == (LOCKOUT_AFTER, start + LOCKOUT_FOR)
        lockout = session.scalars(select(AuditLog).where(AuditLog.action == "user.lockout")).one()
        assert (lockout.entity_id, lockout.detail["failed_logins"]) == (str(alice), LOCKOUT_AFTER)
        # Locked: even the right password is refused, before it is checked, and nothing is counted.
        with pytest.raises(TooManyRequests) as caught:
            authenticate(session, "alice", PASSWORD, now=start + dt.timedelta(minutes=5))
        assert caught.value.retry_after == 600
        assert user.failed_logins == LOCKOUT_AFTER
    later = start + LOCKOUT_FOR
    with transaction(sessions) as session:
        assert authenticate(session, "alice", PASSWORD, now=later).id == alice
    with sessions() as session:
        user = session.get(User, alice)
        assert (user.failed_logins, user.locked_until) == (0, None)


def test_failures_after_a_lockout_lock_again_at_the_same_cadence(sessions, alice):
    after = dt.datetime(2025, 1, 1, 8, tzinfo=dt.UTC)
    with transaction(sessions) as session:  # as left by a first lockout that has just run out
        user = session.get(User, alice)
        user.failed_logins, user.locked_until = LOCKOUT_AFTER, after
    fail(sessions, "alice", LOCKOUT_AFTER - 1, after)
    with sessions() as session:
        assert not session.get(User, alice).locked_at(after)
    fail(sessions, "alice", 1, after)
    with sessions() as session:
        user = session.get(User, alice)
        assert (user.failed_logins, user.locked_until) == (2 * LOCKOUT_AFTER, after + LOCKOUT_FOR)
        assert session.scalars(select(AuditLog.detail).where(AuditLog.action == "user.lockout")).one() == {
            "failed_logins": 2 * LOCKOUT_AFTER,
            "locked_until": (after + LOCKOUT_FOR).isoformat(),
        }


def test_a_disabled_user_counts_no_failures(sessions, alice):
    with transaction(sessions) as session:
        session.get(User, alice).active = False
    fail(sessions, "alice", 1, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    with sessions() as session:
        assert session.get(User, alice).failed_logins == 0


def test_unlock_resets_and_is_audited(sessions, alice):
    with transaction(sessions) as session:
        user = session.get(User, alice)
        user.failed_logins, user.locked_until = LOCKOUT_AFTER, dt.datetime.now(dt.UTC) + LOCKOUT_FOR
    with transaction(sessions) as session:
        assert unlock_user(session, alice, actor="root").failed_logins == 0
    with transaction(sessions) as session:
        assert authenticate(session, "alice", PASSWORD).id == alice
        unlock = session.scalars(select(AuditLog).where(AuditLog.action == "user.unlock")).one()
        assert (unlock.actor, unlock.detail["failed_logins"]) == ("root", LOCKOUT_AFTER)
        with pytest.raises(NotFound):
            unlock_user(session, 9999, actor="root")


def test_change_password_checks_the_current_one_applies_the_policy_and_revokes_every_token(sessions, alice):
    new = "a much longer passphrase"
    with transaction(sessions) as session:
        old_tokens = [issue_token(session, session.get(User, alice)) for _ in range(2)]
    with transaction(sessions) as session:
        assert change_password(session, alice, "wrong current password", new) is None
        for bad in ("woaini1314", "alice-is-here-123", PASSWORD):  # common, has the username, unchanged
            with pytest.raises(InvalidInput) as caught:
                change_password(session, alice, PASSWORD, bad)
            assert caught.value.field == "new_password"
    with transaction(sessions) as session:
        fresh = change_password(session, alice, PASSWORD, new)
    with transaction(sessions) as session:
        assert [user_for_token(session, token) for token in old_tokens] == [None, None]
        assert user_for_token(session, fresh).id == alice
        assert authenticate(session, "alice", PASSWORD) is None
        assert authenticate(session, "alice", new).id == alice
        changed = session.scalars(select(AuditLog).where(AuditLog.action == "user.password_change")).one()
        assert changed.detail == {"tokens_revoked": 2}
