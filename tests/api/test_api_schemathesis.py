"""Property-based requests against the public part of the OpenAPI schema: no server errors, answers as documented."""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gongji.api.app import create_app
from gongji.core.settings import Settings

#: (method, path, move the stay into the years with parameters in force)
PUBLIC_OPERATIONS = [
    pytest.param("GET", "/api/parameter-sets", False, id="parameter-sets"),
    pytest.param("POST", "/api/calculate", False, id="calculate"),
    pytest.param("POST", "/api/calculate", True, id="calculate-dates-in-force"),
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    var = tmp_path_factory.mktemp("schemathesis")
    app = create_app(Settings(database_url=f"sqlite:///{var / 'gongji.sqlite3'}", var_dir=var, params_dir=None))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@st.composite
def cases_in_force(draw, operation):
    """Schema-generated cases whose stay falls in 2024–2025, where parameters are in force.

    Random dates almost never are, so without this the cascade itself would hardly run.
    """
    case = draw(operation.as_strategy())
    if isinstance(case.body, dict):
        admission = draw(st.dates(dt.date(2024, 1, 1), dt.date(2025, 11, 30)))
        case.body["admission_date"] = admission.isoformat()
        case.body["discharge_date"] = (admission + dt.timedelta(days=draw(st.integers(0, 30)))).isoformat()
    return case


@pytest.mark.parametrize(("method", "path", "dates_in_force"), PUBLIC_OPERATIONS)
def test_public_operation(schema, method, path, dates_in_force):
    operation = schema[path][method]
    strategy = cases_in_force(operation) if dates_in_force else operation.as_strategy()

    @given(case=strategy)
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(checks=CHECKS)

    run()
