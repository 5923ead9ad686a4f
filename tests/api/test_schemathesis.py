"""Property-based requests against the public part of the OpenAPI schema: no server errors, answers as documented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gongji.api.app import create_app
from gongji.core.settings import Settings

PUBLIC_OPERATIONS = ("POST /api/calculate", "GET /api/parameter-sets")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    var = tmp_path_factory.mktemp("schemathesis")
    app = create_app(Settings(database_url=f"sqlite:///{var / 'gongji.sqlite3'}", var_dir=var, params_dir=None))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("label", PUBLIC_OPERATIONS)
def test_public_operation(schema, label):
    method, path = label.split()
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(checks=CHECKS)

    run()
