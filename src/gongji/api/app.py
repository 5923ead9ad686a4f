"""The application factory: one FastAPI app with the JSON API, the web pages and their static files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gongji.api import auth
from gongji.api.deps import AppContext
from gongji.api.limits import REQUEST_PROBLEMS, BodySizeLimit
from gongji.api.problems import install_problem_handlers
from gongji.api.throttle import LoginThrottle
from gongji.core.db import make_engine, migrate, session_factory
from gongji.core.settings import Settings, get_settings, load_vault
from gongji.episodes import api as episodes_api
from gongji.episodes import pages as episodes_pages
from gongji.ledger import api as ledger_api
from gongji.ledger import pages as ledger_pages
from gongji.ledger import service as ledger_service
from gongji.ledger import transparency as ledger_transparency
from gongji.ledger.signing import load_signer
from gongji.mutual_aid import api as mutual_aid_api
from gongji.mutual_aid import pages as mutual_aid_pages
from gongji.mutual_aid.plans import sync_plans
from gongji.rules import api as rules_api
from gongji.rules import pages as rules_pages
from gongji.rules.params import load_parameter_book

DESCRIPTION = """\
共济 Gongji: the statutory and supplementary layers of one patient's bill, paid in order and once.

* Money in is yuan as a string (`"12,345.60"`); money out is `{"fen": 1234560, "yuan": "12,345.60"}`.
* Errors are RFC 9457 problem details (`application/problem+json`) naming the `field` at fault.
* Each operation lists the roles allowed to call it in `x-roles` (`public` = no token needed);
  others send `Authorization: Bearer <token>` from `POST /api/auth/login`.
* Request bodies over 1 MiB (`limits.MAX_BODY_BYTES`) are refused with 413 before they are read.
* Creating operations take an `Idempotency-Key` header (1–255 visible ASCII characters): a retry with
  the same key and body returns the first response, marked `Idempotent-Replayed: true`, and creates
  nothing twice; the same key with another body is 422.
"""

#: The API docs pages load only from our origin (their inline set-up script and styles included).
DOCS_POLICY = "default-src 'self' 'unsafe-inline' data: blob:"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Migrate the database, load keys and parameters once, and wire the routers.

    Parameter files and mutual-aid plans are validated here, so a bad file stops the start instead of a request.
    """
    settings = settings or get_settings()
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    context = AppContext(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        vault=load_vault(settings),
        book=load_parameter_book(settings.params_dir),
        signer=load_signer(settings),
    )
    with context.transaction() as session:
        sync_plans(session)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sequencer = asyncio.create_task(_sequence_forever(context))
        yield
        sequencer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sequencer
        engine.dispose()

    app = FastAPI(
        title="共济 Gongji",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=REQUEST_PROBLEMS,
        docs_url=None,
        redoc_url=None,
    )
    app.state.gongji = context
    app.state.login_throttle = LoginThrottle(settings.rate_limit_storage)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit)
    static = Path(str(resources.files("gongji.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")
    for router in (
        auth.router, auth.admin_router, episodes_api.router, rules_api.router, rules_pages.router,
        episodes_pages.router, ledger_api.router, ledger_pages.router, ledger_transparency.router,
        mutual_aid_api.router, mutual_aid_pages.router,
    ):
        app.include_router(router)
    episodes_pages.install_page_errors(app)
    _add_docs_routes(app)
    return app


logger = logging.getLogger("gongji.ledger")
#: How often the server sequences pending leaves into the log and signs a checkpoint.
SEQUENCE_EVERY_SECONDS = float(os.environ.get("GONGJI_LEDGER_SEQUENCE_SECONDS", "2"))


async def _sequence_forever(context: AppContext) -> None:
    """The background sequencer: writers never wait for it; it catches up every few seconds."""
    while True:
        await asyncio.sleep(SEQUENCE_EVERY_SECONDS)
        try:
            await run_in_threadpool(_sequence_all, context)
        except Exception:  # noqa: BLE001 - a failed round leaves pending leaves pending; the next round retries
            logger.exception("ledger sequencing failed; will retry")


def _sequence_all(context: AppContext) -> None:
    while True:
        with context.transaction() as session:
            if not ledger_service.sequence(session, context.signer).sequenced:
                return


def _add_docs_routes(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from our vendored copies (static/vendor/README.md).

    FastAPI's defaults load them from a CDN, which leaves the pages blank offline and often
    in mainland China; `data:,` as favicon spares the browser a request for one. The policy
    header stops anything else reaching out (ReDoc's sidebar logo from its CDN hides itself).
    """

    def own_origin_only(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get("/docs", include_in_schema=False, **auth.access(auth.PUBLIC))
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="data:,",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        )
        return own_origin_only(page)

    @app.get("/redoc", include_in_schema=False, **auth.access(auth.PUBLIC))
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url="/static/vendor/redoc.standalone.js",
            redoc_favicon_url="data:,",
            with_google_fonts=False,
        )
        return own_origin_only(page)
