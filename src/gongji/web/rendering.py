"""The one Jinja2 environment every page renders with: the package's templates, with gettext installed."""

from __future__ import annotations

from importlib import resources

from fastapi.templating import Jinja2Templates

from gongji.web.i18n import install_gettext

templates = Jinja2Templates(directory=str(resources.files("gongji.web").joinpath("templates")))
install_gettext(templates.env)
