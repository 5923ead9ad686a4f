"""The application factory: one FastAPI app with the JSON API, the web pages and their static files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gongji.api import auth
from gongji.api.deps import AppContext
from gongji.api.problems import install_problem_handlers
from gongji.core.db import make_engine, migrate, session_factory
from gongji.core.settings import Settings, get_settings, load_vault
from gongji.episodes import api as episodes_api
from gongji.rules import api as rules_api
from gongji.rules import pages as rules_pages
from gongji.rules.params import load_parameter_book

DESCRIPTION = """\
共济 Gongji: the statutory and supplementary layers of one patient's bill, paid in order and once.

* Money in is yuan as a string (`"12,345.60"`); money out is `{"fen": 1234560, "yuan": "12,345.60"}`.
* Errors are RFC 9457 problem details (`application/problem+json`) naming the `field` at fault.
* Each operation lists the roles allowed to call it in `x-roles` (`public` = no token needed);
  others send `Authorization: Bearer <token>` from `POST /api/auth/login`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Migrate the database, load keys and parameters once, and wire the routers.

    Parameter files are validated here, so a bad file stops the start instead of a request.
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
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="共济 Gongji", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.gongji = context
    install_problem_handlers(app)
    static = Path(str(resources.files("gongji.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")
    for router in (auth.router, episodes_api.router, rules_api.router, rules_pages.router):
        app.include_router(router)
    return app
