"""Users and bearer tokens (no HTTP here). Each function takes the caller's Session and flushes."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gongji.api.models import ROLES, ApiToken, User
from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, InvalidInput
from gongji.core.persistence import utcnow

TOKEN_LIFETIME = dt.timedelta(hours=12)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,63}$")

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against when the user is unknown, so both paths cost the same."""
    return _hasher.hash(secrets.token_urlsafe(16))


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_user(
    session: Session, username: str, password: str, role: str, display_name: str, *, actor: str = "system"
) -> User:
    """Create an active staff user; the password is kept only as an argon2id hash."""
    username = username.strip().lower() if isinstance(username, str) else ""
    if not USERNAME_RE.match(username):
        raise InvalidInput("username must be 3–64 of a-z, 0-9, '.', '_', '-'", "username")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"password must be {MIN_PASSWORD}–{MAX_PASSWORD} characters", "password")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", "role")
    if not isinstance(display_name, str) or not display_name.strip() or len(display_name) > 100:
        raise InvalidInput("display name must be 1–100 characters", "display_name")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", "username")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        display_name=display_name.strip(),
        active=True,
    )
    session.add(user)
    session.flush()
    record_audit(session, actor, "user.create", "user", user.id, {"username": username, "role": role})
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this password, or None; unknown users cost one hash check too."""
    name = username.strip().lower() if isinstance(username, str) else ""
    user = session.scalars(select(User).where(User.username == name)).one_or_none()
    stored = user.password_hash if user is not None and user.active else _dummy_hash()
    try:
        _hasher.verify(stored, password if isinstance(password, str) else "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.flush()
    return user


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
    """The active user a raw token belongs to, or None if unknown, expired or the user is disabled."""
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
