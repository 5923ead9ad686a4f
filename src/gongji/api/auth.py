"""Access control: every route states who may call it, and the app refuses everyone else.

`access(*roles)` gives a route both the check (`allow`) and its declaration in
OpenAPI (`x-roles`), so the two cannot drift apart and a test can walk
`app.routes` to prove that no route was left undeclared. `PUBLIC` marks routes
open to anyone. No token or a bad one is 401; a valid token with a role not
on the list is 403.

The web pages (个案工作台) carry the same token in an HttpOnly, SameSite=Strict
cookie instead of the Authorization header. A request authenticated by that
cookie that changes anything (not GET/HEAD/OPTIONS) must also present the
CSRF token (double submit: a random cookie, repeated in a hidden form field or
the X-CSRF-Token header), or it is 403.

Also here: signing in and out, changing one's password, and the admin's user
management (用户管理), which share the login protection of gongji.api.throttle.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from gongji.api.auth_service import (
    TOKEN_LIFETIME,
    authenticate,
    change_password,
    create_user,
    issue_token,
    list_users,
    revoke_token,
    unlock_user,
    user_for_token,
)
from gongji.api.deps import AppContext, RowId, get_context
from gongji.api.models import ALL_ROLES, ROLES, User
from gongji.api.problems import problem_responses
from gongji.api.throttle import LoginThrottle
from gongji.core.errors import Forbidden, InvalidInput, Unauthorized
from gongji.core.persistence import utcnow

PUBLIC = "public"
STAFF = ROLES

_bearer = HTTPBearer(auto_error=False, description="Token from POST /api/auth/login")
#: The web session: the bearer token in an HttpOnly, SameSite=Strict cookie (set by the workbench login page).
SESSION_COOKIE = "gongji_session"
#: Double-submit CSRF token: this cookie's value must come back in the form field or the header.
CSRF_COOKIE = "gongji_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def presented_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token of the request: the Authorization header, else the web session cookie."""
    return credentials.credentials if credentials is not None else request.cookies.get(SESSION_COOKIE) or None


async def presented_csrf(request: Request) -> str | None:
    """The CSRF token a state-changing request repeats: the header (htmx), else the form's hidden field.

    Async because the form must be read; Starlette keeps it, so the endpoint reads the same form again.
    """
    header = request.headers.get(CSRF_HEADER)
    if header or request.method in SAFE_METHODS or SESSION_COOKIE not in request.cookies:
        return header
    if not request.headers.get("content-type", "").startswith(_FORM_TYPES):
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def csrf_matches(request: Request, presented: str | None) -> bool:
    """Whether the presented CSRF token equals the CSRF cookie (compared in constant time)."""
    expected = request.cookies.get(CSRF_COOKIE)
    return bool(expected and presented) and secrets.compare_digest(expected.encode(), presented.encode())


@dataclass(frozen=True)
class Principal:
    """The signed-in user (staff or self-service), detached from any database session."""

    user_id: int
    username: str
    role: str
    display_name: str
    #: Regions a staff member works in ("000000" = 全国); empty for self-service accounts.
    regions: tuple[str, ...] = ()
    #: The mutual-aid operator of operator staff; None for everyone else.
    operator_code: str | None = None


def allow(*roles: str):
    """A dependency that admits callers holding one of `roles`; `allow(PUBLIC)` admits anyone."""
    unknown = set(roles) - {*ALL_ROLES, PUBLIC}
    if not roles or unknown or (PUBLIC in roles and len(roles) > 1):
        raise ValueError(f"allow() takes PUBLIC alone or roles from {ALL_ROLES}, got {roles}")

    if roles == (PUBLIC,):

        def check_public() -> None:
            return None

        check_public.roles = roles
        return check_public

    def check_role(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        context: Annotated[AppContext, Depends(get_context)],
        csrf: Annotated[str | None, Depends(presented_csrf)],
    ) -> Principal:
        token = presented_token(request, credentials)
        if token is None:
            raise Unauthorized("a bearer token is required", "Authorization")
        with context.transaction() as session:
            user = user_for_token(session, token)
            if user is None:
                raise Unauthorized("the token is unknown or expired", "Authorization")
            principal = Principal(
                user.id, user.username, user.role, user.display_name, user.regions, user.operator_code
            )
        if credentials is None and request.method not in SAFE_METHODS and not csrf_matches(request, csrf):
            raise Forbidden("the CSRF token is missing or does not match; reload the page", CSRF_FIELD)
        if principal.role not in roles:
            raise Forbidden(
                "role {role} may not do this; allowed: {roles}", "role",
                values={"role": repr(principal.role), "roles": ", ".join(roles)},
            )
        request.state.principal = principal
        return principal

    check_role.roles = roles
    return check_role


def access(*roles: str) -> dict[str, Any]:
    """Route keyword arguments: the access check plus its OpenAPI declaration (`x-roles`)."""
    return {"dependencies": [Depends(allow(*roles))], "openapi_extra": {"x-roles": list(roles)}}


def current_principal(request: Request) -> Principal:
    """The caller admitted by the route's `allow` check (which runs before the endpoint's own parameters)."""
    return request.state.principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Context = Annotated[AppContext, Depends(get_context)]


def login_throttle(request: Request) -> LoginThrottle:
    """The app's own throttle (made by create_app), so two apps never share counts."""
    return request.app.state.login_throttle


Throttle = Annotated[LoginThrottle, Depends(login_throttle)]


def client_address(request: Request) -> str:
    """The caller's address as the server sees it (behind a proxy, run uvicorn with --proxy-headers)."""
    return request.client.host if request.client else "unknown"


router = APIRouter(prefix="/api/auth", tags=["auth"], responses=problem_responses(401, 403, 422))
admin_router = APIRouter(prefix="/api/admin", tags=["admin"], responses=problem_responses(401, 403, 422))


class Strict(BaseModel):
    """Request bodies refuse unknown fields (422 naming them), so a misspelt field is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(max_length=64, examples=["caseworker"])
    password: str = Field(max_length=1024)


class PasswordChangeRequest(Strict):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024, description="At least 12 characters, not a common password.")


class CreateUserRequest(Strict):
    username: str = Field(max_length=64, examples=["wang.caseworker"])
    password: str = Field(max_length=1024, description="At least 12 characters, not a common password.")
    role: str = Field(description=f"One of {', '.join(ALL_ROLES)}.", examples=["caseworker"])
    display_name: str = Field(max_length=100, examples=["王审核员"])
    regions: list[str] = Field(
        default_factory=list,
        max_length=100,
        description='6-digit GB/T 2260 codes the staff member works in; "000000" = whole country. None for family.',
        examples=[["330100", "510100"]],
    )
    operator_code: str | None = Field(
        default=None, max_length=64,
        description="The mutual-aid operator of operator staff (operator_admin, assessor, reviewer); none otherwise.",
    )


class UserOut(BaseModel):
    username: str
    role: str
    display_name: str
    regions: list[str]
    operator_code: str | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    user: UserOut


class AdminUserOut(BaseModel):
    id: int
    username: str
    role: str
    display_name: str
    regions: list[str]
    operator_code: str | None
    active: bool
    failed_logins: int = Field(description="Wrong passwords since the last successful login or unlock.")
    locked_until: dt.datetime | None = Field(description="Logins are refused until then (if in the future).")
    locked: bool
    created_at: dt.datetime
    password_changed_at: dt.datetime


def _token_out(token: str, user: User) -> TokenOut:
    return TokenOut(
        access_token=token,
        expires_in=int(TOKEN_LIFETIME.total_seconds()),
        user=UserOut(
            username=user.username, role=user.role, display_name=user.display_name, regions=user.regions,
            operator_code=user.operator_code,
        ),
    )


def _admin_user_out(user: User) -> AdminUserOut:
    return AdminUserOut(
        id=user.id,
        username=user.username,
        role=user.role,
        display_name=user.display_name,
        regions=user.regions,
        operator_code=user.operator_code,
        active=user.active,
        failed_logins=user.failed_logins,
        locked_until=user.locked_until,
        locked=user.locked_at(utcnow()),
        created_at=user.created_at,
        password_changed_at=user.password_changed_at,
    )


@router.post("/login", response_model=TokenOut, responses=problem_responses(429), **access(PUBLIC))
def login(body: LoginRequest, request: Request, context: Context, throttle: Throttle) -> TokenOut:
    """Exchange a username and password for a bearer token valid for 12 hours.

    Ten wrong passwords for one name, or fifty from one address, within 15 minutes get 429 with
    Retry-After, as does a locked account; the password is then not checked at all.
    """
    address = client_address(request)
    throttle.check(body.username, address)
    with context.transaction() as session:
        user = authenticate(session, body.username, body.password)
        answer = _token_out(issue_token(session, user), user) if user is not None else None
    if answer is None:
        throttle.failed(body.username, address)
        raise Unauthorized("wrong username or password", "password")
    throttle.forget(body.username)
    return answer


@router.get("/me", response_model=UserOut, **access(*ALL_ROLES))
def me(principal: CurrentPrincipal) -> UserOut:
    """Who the token belongs to."""
    return UserOut(
        username=principal.username,
        role=principal.role,
        display_name=principal.display_name,
        regions=list(principal.regions),
    )


@router.post("/logout", status_code=204, **access(*ALL_ROLES))
def logout(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)], context: Context
) -> None:
    """Revoke the presented token (header or web session cookie) at once (登出), instead of waiting for it to expire."""
    with context.transaction() as session:
        revoke_token(session, presented_token(request, credentials))


@router.post("/password", response_model=TokenOut, responses=problem_responses(429), **access(*ALL_ROLES))
def password(
    body: PasswordChangeRequest, request: Request, principal: CurrentPrincipal, context: Context, throttle: Throttle
) -> TokenOut:
    """Change one's password: every token of the user is revoked, and a fresh one is returned.

    A wrong current password counts as a failed login, so a stolen token cannot be used to guess it.
    """
    address = client_address(request)
    throttle.check(principal.username, address)
    with context.transaction() as session:
        token = change_password(session, principal.user_id, body.current_password, body.new_password)
        answer = _token_out(token, session.get(User, principal.user_id)) if token is not None else None
    if answer is None:
        throttle.failed(principal.username, address)
        raise InvalidInput("the current password is wrong", "current_password")
    return answer


@admin_router.get("/users", response_model=list[AdminUserOut], **access("admin"))
def users(context: Context) -> list[AdminUserOut]:
    """Every account with its role, regions, failure count and lockout."""
    with context.transaction() as session:
        return [_admin_user_out(user) for user in list_users(session)]


@admin_router.post(
    "/users", response_model=AdminUserOut, status_code=201, responses=problem_responses(409), **access("admin")
)
def add_user(body: CreateUserRequest, principal: CurrentPrincipal, context: Context) -> AdminUserOut:
    """Create a staff account (with its regions) or a family (患者家属) account."""
    with context.transaction() as session:
        user = create_user(
            session,
            body.username,
            body.password,
            body.role,
            body.display_name,
            regions=body.regions,
            operator_code=body.operator_code,
            actor=principal.username,
        )
        return _admin_user_out(user)


@admin_router.post(
    "/users/{user_id}/unlock", response_model=AdminUserOut, responses=problem_responses(404), **access("admin")
)
def unlock(user_id: RowId, principal: CurrentPrincipal, context: Context, throttle: Throttle) -> AdminUserOut:
    """Lift a lockout now (解锁) and clear the account's failed-login count."""
    with context.transaction() as session:
        user = unlock_user(session, user_id, actor=principal.username)
        answer = _admin_user_out(user)
    throttle.forget(answer.username)
    return answer
