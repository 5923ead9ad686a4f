"""Access control: every route states who may call it, and the app refuses everyone else.

`access(*roles)` gives a route both the check (`allow`) and its declaration in
OpenAPI (`x-roles`), so the two cannot drift apart and a test can walk
`app.routes` to prove that no route was left undeclared. `PUBLIC` marks routes
open to anyone. No token or a bad one is 401; a valid token with a role not
on the list is 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from gongji.api.auth_service import TOKEN_LIFETIME, authenticate, issue_token, user_for_token
from gongji.api.deps import AppContext, get_context
from gongji.api.models import ROLES
from gongji.api.problems import problem_responses
from gongji.core.errors import Forbidden, Unauthorized

PUBLIC = "public"
STAFF = ROLES

_bearer = HTTPBearer(auto_error=False, description="Token from POST /api/auth/login")


@dataclass(frozen=True)
class Principal:
    """The signed-in staff member, detached from any database session."""

    user_id: int
    username: str
    role: str
    display_name: str


def allow(*roles: str):
    """A dependency that admits callers holding one of `roles`; `allow(PUBLIC)` admits anyone."""
    unknown = set(roles) - {*ROLES, PUBLIC}
    if not roles or unknown or (PUBLIC in roles and len(roles) > 1):
        raise ValueError(f"allow() takes PUBLIC alone or roles from {ROLES}, got {roles}")

    if roles == (PUBLIC,):

        def check_public() -> None:
            return None

        check_public.roles = roles
        return check_public

    def check_role(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        context: Annotated[AppContext, Depends(get_context)],
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("a bearer token is required", "Authorization")
        with context.transaction() as session:
            user = user_for_token(session, credentials.credentials)
            if user is None:
                raise Unauthorized("the token is unknown or expired", "Authorization")
            principal = Principal(user.id, user.username, user.role, user.display_name)
        if principal.role not in roles:
            raise Forbidden(f"role {principal.role!r} may not do this; allowed: {', '.join(roles)}", "role")
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

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=problem_responses(401, 403, 422))


class LoginRequest(BaseModel):
    username: str = Field(max_length=64, examples=["caseworker"])
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    username: str
    role: str
    display_name: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    user: UserOut


@router.post("/login", response_model=TokenOut, **access(PUBLIC))
def login(body: LoginRequest, context: Annotated[AppContext, Depends(get_context)]) -> TokenOut:
    """Exchange a username and password for a bearer token valid for 12 hours."""
    with context.transaction() as session:
        user = authenticate(session, body.username, body.password)
        if user is None:
            raise Unauthorized("wrong username or password", "password")
        token = issue_token(session, user)
        return TokenOut(
            access_token=token,
            expires_in=int(TOKEN_LIFETIME.total_seconds()),
            user=UserOut(username=user.username, role=user.role, display_name=user.display_name),
        )


@router.get("/me", response_model=UserOut, **access(*STAFF))
def me(principal: CurrentPrincipal) -> UserOut:
    """Who the token belongs to."""
    return UserOut(username=principal.username, role=principal.role, display_name=principal.display_name)
