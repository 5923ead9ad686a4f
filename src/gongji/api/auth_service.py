"""Users, passwords, lockouts and bearer tokens (no HTTP here). Each function takes the caller's Session and flushes."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gongji.api.models import ALL_ROLES, NATIONWIDE, OPERATOR_ROLES, SELF_SERVICE_ROLES, ApiToken, User, UserRegion
from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from gongji.core.identity import province_codes
from gongji.core.persistence import lock_row, utcnow
from gongji.mutual_aid.models import Operator

TOKEN_LIFETIME = dt.timedelta(hours=12)
#: 12 characters: long enough that guessing within the login throttle is hopeless even for lowercase
#: letters and digits (36^12 ≈ 4.7e18), short enough to type; the common-password list catches the rest.
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,63}$")
REGION_RE = re.compile(r"^[0-9]{6}$")
#: Consecutive wrong passwords that lock a real account, and for how long (临时锁定). The same
#: cadence as the per-account throttle (gongji.api.throttle), so a locked account and an unknown
#: name answer alike; the lock lives in the database, so it holds across processes and restarts.
LOCKOUT_AFTER = 10
LOCKOUT_FOR = dt.timedelta(minutes=15)
#: The one answer for a throttled request and a locked account, so neither tells which it was.
RETRY_LATER = "too many failed logins; wait before trying again"

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against when the user is unknown, so both paths cost the same."""
    return _hasher.hash(secrets.token_urlsafe(16))


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of the most used passwords, lowercased (data/common-passwords.txt)."""
    text = resources.files("gongji.data").joinpath("common-passwords.txt").read_text(encoding="utf-8")
    lines = (line.strip().lower() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def normalise_username(username: object) -> str:
    """Usernames are case-insensitive and trimmed: " Alice " signs in as "alice"."""
    return username.strip().lower() if isinstance(username, str) else ""


def retry_after(until: dt.datetime, now: dt.datetime) -> int:
    """Whole seconds from `now` until `until`, at least 1 (the value of a Retry-After header)."""
    return max(1, math.ceil((until - now).total_seconds()))


def check_password(password: object, username: str, field: str = "password") -> None:
    """The password policy (密码规则): 12–1024 characters, not a common password, not the username."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise InvalidInput(
            "password must be {min}–{max} characters", field, values={"min": MIN_PASSWORD, "max": MAX_PASSWORD}
        )
    lowered = password.lower()
    if lowered in common_passwords():
        raise InvalidInput("password is one of the most commonly used passwords; choose another", field)
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            "password must be {min}–{max} characters", field, values={"min": MIN_PASSWORD, "max": MAX_PASSWORD}
        )
    if username and username.lower() in lowered:
        raise InvalidInput("password must not contain the username", field)


def check_regions(role: str, regions: Iterable[str]) -> tuple[str, ...]:
    """The regions of a user of `role`, sorted: 6-digit codes of a known province, or 000000 (全国) alone."""
    if isinstance(regions, str):
        raise InvalidInput("regions must be a list of 6-digit region codes", "regions")
    codes = list(regions)
    if role in SELF_SERVICE_ROLES and codes:
        raise InvalidInput("{role} accounts carry no regions", "regions", values={"role": role})
    for code in codes:
        if not isinstance(code, str) or not REGION_RE.match(code):
            raise InvalidInput(
                "region {code} is not a 6-digit GB/T 2260 code", "regions", values={"code": repr(code)}
            )
        if code != NATIONWIDE and code[:2] not in province_codes():
            raise InvalidInput(
                "region {code} is in no known province (or use {nationwide} for 全国)", "regions",
                values={"code": repr(code), "nationwide": NATIONWIDE},
            )
    if NATIONWIDE in codes and len(set(codes)) > 1:
        raise InvalidInput(
            "{nationwide} (全国) already covers every region; give it alone", "regions",
            values={"nationwide": NATIONWIDE},
        )
    return tuple(sorted(set(codes)))


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str,
    *,
    regions: Iterable[str] = (),
    operator_code: str | None = None,
    actor: str = "system",
) -> User:
    """Create an active staff or self-service user; the password is kept only as an argon2id hash.

    Operator staff (operator_admin, assessor, reviewer) must name the mutual-aid operator they work for;
    nobody else may.
    """
    username = normalise_username(username)
    if not USERNAME_RE.match(username):
        raise InvalidInput("username must be 3–64 of a-z, 0-9, '.', '_', '-'", "username")
    check_password(password, username)
    if role not in ALL_ROLES:
        raise InvalidInput("role must be one of {choices}", "role", values={"choices": ", ".join(ALL_ROLES)})
    codes = check_regions(role, regions)
    if (role in OPERATOR_ROLES) != (operator_code is not None):
        raise InvalidInput("operator staff need an operator_code, and only they may have one", "operator_code")
    if operator_code is not None and session.scalar(
        select(Operator.code).where(Operator.code == operator_code)
    ) is None:
        raise InvalidInput("unknown operator {code}", "operator_code", values={"code": repr(operator_code)})
    if not isinstance(display_name, str) or not display_name.strip() or len(display_name) > 100:
        raise InvalidInput("display name must be 1–100 characters", "display_name")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("user {username} already exists", "username", values={"username": repr(username)})
    now = utcnow()
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        display_name=display_name.strip(),
        active=True,
        created_at=now,
        password_changed_at=now,
        failed_logins=0,
        region_rows=[UserRegion(region=code) for code in codes],
        operator_code=operator_code,
    )
    session.add(user)
    session.flush()
    record_audit(
        session, actor, "user.create", "user", user.id, {"username": username, "role": role, "regions": list(codes), "operator_code": operator_code}
    )
    return user


def authenticate(session: Session, username: str, password: str, *, now: dt.datetime | None = None) -> User | None:
    """The active user with this password, or None; unknown users cost one hash check too.

    A locked account is refused with TooManyRequests before its password is even checked. A
    wrong password for a real account counts towards its lockout; the right one clears the count.
    """
    now = now or utcnow()
    name = normalise_username(username)
    # A name no account can have (a NUL byte, say, which PostgreSQL refuses in text) is simply unknown.
    user = None
    if USERNAME_RE.match(name):
        user = session.scalars(select(User).where(User.username == name)).one_or_none()
    if user is not None and user.active and user.locked_at(now):
        raise TooManyRequests(RETRY_LATER, retry_after=retry_after(user.locked_until, now))
    stored = user.password_hash if user is not None and user.active else _dummy_hash()
    try:
        _hasher.verify(stored, password if isinstance(password, str) else "")
    except (VerificationError, InvalidHashError):
        if user is not None and user.active:
            _count_failure(session, user, now)
        return None
    if user is None or not user.active:
        return None
    if user.failed_logins or user.locked_until is not None:
        user.failed_logins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def _count_failure(session: Session, user: User, now: dt.datetime) -> None:
    """One more consecutive failure; every LOCKOUT_AFTER-th locks the account for LOCKOUT_FOR (audited)."""
    user = lock_row(session, User, user.id)
    user.failed_logins += 1
    if user.failed_logins % LOCKOUT_AFTER == 0:
        user.locked_until = now + LOCKOUT_FOR
        record_audit(
            session,
            "system",
            "user.lockout",
            "user",
            user.id,
            {"failed_logins": user.failed_logins, "locked_until": user.locked_until.isoformat()},
        )
    session.flush()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def unlock_user(session: Session, user_id: int, *, actor: str) -> User:
    """Lift a lockout and reset the failure count (解锁), audited."""
    user = lock_row(session, User, user_id)
    if user is None:
        raise NotFound("no user {id}", "user_id", values={"id": user_id})
    detail = {
        "failed_logins": user.failed_logins,
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
    }
    user.failed_logins, user.locked_until = 0, None
    session.flush()
    record_audit(session, actor, "user.unlock", "user", user.id, detail)
    return user


def change_password(
    session: Session, user_id: int, current_password: str, new_password: str, *, now: dt.datetime | None = None
) -> str | None:
    """Set a new password, revoke every token of the user and return a fresh one; None if `current_password` is wrong.

    Revoking all tokens means a password change also signs out a thief who had one.
    """
    now = now or utcnow()
    user = lock_row(session, User, user_id)
    if user is None or not user.active:
        raise NotFound("no active user {id}", "user_id", values={"id": user_id})
    try:
        _hasher.verify(user.password_hash, current_password if isinstance(current_password, str) else "")
    except (VerificationError, InvalidHashError):
        return None
    if new_password == current_password:
        raise InvalidInput("the new password must differ from the current one", "new_password")
    check_password(new_password, user.username, "new_password")
    user.password_hash = _hasher.hash(new_password)
    user.password_changed_at = now
    revoked = session.execute(delete(ApiToken).where(ApiToken.user_id == user.id)).rowcount
    session.flush()
    record_audit(session, user.username, "user.password_change", "user", user.id, {"tokens_revoked": revoked})
    return issue_token(session, user, now=now)


def issue_token(session: Session, user: User, *, now: dt.datetime | None = None) -> str:
    """A fresh bearer token valid for 12 hours; only its hash is stored, the raw value is returned once."""
    issued = now or utcnow()
    raw = secrets.token_urlsafe(32)
    session.add(
        ApiToken(token_hash=token_digest(raw), user_id=user.id, created_at=issued, expires_at=issued + TOKEN_LIFETIME)
    )
    session.flush()
    record_audit(
        session, user.username, "token.issue", "user", user.id, {"expires_at": (issued + TOKEN_LIFETIME).isoformat()}
    )
    return raw


def user_for_token(session: Session, raw: str, *, now: dt.datetime | None = None) -> User | None:
    """The active user a raw token belongs to, or None if unknown, expired or the user is disabled.

    A lockout stops new logins only: tokens issued before it keep working until they expire.
    """
    if not isinstance(raw, str) or not raw:
        return None
    token = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == token_digest(raw), ApiToken.expires_at > (now or utcnow()))
    ).one_or_none()
    if token is None or not token.user.active:
        return None
    return token.user


def revoke_token(session: Session, raw: str) -> bool:
    """Log out: delete the token. True if it existed."""
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_digest(raw))).one_or_none()
    if token is None:
        return False
    session.delete(token)
    session.flush()
    record_audit(session, token.user.username, "token.revoke", "user", token.user_id, {})
    return True
