"""The public calculator page (多层次医疗保障测算): one episode in, each layer's payment and the residual out.

The form posts with htmx to `/calculate`, which answers with an HTML fragment
(a full page when JavaScript is off). It validates with the API's request
model (the form's values are text, so pydantic reads them as strings) and
computes with the same function as `POST /api/calculate`, so the page and the
API cannot disagree. No identity is asked for and nothing is stored. Texts are
gettext msgids (web/i18n.py), Chinese unless the reader chose English.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from gongji.api.auth import PUBLIC, access
from gongji.api.deps import AppContext, get_context
from gongji.api.problems import validation_errors
from gongji.core.errors import GongjiError
from gongji.rules.api import calculate
from gongji.rules.cascade import ASSISTANCE_CATEGORIES, HOSPITAL_LEVELS, SCHEMES
from gongji.rules.params import NATIONAL_REGION, ParameterBook
from gongji.rules.schemas import CalculateRequest, SettlementOut
from gongji.web.i18n import (
    HTML_LANG,
    LANG_COOKIE,
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    Gettext,
    gettext_for,
    page_language,
)
from gongji.web.rendering import templates

router = APIRouter(tags=["pages"])

FIELD_LABELS = {
    "scheme": N_("Insurance scheme"),
    "assistance_category": N_("Assistance category"),
    "inclusive_enrolled": N_("Enrolled in inclusive insurance (惠民保)"),
    "region": N_("Region"),
    "hospital_level": N_("Hospital level"),
    "admission_date": N_("Admission date"),
    "discharge_date": N_("Discharge date"),
    "class_a": N_("Class A (甲类)"),
    "class_b": N_("Class B (乙类)"),
    "out_of_catalogue": N_("Out of catalogue (目录外)"),
}
FORM_FIELDS = tuple(FIELD_LABELS)
SCHEME_LABELS = {
    "employee": N_("Employee scheme (working)"),
    "retiree": N_("Employee scheme (retired)"),
    "resident": N_("Resident scheme"),
}
CATEGORY_LABELS = {
    "none": N_("None"),
    "destitute": N_("Destitute (特困)"),
    "subsistence": N_("Minimum living allowance (低保)"),
    "near_subsistence": N_("Near the allowance line (低保边缘)"),
    "monitored": N_("Monitored for relapse into poverty"),
}
LEVEL_LABELS = {1: N_("Level 1 hospital"), 2: N_("Level 2 hospital"), 3: N_("Level 3 hospital")}
#: Short names of the bundled sets' regions; others show their parameter set's name.
REGION_LABELS = {NATIONAL_REGION: N_("National default"), "330100": N_("Hangzhou"), "510100": N_("Chengdu")}
_AMOUNT_HINT = N_("Enter an amount in yuan with at most two decimals (to the fen), e.g. 12,345.60")
_DATE_HINT = N_(
    "Enter a valid date; discharge may not precede admission and must fall after the parameters took effect"
)
_CHOICE_HINT = N_("Choose one of the listed options")
#: Which hint explains an error in each form field.
FIELD_HINTS = {
    "class_a": _AMOUNT_HINT, "class_b": _AMOUNT_HINT, "out_of_catalogue": _AMOUNT_HINT,
    "admission_date": _DATE_HINT, "discharge_date": _DATE_HINT,
    "scheme": _CHOICE_HINT, "assistance_category": _CHOICE_HINT, "region": _CHOICE_HINT,
    "hospital_level": _CHOICE_HINT, "inclusive_enrolled": _CHOICE_HINT,
}
OTHER_HINT = N_("Please check this field")

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


class CalculateForm(CalculateRequest):
    """`CalculateRequest` as the browser posts it: every value is text, read by pydantic as strings
    (`model_validate_strings`), so a form and a JSON request pass the same checks. The hospital level is its
    option's value "1"–"3"; the checkbox is sent ("on") only when ticked."""

    hospital_level: Annotated[
        Literal[tuple(str(level) for level in HOSPITAL_LEVELS)], AfterValidator(int)  # type: ignore[misc]
    ] = Field(description="医院等级 hospital level: 1, 2 or 3")


_FORM_BODY = {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": CalculateForm.model_json_schema()}},
}
_HTML = {"text/html": {"schema": {"type": "string"}}}
FORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The result: amounts, chart and explanation (a fragment for htmx, else the page)",
          "content": _HTML},
    422: {"description": "The form again with every error, each naming its field", "content": _HTML},
}
_TICKED = TypeAdapter(bool)


def _form_route() -> dict[str, Any]:
    """Public, and documented in OpenAPI with its form body (the route reads the form itself, to answer errors
    as HTML rather than problem+json)."""
    route = access(PUBLIC)
    route["openapi_extra"] = {**route["openapi_extra"], "requestBody": _FORM_BODY}
    return route


def _page_context(
    request: Request, book: ParameterBook, language: str, values: dict[str, Any], settled_region: str | None = None
) -> dict[str, Any]:
    """The form: labels and options in `language`; a region settled without a set of its own (sent by hand,
    e.g. a district) is kept as an option so the form shows what was calculated."""
    _ = gettext_for(language)
    names = {pset.region: pset.name_zh if language == "zh" else pset.name_en for pset in book.sets}
    regions = [(code, _(REGION_LABELS[code]) if code in REGION_LABELS else names[code]) for code in sorted(names)]
    if settled_region is not None and settled_region not in names:
        regions.append((settled_region, settled_region))
    other = LANGUAGES[1 - LANGUAGES.index(language)]
    return {
        "request": request, "lang": language, "html_lang": HTML_LANG[language],
        "other_lang": other, "other_html_lang": HTML_LANG[other], "language_names": LANGUAGE_NAMES,
        "labels": {name: _(label) for name, label in FIELD_LABELS.items()},
        "schemes": [(scheme, _(SCHEME_LABELS[scheme])) for scheme in SCHEMES],
        "categories": [(category, _(CATEGORY_LABELS[category])) for category in ASSISTANCE_CATEGORIES],
        "levels": [(str(level), _(LEVEL_LABELS[level])) for level in HOSPITAL_LEVELS],
        "regions": regions,
        "values": values,
    }


def _result_context(result: SettlementOut, language: str) -> dict[str, Any]:
    """Table rows and chart data: each layer that applies, then the residual; shares of the total."""
    _ = gettext_for(language)
    total = result.amounts.total.fen
    rows = []
    for line in result.lines:
        label = line.name_zh if language == "zh" else line.name_en
        rows.append({"key": line.layer, "label": label, "money": line.amount, "applies": line.applies})
    rows.append({"key": "residual", "label": _("Left to the patient"), "money": result.amounts.residual,
                 "applies": True})
    for row in rows:
        row["share"] = f"{row['money'].fen * 100 / total:.1f}%" if total else "—"
        row["colour"] = LAYER_COLOURS[row["key"]]
    chart = {
        "title": _("What each layer pays and what is left"),
        "category": _("Total cost") + " ¥" + result.amounts.total.yuan,
        "series": [
            {"name": row["label"], "fen": row["money"].fen, "yuan": row["money"].yuan, "colour": row["colour"]}
            for row in rows
        ],
    }
    return {"result": result, "rows": rows, "chart": chart}


def _errors_context(errors: list[dict[str, str]], gettext: Gettext) -> dict[str, Any]:
    shown = []
    for error in errors:
        field = error["field"].split(".")[0]
        shown.append({
            "field": field,
            "label": gettext(FIELD_LABELS[field]) if field in FIELD_LABELS else field,
            "hint": gettext(FIELD_HINTS.get(field, OTHER_HINT)),
            "detail": error["message"],
        })
    return {"errors": shown}


def _shown_values(submitted: dict[str, str]) -> dict[str, Any]:
    """The form as it was sent, to fill it in again; the checkbox ticked when its value reads as true."""
    values: dict[str, Any] = {name: submitted.get(name, "") for name in FORM_FIELDS}
    try:
        values["inclusive_enrolled"] = _TICKED.validate_strings(submitted.get("inclusive_enrolled", "false"))
    except ValidationError:
        values["inclusive_enrolled"] = False
    return values


@router.get("/", response_class=HTMLResponse, include_in_schema=False, **access(PUBLIC))
def calculator_page(
    request: Request,
    context: Annotated[AppContext, Depends(get_context)],
    lang: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    """The calculator form; `?lang=en` or `?lang=zh` switches the language and remembers it."""
    language = page_language(request)
    values = dict(EXAMPLE)
    if values["region"] not in {pset.region for pset in context.book.sets}:
        values["region"] = NATIONAL_REGION
    response = templates.TemplateResponse(
        request, "calculator.html", _page_context(request, context.book, language, values)
    )
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, language, max_age=ONE_YEAR, samesite="lax")
    return response


@router.post("/calculate", response_class=HTMLResponse, responses=FORM_RESPONSES, **_form_route())
async def calculate_form(request: Request, context: Annotated[AppContext, Depends(get_context)]) -> HTMLResponse:
    """The calculator form (多层次医疗保障测算) as HTML: the result, or every error naming its field (422).

    The same fields and checks as `POST /api/calculate`, sent as a form. With `HX-Request: true` (htmx) the
    answer is a fragment, else the whole page; its language is the page's (the `gongji_lang` cookie,
    Chinese by default).
    """
    language = page_language(request)
    gettext = gettext_for(language)
    form = await request.form()
    submitted = {name: str(form[name]) for name in FORM_FIELDS if name in form}
    values = _shown_values(submitted)
    status, settled_region = 200, None
    try:
        body = CalculateForm.model_validate_strings(submitted)
        outcome = _result_context(calculate(context.book, body, gettext), language)
        settled_region = body.region
    except ValidationError as error:
        status, outcome = 422, _errors_context(validation_errors(error.errors(), gettext), gettext)
    except GongjiError as error:
        status = error.status
        outcome = _errors_context([{"field": error.field or "", "message": error.text.render(gettext)}], gettext)
    page = _page_context(request, context.book, language, values, settled_region) | outcome
    template = "_result.html" if request.headers.get("HX-Request") == "true" else "calculator.html"
    return templates.TemplateResponse(request, template, page, status_code=status)
