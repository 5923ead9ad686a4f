"""Login protection through HTTP: throttling, lockout, password policy, logout, password change, user admin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from limits.errors import ConfigurationError
from sqlalchemy import select, text

from gongji.api.app import create_app
from gongji.api.auth_service import LOCKOUT_AFTER, create_user
from gongji.api.models import User
from gongji.api.throttle import ACCOUNT_FAILURES, ADDRESS_FAILURES, LoginThrottle
from gongji.core.audit import AuditLog
from gongji.core.db import alembic_config, make_engine
from gongji.core.errors import TooManyRequests
from gongji.core.settings import Settings

PASSWORD = "correct horse battery staple"
WINDOW = 15 * 60
#: username → (role, regions)
USERS = {
    "admin": ("admin", ["000000"]),
    "caseworker": ("caseworker", ["510100", "330100"]),
    "analyst": ("analyst", []),
    "family": ("family", []),
}


@pytest.fixture
def settings(db_url: str, tmp_path) -> Settings:
    return Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    with app.state.gongji.transaction() as session:
        for username, (role, regions) in USERS.items():
            create_user(session, username, PASSWORD, role, f"Test {username}", regions=regions)
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def login(client: TestClient, username: str, password: str = PASSWORD):
    return client.post("/api/auth/login", json={"username": username, "password": password})


def token(client: TestClient, username: str, password: str = PASSWORD) -> str:
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def assert_problem(response, status: int, field: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body.get("field")) == (status, field)
    return body


def assert_retry_later(response) -> dict:
    body = assert_problem(response, 429, None)
    assert 1 <= int(response.headers["retry-after"]) <= WINDOW
    return body


def audit(app: FastAPI, action: str) -> list[AuditLog]:
    with app.state.gongji.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


def stored_user(app: FastAPI, username: str) -> User:
    with app.state.gongji.sessions() as session:
        return session.scalars(select(User).where(User.username == username)).one()


def lock_out(client: TestClient, username: str) -> None:
    for _ in range(LOCKOUT_AFTER):
        assert_problem(login(client, username, "not the password"), 401, "password")


def test_twenty_wrong_passwords_then_429_before_the_21st(app, client, settings):
    statuses = [login(client, "caseworker", f"guess number {n}").status_code for n in range(20)]
    assert statuses == [401] * 10 + [429] * 10
    # The 21st, even with the right password, is refused without the password being checked.
    assert_retry_later(login(client, "caseworker"))
    user = stored_user(app, "caseworker")
    assert user.failed_logins == LOCKOUT_AFTER
    [lockout] = audit(app, "user.lockout")
    assert (lockout.entity_id, lockout.detail["failed_logins"]) == (str(user.id), LOCKOUT_AFTER)
    # A fresh process has fresh throttle counts, but the lock is in the database.
    with TestClient(create_app(settings)) as restarted:
        assert_retry_later(login(restarted, "caseworker"))
        assert_problem(login(restarted, "nobody"), 401, "password")


def test_an_unknown_name_is_answered_exactly_like_a_locked_account(client):
    lock_out(client, "caseworker")
    lock_out(client, "nobody")
    real, unknown = login(client, "caseworker"), login(client, "Nobody ")
    assert assert_retry_later(real) == assert_retry_later(unknown)


def test_a_success_clears_the_count(app, client):
    for _ in range(LOCKOUT_AFTER - 1):
        login(client, "analyst", "not the password")
    assert stored_user(app, "analyst").failed_logins == LOCKOUT_AFTER - 1
    assert login(client, "ANALYST").status_code == 200
    assert stored_user(app, "analyst").failed_logins == 0
    assert_problem(login(client, "analyst", "not the password"), 401, "password")


def test_admins_see_and_lift_lockouts_others_may_not(app, client):
    lock_out(client, "caseworker")
    tokens = {username: token(client, username) for username in ("admin", "analyst", "family")}
    listing = client.get("/api/admin/users", headers=bearer(tokens["admin"]))
    assert listing.status_code == 200
    rows = {row["username"]: row for row in listing.json()}
    assert set(rows) == set(USERS)
    locked = rows["caseworker"]
    assert (locked["locked"], locked["failed_logins"], locked["role"]) == (True, LOCKOUT_AFTER, "caseworker")
    assert locked["locked_until"] is not None and locked["regions"] == ["330100", "510100"]
    assert (rows["admin"]["regions"], rows["family"]["regions"], rows["admin"]["locked"]) == (["000000"], [], False)

    user_id = locked["id"]
    for username in ("analyst", "family"):
        assert_problem(client.get("/api/admin/users", headers=bearer(tokens[username])), 403, "role")
        unlock = client.post(f"/api/admin/users/{user_id}/unlock", headers=bearer(tokens[username]))
        assert_problem(unlock, 403, "role")
    assert_problem(client.get("/api/admin/users"), 401, "Authorization")
    assert_retry_later(login(client, "caseworker"))

    unlocked = client.post(f"/api/admin/users/{user_id}/unlock", headers=bearer(tokens["admin"]))
    assert unlocked.status_code == 200
    assert (unlocked.json()["locked"], unlocked.json()["failed_logins"], unlocked.json()["locked_until"]) == (
        False,
        0,
        None,
    )
    [record] = audit(app, "user.unlock")
    assert (record.actor, record.entity_id, record.detail["failed_logins"]) == ("admin", str(user_id), LOCKOUT_AFTER)
    assert login(client, "caseworker").status_code == 200  # the throttle forgot the failures too
    assert_problem(client.post("/api/admin/users/9999/unlock", headers=bearer(tokens["admin"])), 404, "user_id")


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("zhangwei.cw", "password"),
        ("zhangwei.cw", "12345678"),
        ("zhangwei.cw", "woaini1314"),
        ("zhangwei.cw", "Qwertyuiop123"),
        ("zhangwei.cw", "zhangwei.cw"),
        ("zhangwei.cw", "my name is zhangwei.cw!"),
        ("zhangwei.cw", "too-short"),
    ],
)
def test_weak_passwords_are_refused(app, client, username, password):
    admin = token(client, "admin")
    body = {"username": username, "password": password, "role": "caseworker", "display_name": "张伟"}
    assert_problem(client.post("/api/admin/users", json=body, headers=bearer(admin)), 422, "password")
    assert not audit(app, "user.create")[len(USERS) :]


def test_admin_creates_staff_with_regions_and_family_accounts(app, client):
    admin = token(client, "admin")
    staff = {
        "username": "li.caseworker",
        "password": "a long enough passphrase",
        "role": "caseworker",
        "display_name": "李审核员",
        "regions": ["510100", "330106"],
    }
    created = client.post("/api/admin/users", json=staff, headers=bearer(admin))
    assert created.status_code == 201, created.text
    assert (created.json()["regions"], created.json()["failed_logins"]) == (["330106", "510100"], 0)
    assert audit(app, "user.create")[-1].actor == "admin"
    me = client.get("/api/auth/me", headers=bearer(token(client, "li.caseworker", staff["password"])))
    assert me.json()["regions"] == ["330106", "510100"]

    for changes, field in [
        ({"regions": ["990100"]}, "regions"),
        ({"regions": ["33010"]}, "regions"),
        ({"role": "family"}, "regions"),
        ({"role": "root", "regions": []}, "role"),
        ({"nickname": "xiao li"}, "nickname"),
    ]:
        body = {**staff, "username": "someone.else", **changes}
        assert_problem(client.post("/api/admin/users", json=body, headers=bearer(admin)), 422, field)
    assert_problem(client.post("/api/admin/users", json=staff, headers=bearer(admin)), 409, "username")
    caseworker = token(client, "caseworker")
    assert_problem(client.post("/api/admin/users", json=staff, headers=bearer(caseworker)), 403, "role")

    family = {**staff, "username": "wang.family", "role": "family", "display_name": "王家属", "regions": []}
    assert client.post("/api/admin/users", json=family, headers=bearer(admin)).status_code == 201
    family_token = token(client, "wang.family", family["password"])
    me = client.get("/api/auth/me", headers=bearer(family_token))
    assert me.json() == {
        "username": "wang.family", "role": "family", "display_name": "王家属", "regions": [], "operator_code": None
    }
    assert_problem(client.post("/api/persons/search", json={}, headers=bearer(family_token)), 403, "role")


def test_caseworker_token_carries_regions(client):
    response = login(client, "caseworker")
    assert response.json()["user"]["regions"] == ["330100", "510100"]


def test_requests_with_unknown_fields_are_refused(client):
    response = client.post(
        "/api/auth/login", json={"username": "admin", "password": PASSWORD, "remember": True},
        headers={"Accept-Language": "en"},
    )
    body = assert_problem(response, 422, "remember")
    assert body["errors"][0]["message"] == "Extra inputs are not permitted"


def test_logout_revokes_the_token(app, client):
    raw = token(client, "analyst")
    other = token(client, "analyst")
    assert client.post("/api/auth/logout", headers=bearer(raw)).status_code == 204
    assert_problem(client.get("/api/auth/me", headers=bearer(raw)), 401, "Authorization")
    assert_problem(client.post("/api/auth/logout", headers=bearer(raw)), 401, "Authorization")
    assert client.get("/api/auth/me", headers=bearer(other)).status_code == 200
    assert len(audit(app, "token.revoke")) == 1


def test_password_change_rotates_every_token(app, client):
    first, second = token(client, "caseworker"), token(client, "caseworker")
    new = "a brand new passphrase"
    change = {"current_password": PASSWORD, "new_password": new}
    response = client.post("/api/auth/password", json=change, headers=bearer(first))
    assert response.status_code == 200, response.text
    fresh = response.json()["access_token"]
    for old in (first, second):
        assert_problem(client.get("/api/auth/me", headers=bearer(old)), 401, "Authorization")
    assert client.get("/api/auth/me", headers=bearer(fresh)).json()["username"] == "caseworker"
    assert_problem(login(client, "caseworker"), 401, "password")
    assert login(client, "caseworker", new).status_code == 200
    [changed] = audit(app, "user.password_change")
    assert (changed.actor, changed.detail) == ("caseworker", {"tokens_revoked": 2})
    assert stored_user(app, "caseworker").password_changed_at > stored_user(app, "caseworker").created_at


def test_password_change_checks_the_current_password_and_the_policy(client):
    raw = token(client, "analyst")

    def change(current: str, new: str):
        body = {"current_password": current, "new_password": new}
        return client.post("/api/auth/password", json=body, headers=bearer(raw))

    assert_problem(change(PASSWORD, "1qaz2wsx3edc"), 422, "new_password")
    assert_problem(change(PASSWORD, "analyst analyst"), 422, "new_password")
    # Wrong current passwords count like failed logins, so a stolen token cannot guess the password.
    for n in range(LOCKOUT_AFTER):
        assert_problem(change(f"guess number {n}", "a brand new passphrase"), 422, "current_password")
    assert_retry_later(change(PASSWORD, "a brand new passphrase"))
    assert_retry_later(login(client, "analyst"))


def test_the_address_limit_stops_spraying_over_many_names():
    throttle = LoginThrottle()
    for n in range(ADDRESS_FAILURES.amount):
        throttle.check(f"user{n}", "198.51.100.7")
        throttle.failed(f"user{n}", "198.51.100.7")
    with pytest.raises(TooManyRequests) as caught:
        throttle.check("someone-new", "198.51.100.7")
    assert 1 <= caught.value.retry_after <= WINDOW
    throttle.check("someone-new", "198.51.100.8")


def test_the_account_limit_counts_one_name_from_every_address():
    throttle = LoginThrottle()
    for n in range(ACCOUNT_FAILURES.amount):
        throttle.failed(" Alice", f"198.51.100.{n}")
    with pytest.raises(TooManyRequests):
        throttle.check("alice", "203.0.113.1")
    throttle.forget("ALICE")
    throttle.check("alice", "203.0.113.1")


def test_the_throttle_storage_is_a_setting_checked_at_start(monkeypatch, tmp_path):
    monkeypatch.setenv("GONGJI_RATE_LIMIT_STORAGE", "redis://cache.internal:6379")
    assert Settings.from_env().rate_limit_storage == "redis://cache.internal:6379"
    monkeypatch.delenv("GONGJI_RATE_LIMIT_STORAGE")
    assert Settings.from_env().rate_limit_storage == "memory://"
    bad = Settings(f"sqlite:///{tmp_path / 'gongji.sqlite3'}", tmp_path, None, rate_limit_storage="nosuch://x")
    with pytest.raises(ConfigurationError, match="nosuch"):
        create_app(bad)


def test_upgrade_keeps_existing_users_and_the_tokens_pointing_at_them(db_url):
    """0003 rebuilds `users` on SQLite (to widen the role CHECK) while tokens reference its rows."""
    config = alembic_config(db_url)
    command.upgrade(config, "0002")
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, role, display_name, created_at, active)"
                    " VALUES (7, 'old.hand', 'x', 'caseworker', 'Old hand', :at, :yes)"
                ),
                {"at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "yes": True},
            )
            connection.execute(
                text("INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at) VALUES ('t', 7, :at, :at)"),
                {"at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)},
            )
        command.upgrade(config, "0003")
        with engine.begin() as connection:
            row = connection.execute(
                text("SELECT username, failed_logins, locked_until, password_changed_at = created_at FROM users")
            ).one()
            assert tuple(row) == ("old.hand", 0, None, True)
            assert connection.execute(text("SELECT user_id FROM api_tokens")).scalar_one() == 7
            connection.execute(text("INSERT INTO user_regions (user_id, region) VALUES (7, '330100')"))
            connection.execute(text("UPDATE users SET role = 'family'"))
    finally:
        engine.dispose()


def test_a_name_no_account_can_have_is_an_unknown_name(client):
    """A NUL byte (refused by PostgreSQL in text) or any name outside the allowed form: 401, never a 500."""
    for name in ("\x00", "a\x00b", "a b c", "名字"):
        answer = client.post("/api/auth/login", json={"username": name, "password": "whatever it is 12"})
        assert answer.status_code == 401, (name, answer.text)
