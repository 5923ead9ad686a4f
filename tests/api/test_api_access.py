"""Every route states who may call it, and the check is really applied."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from gongji.api.app import create_app
from gongji.api.auth import PUBLIC, allow
from gongji.core.settings import Settings

#: Routes FastAPI and the static mount add; they serve documentation and assets only.
FRAMEWORK_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static"}


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> FastAPI:
    var = tmp_path_factory.mktemp("access")
    return create_app(Settings(database_url=f"sqlite:///{var / 'gongji.sqlite3'}", var_dir=var, params_dir=None))


def flat_routes(routes) -> list:
    """app.routes with included routers opened up (FastAPI ≥ 0.137 keeps them as one lazy entry each).

    Our routers carry their prefix themselves, so the routes inside have full paths.
    """
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found.extend(flat_routes(included.routes) if included is not None else [route])
    return found


def declared_routes(app: FastAPI) -> list[APIRoute]:
    return [route for route in flat_routes(app.routes) if isinstance(route, APIRoute)]


def test_every_route_declares_and_applies_its_access(app):
    routes = declared_routes(app)
    assert {"/", "/calculate", "/api/calculate", "/api/persons"} <= {route.path for route in routes}
    for route in routes:
        declared = (route.openapi_extra or {}).get("x-roles")
        assert declared, f"{route.path} declares no access"
        checks = [dep.call.roles for dep in route.dependant.dependencies if hasattr(dep.call, "roles")]
        assert checks == [tuple(declared)], f"{route.path}: checks {checks} differ from declared {declared}"
    others = {route.path for route in flat_routes(app.routes) if not isinstance(route, APIRoute)}
    assert others <= FRAMEWORK_PATHS


def test_openapi_shows_the_roles_of_each_operation(app):
    operations = TestClient(app).get("/openapi.json").json()["paths"]
    for path, methods in operations.items():
        for method, operation in methods.items():
            assert operation["x-roles"], f"{method.upper()} {path}"
    assert operations["/api/calculate"]["post"]["x-roles"] == [PUBLIC]
    assert operations["/api/persons"]["post"]["x-roles"] == ["caseworker", "admin"]


def test_every_protected_route_refuses_a_missing_token(app):
    client = TestClient(app)
    for route in declared_routes(app):
        if route.openapi_extra["x-roles"] == [PUBLIC]:
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in route.methods:
            response = client.request(method, path, json={})
            assert response.status_code == 401, f"{method} {path}"


@pytest.mark.parametrize("roles", [(), ("root",), (PUBLIC, "admin")])
def test_allow_rejects_meaningless_declarations(roles):
    with pytest.raises(ValueError):
        allow(*roles)
