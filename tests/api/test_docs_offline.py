"""/docs and /redoc load everything from our own origin, so they work without internet access.

The browser side (pages render, nothing requested elsewhere) is in tests/e2e/test_calculator_page.py.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from gongji.api.app import create_app
from gongji.core.settings import Settings

#: src= and href= attributes, and url: '…' in the inline Swagger UI set-up.
REFERENCE = re.compile(r"""(?:\b(?:src|href|spec-url)\s*=\s*|\burl:\s*)["']([^"']+)["']""")


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    var = tmp_path_factory.mktemp("docs")
    return TestClient(create_app(Settings(database_url=f"sqlite:///{var / 'g.sqlite3'}", var_dir=var, params_dir=None)))


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"/static/vendor/swagger-ui-bundle.js", "/static/vendor/swagger-ui.css", "/openapi.json"}),
        ("/redoc", {"/static/vendor/redoc.standalone.js", "/openapi.json"}),
    ],
)
def test_docs_reference_only_our_own_assets_and_they_are_served(client, page, assets):
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html.text, re.IGNORECASE), "an outside URL"
    assert html.headers["content-security-policy"].startswith("default-src 'self'")
    references = {ref for ref in REFERENCE.findall(html.text) if not ref.startswith("data:")}
    assert references == assets
    for reference in references:
        assert not urlsplit(reference).netloc and reference.startswith("/")
        assert client.get(reference).status_code == 200, reference


def test_swagger_ui_is_told_not_to_call_the_online_validator(client):
    assert '"validatorUrl": null' in client.get("/docs").text
