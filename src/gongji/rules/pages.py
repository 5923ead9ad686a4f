"""The public calculator page (多层次医疗保障测算): one episode in, each layer's payment and the residual out.

The form posts with htmx to `/calculate`, which answers with an HTML fragment
(a full page when JavaScript is off). It validates with the same request model
and computes with the same function as `POST /api/calculate`, so the page and
the API cannot disagree. No identity is asked for and nothing is stored.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from gongji.api.auth import PUBLIC, access
from gongji.api.deps import AppContext, get_context
from gongji.api.problems import validation_errors
from gongji.core.errors import GongjiError
from gongji.rules.api import calculate
from gongji.rules.cascade import ASSISTANCE_CATEGORIES, HOSPITAL_LEVELS, SCHEMES
from gongji.rules.params import NATIONAL_REGION, ParameterBook
from gongji.rules.schemas import CalculateRequest, SettlementOut
from gongji.web.i18n import FIELD_HINTS, HTML_LANG, LANG_COOKIE, LANGUAGES, choose_language, translator

router = APIRouter(tags=["pages"])
templates = Jinja2Templates(directory=str(resources.files("gongji.web").joinpath("templates")))

FORM_FIELDS = (
    "scheme", "assistance_category", "inclusive_enrolled", "region", "hospital_level",
    "admission_date", "discharge_date", "class_a", "class_b", "out_of_catalogue",
)
#: A typical stay, so the first click shows a meaningful result.
EXAMPLE = {
    "scheme": "resident", "assistance_category": "none", "inclusive_enrolled": True, "region": "330100",
    "hospital_level": "3", "admission_date": "2024-03-04", "discharge_date": "2024-03-18",
    "class_a": "60,000.00", "class_b": "30,000.00", "out_of_catalogue": "10,000.00",
}
LAYER_COLOURS = {
    "basic": "#2f6db5", "critical_illness": "#3f9c8c", "assistance": "#d99a2b", "inclusive": "#8a63b8",
    "residual": "#c8553d",
}
ONE_YEAR = 365 * 24 * 3600


def _language(request: Request, requested: str | None = None) -> str:
    return choose_language(requested, request.cookies.get(LANG_COOKIE))


def _page_context(request: Request, book: ParameterBook, language: str, values: dict[str, Any]) -> dict[str, Any]:
    t = translator(language)
    names = {pset.region: pset.name_zh if language == "zh" else pset.name_en for pset in book.sets}
    regions = [(code, t(f"region.{code}", names[code])) for code in sorted(names)]
    return {
        "request": request, "t": t, "lang": language, "html_lang": HTML_LANG[language],
        "other_lang": LANGUAGES[1 - LANGUAGES.index(language)],
        "schemes": SCHEMES, "categories": ASSISTANCE_CATEGORIES, "levels": HOSPITAL_LEVELS, "regions": regions,
        "values": values,
    }


def _result_context(result: SettlementOut, language: str) -> dict[str, Any]:
    """Table rows and chart data: each layer that applies, then the residual; shares of the total."""
    t = translator(language)
    total = result.amounts.total.fen
    rows = []
    for line in result.lines:
        label = line.name_zh if language == "zh" else line.name_en
        rows.append({"key": line.layer, "label": label, "money": line.amount, "applies": line.applies})
    rows.append({"key": "residual", "label": t("result.residual"), "money": result.amounts.residual, "applies": True})
    for row in rows:
        row["share"] = f"{row['money'].fen * 100 / total:.1f}%" if total else "—"
        row["colour"] = LAYER_COLOURS[row["key"]]
    chart = {
        "title": t("result.chart"),
        "category": t("result.total") + " ¥" + result.amounts.total.yuan,
        "series": [
            {"name": row["label"], "fen": row["money"].fen, "yuan": row["money"].yuan, "colour": row["colour"]}
            for row in rows
        ],
    }
    return {"result": result, "rows": rows, "chart": chart}


def _errors_context(errors: list[dict[str, str]], language: str) -> dict[str, Any]:
    t = translator(language)
    shown = []
    for error in errors:
        field = error["field"].split(".")[0]
        shown.append({
            "field": field,
            "label": t(f"field.{field}", field),
            "hint": t(FIELD_HINTS.get(field, "error.other")),
            "detail": error["message"],
        })
    return {"errors": shown}


@router.get("/", response_class=HTMLResponse, include_in_schema=False, **access(PUBLIC))
def calculator_page(
    request: Request,
    context: Annotated[AppContext, Depends(get_context)],
    lang: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    """The calculator form; `?lang=en` or `?lang=zh` switches the language and remembers it."""
    language = _language(request, lang)
    values = dict(EXAMPLE)
    if values["region"] not in {pset.region for pset in context.book.sets}:
        values["region"] = NATIONAL_REGION
    response = templates.TemplateResponse(
        request, "calculator.html", _page_context(request, context.book, language, values)
    )
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, language, max_age=ONE_YEAR, samesite="lax")
    return response


@router.post("/calculate", response_class=HTMLResponse, include_in_schema=False, **access(PUBLIC))
async def calculate_fragment(request: Request, context: Annotated[AppContext, Depends(get_context)]) -> HTMLResponse:
    """The result (or the errors, naming each field) as a fragment for htmx, or the whole page without it."""
    language = _language(request)
    form = await request.form()
    values: dict[str, Any] = {name: str(form.get(name, "")).strip() for name in FORM_FIELDS}
    values["inclusive_enrolled"] = "inclusive_enrolled" in form
    submitted = dict(values)
    if values["hospital_level"].isdigit():
        submitted["hospital_level"] = int(values["hospital_level"])
    status = 200
    try:
        outcome = _result_context(calculate(context.book, CalculateRequest.model_validate(submitted)), language)
    except ValidationError as error:
        status, outcome = 422, _errors_context(validation_errors(error.errors()), language)
    except GongjiError as error:
        status = error.status
        outcome = _errors_context([{"field": error.field or "", "message": error.detail}], language)
    page = _page_context(request, context.book, language, values) | outcome
    template = "_result.html" if request.headers.get("HX-Request") == "true" else "calculator.html"
    return templates.TemplateResponse(request, template, page, status_code=status)
