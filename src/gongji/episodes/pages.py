"""The caseworker workbench (个案工作台): sign in, find a person, see their year, record and settle episodes.

Pages are rendered on the server (Jinja2, htmx for the forms) and call the same
service functions as the API with the signed-in principal as the subject, so
scoping is the service's: a caseworker sees the persons of their regions, a
family account only its linked persons (read-only), everything else is 404.
The web session is the API's bearer token in an HttpOnly, SameSite=Strict
cookie; every state-changing form repeats the CSRF cookie (gongji.api.auth
checks both). Raw ID numbers and names go in through forms and never come
back: pages show only the masked forms, and a form with errors is not
refilled with them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gongji.api.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    PUBLIC,
    SESSION_COOKIE,
    STAFF,
    CurrentPrincipal,
    LoginRequest,
    Principal,
    Throttle,
    access,
    client_address,
    csrf_matches,
)
from gongji.api.auth_service import (
    TOKEN_LIFETIME,
    authenticate,
    issue_token,
    revoke_token,
    user_for_token,
)
from gongji.api.deps import AppContext, RowId, get_context
from gongji.api.models import ALL_ROLES
from gongji.api.problems import validation_errors
from gongji.core.access import covers_region, is_self_service
from gongji.core.errors import (
    Forbidden,
    GongjiError,
    InvalidInput,
    TooManyRequests,
    Unauthorized,
)
from gongji.core.identity import (
    normalise_id_number,
    province_codes,
    redact_personal_digits,
)
from gongji.core.messages import Text
from gongji.episodes import service
from gongji.episodes.api import READERS, WRITERS, Year
from gongji.episodes.models import Coverage, Episode
from gongji.episodes.schemas import (
    EpisodeCreate,
    EpisodeOut,
    PersonCreate,
    PersonOut,
    PersonSearch,
    PersonYearOut,
)
from gongji.rules.cascade import ASSISTANCE_CATEGORIES, HOSPITAL_LEVELS, LAYERS, SCHEMES
from gongji.rules.params import ParameterBook
from gongji.rules.schemas import (
    CHINA_TIME,
    LineOut,
    Money,
    ParameterOut,
    ParameterSetOut,
    SettlementOut,
    today_in_china,
)
from gongji.web.i18n import (
    HTML_LANG,
    LANG_COOKIE,
    LANGUAGE_NAMES,
    LANGUAGES,
    Gettext,
    gettext_for,
    page_language,
)
from gongji.web.rendering import templates

router = APIRouter(prefix="/workbench", tags=["workbench"], include_in_schema=False)
Context = Annotated[AppContext, Depends(get_context)]

HOME = "/workbench"
LOGIN = "/workbench/login"
#: Signed-in page areas: the workbench, and the mutual-aid pages (gongji.mutual_aid.pages), which share the sign-in.
PAGE_AREAS = (HOME, "/mutual-aid")
PERSON_FIELDS = ("id_number", "name", "scheme", "assistance_category", "inclusive_enrolled", "region")
#: Typed by the caseworker and never sent back to the browser, not even in a form with errors.
PERSONAL_FIELDS = ("id_number", "name")
EPISODE_FIELDS = (
    "admission_date", "discharge_date", "hospital_level", "icd10", "class_a", "class_b", "out_of_catalogue",
)
SEARCH_FIELDS = ("id_number", "name", "region")
ONE_YEAR = 365 * 24 * 3600


# --- rendering --------------------------------------------------------------------------------



def _gettext(request: Request) -> Gettext:
    return gettext_for(page_language(request))


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def _lang_href(request: Request, other: str, back: str | None) -> str:
    """The same page in the `other` language; pages answering a POST link to `back` (a GET page) instead."""
    if back is None and request.method == "GET":
        query = {key: value for key, value in request.query_params.items() if key != "lang"}
        return f"{request.url.path}?{urlencode({**query, 'lang': other})}"
    target = back or HOME
    return f"{target}{'&' if '?' in target else '?'}lang={other}"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    back: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A workbench page in the reader's language, with the CSRF token its forms repeat (set if missing)."""
    language = page_language(request)
    other = LANGUAGES[1 - LANGUAGES.index(language)]
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    principal = getattr(request.state, "principal", None)
    page = {
        "lang": language,
        "html_lang": HTML_LANG[language],
        "other_html_lang": HTML_LANG[other],
        "other_language_name": LANGUAGE_NAMES[other],
        "lang_href": _lang_href(request, other, back),
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf,
        "principal": principal,
        "can_write": principal is not None and principal.role in WRITERS,
        "can_search": principal is not None and principal.role in STAFF,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, template, page, status_code=status, headers=headers)
    if csrf != request.cookies.get(CSRF_COOKIE):
        _set_cookie(request, response, CSRF_COOKIE, csrf)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, language, max_age=ONE_YEAR, samesite="lax")
    return response


def _go(request: Request, url: str) -> Response:
    """After a successful form: htmx follows HX-Redirect; a plain form gets 303 See Other."""
    if _is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _field_errors(errors: Iterable[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """[{field, status, detail}] in the form's order, the first per field; digit runs that could be an ID masked."""
    seen: dict[str, dict[str, Any]] = {}
    for error in errors:
        field = str(error["field"]).split(".")[0] or "form"
        seen.setdefault(field, {**error, "field": field, "detail": redact_personal_digits(str(error["detail"]))})
    return sorted(seen.values(), key=lambda error: fields.index(error["field"]) if error["field"] in fields else -1)


def _from_validation(error: ValidationError, gettext: Gettext) -> list[dict[str, Any]]:
    return [
        {"field": found["field"], "status": 422, "detail": found["message"]}
        for found in validation_errors(error.errors(), gettext)
    ]


def _from_domain(error: GongjiError, gettext: Gettext) -> dict[str, Any]:
    return {"field": error.field or "form", "status": error.status, "detail": error.text.render(gettext)}


def _form_status(errors: list[dict[str, Any]]) -> int:
    return 422 if any(error["status"] == 422 for error in errors) else errors[0]["status"]


def _form_answer(
    request: Request, template: str, context: dict[str, Any], fields: tuple[str, ...], errors: list[dict[str, Any]]
) -> HTMLResponse:
    """A form with its errors: for htmx the summary plus every field's message (out of band), else the page."""
    errors = _field_errors(errors, fields)
    context = {**context, "errors": errors, "error_for": {error["field"]: error for error in errors}, "fields": fields}
    name = "workbench/_form_errors.html" if _is_htmx(request) else template
    return render(request, name, context, status=_form_status(errors))


def _form_values(form: Any, fields: tuple[str, ...], checkboxes: tuple[str, ...] = ()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in fields:
        if name in checkboxes:
            values[name] = name in form
        else:
            value = form.get(name, "")
            values[name] = value.strip() if isinstance(value, str) else ""
    return values


def _regions(book: ParameterBook, principal: Principal) -> list[tuple[str, str]]:
    """Region codes to suggest: the caller's own (unless nationwide) and those with parameter sets."""
    codes = {code for code in principal.regions if code != "000000"} | {
        pset.region for pset in book.sets if pset.region != "000000"
    }
    provinces = province_codes()
    return [(code, provinces.get(code[:2], "")) for code in sorted(codes)]


# --- access failures on pages -----------------------------------------------------------------


def _is_page_request(request: Request) -> bool:
    """A browser (or htmx) asking for a page of a signed-in area, rather than an API client."""
    if not _in_page_area(request.url.path):
        return False
    return _is_htmx(request) or "text/html" in request.headers.get("accept", "")


def _in_page_area(path: str) -> bool:
    return any(path == area or path.startswith(area + "/") for area in PAGE_AREAS)


def _safe_next(value: object) -> str | None:
    """Only a page path of our own origin may be returned to after signing in."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith(("//", "/\\")):
        return None
    return value if _in_page_area(parts.path) and not parts.path.startswith(LOGIN) else None


def install_page_errors(app: FastAPI) -> None:
    """Failures of workbench page requests answer as pages, not problem JSON (API clients still get that).

    No session (or an expired one) redirects to the login page (303; htmx follows HX-Redirect);
    403, 404 and invalid addresses show an error page with the same status.
    """
    for kind in (GongjiError, RequestValidationError):
        app.add_exception_handler(kind, _page_or(app.exception_handlers[kind]))


def _login_url(request: Request) -> str:
    """The login page, returning to the page asked for (GET only: a form's answer cannot be asked for again)."""
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or _safe_next(wanted) is None:
        return LOGIN
    return f"{LOGIN}?{urlencode({'next': wanted})}"


def _page_or(fallback: Callable[..., Any]) -> Callable[..., Any]:
    async def handle(request: Request, error: Exception) -> Response:
        if not _is_page_request(request):
            return await fallback(request, error)
        if isinstance(error, Unauthorized):
            target = _login_url(request)
            if _is_htmx(request):
                return Response(status_code=401, headers={"HX-Redirect": target})
            response = RedirectResponse(target, status_code=303)
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        status = error.status if isinstance(error, GongjiError) else 422
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyRequests) else None
        template = "workbench/_error.html" if _is_htmx(request) else "workbench/error.html"
        return render(request, template, {"status": status}, status=status, headers=headers)

    return handle


# --- signing in and out -----------------------------------------------------------------------


def _signed_in(context: AppContext, token: str | None) -> bool:
    if not token:
        return False
    with context.transaction() as session:
        return user_for_token(session, token) is not None


@router.get("/login", response_class=HTMLResponse, **access(PUBLIC))
def login_page(
    request: Request, context: Context, wanted: Annotated[str | None, Query(alias="next", max_length=500)] = None
) -> Response:
    """The sign-in form (登录); someone already signed in goes straight on."""
    if _signed_in(context, request.cookies.get(SESSION_COOKIE)):
        return RedirectResponse(_safe_next(wanted) or HOME, status_code=303)
    return render(request, "workbench/login.html", {"next": _safe_next(wanted) or ""})


def _sign_in(context: AppContext, username: str, password: str) -> str | None:
    with context.transaction() as session:
        user = authenticate(session, username, password)
        return issue_token(session, user) if user is not None else None


@router.post("/login", response_class=HTMLResponse, **access(PUBLIC))
async def login(request: Request, context: Context, throttle: Throttle) -> Response:
    """Sign in with the API's login rules: the same throttle (429 with the wait), lockout and token."""
    form = await request.form()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    wanted = _safe_next(form.get("next"))
    page = {"next": wanted or "", "username": username[:64]}
    presented = form.get(CSRF_FIELD)
    if not csrf_matches(request, presented if isinstance(presented, str) else None):
        return render(request, "workbench/login.html", {**page, "problem": "csrf"}, status=403)
    try:
        LoginRequest.model_validate({"username": username, "password": password})
    except ValidationError:
        return render(request, "workbench/login.html", {**page, "problem": "wrong"}, status=422)
    address = client_address(request)
    try:
        throttle.check(username, address)
        token = await run_in_threadpool(_sign_in, context, username, password)
    except TooManyRequests as error:
        wait = {"problem": "throttled", "wait_minutes": -(-error.retry_after // 60), "wait_seconds": error.retry_after}
        return render(
            request, "workbench/login.html", {**page, **wait}, status=429,
            headers={"Retry-After": str(error.retry_after)},
        )
    if token is None:
        throttle.failed(username, address)
        return render(request, "workbench/login.html", {**page, "problem": "wrong"}, status=401)
    throttle.forget(username)
    response = RedirectResponse(wanted or HOME, status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, token, int(TOKEN_LIFETIME.total_seconds()))
    _set_cookie(request, response, CSRF_COOKIE, secrets.token_urlsafe(32))  # a fresh one for the new session
    return response


@router.post("/logout", **access(*ALL_ROLES))
def logout(request: Request, context: Context) -> Response:
    """Sign out (退出): the token is revoked at once, both cookies are cleared."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with context.transaction() as session:
            revoke_token(session, token)
    response = RedirectResponse(LOGIN, status_code=303)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=_secure(request), httponly=True, samesite="strict")
    return response


# --- finding a person -------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse, **access(*READERS))
def home(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    """Staff search for a person; a family account sees the persons linked to it."""
    linked = []
    if is_self_service(principal):
        with context.transaction() as session:
            linked = [PersonOut.of(person) for person in service.linked_persons(session, principal)]
    return render(request, "workbench/home.html", {
        "linked": linked, "regions": _regions(context.book, principal), "values": {}, "results": None,
    })


@router.post("/search", response_class=HTMLResponse, **access(*STAFF))
async def search(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    """Persons by ID number (exact, keyed hash) or masked name and region; a POST so no ID lands in a URL."""
    gettext = _gettext(request)
    values = _form_values(await request.form(), SEARCH_FIELDS)
    query = {name: values[name] or None for name in SEARCH_FIELDS}
    errors: list[dict[str, Any]] = []
    results: list[PersonOut] | None = None
    try:
        PersonSearch.model_validate(query)

        def work() -> list[PersonOut]:
            with context.transaction() as session:
                found = service.search_persons(session, context.vault, principal, **query)
                return [PersonOut.of(person) for person in found]

        results = await run_in_threadpool(work)
    except ValidationError as error:
        errors = _from_validation(error, gettext)
    except InvalidInput as error:
        errors = [_from_domain(error, gettext)]
    errors = _field_errors(errors, SEARCH_FIELDS)
    page = {
        "regions": _regions(context.book, principal), "values": {"region": values["region"]}, "results": results,
        "errors": errors, "error_for": {error["field"]: error for error in errors}, "fields": SEARCH_FIELDS,
        "linked": [], "oob": _is_htmx(request),
    }
    status = _form_status(errors) if errors else 200
    template = "workbench/_results.html" if _is_htmx(request) else "workbench/home.html"
    return render(request, template, page, status=status)


# --- creating a person ------------------------------------------------------------------------


def _person_form_context(context: AppContext, principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    shown = {name: value for name, value in values.items() if name not in PERSONAL_FIELDS}
    return {
        "values": shown, "schemes": SCHEMES, "categories": ASSISTANCE_CATEGORIES,
        "regions": _regions(context.book, principal),
    }


@router.get("/persons/new", response_class=HTMLResponse, **access(*WRITERS))
def new_person(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    values = {"scheme": "resident", "assistance_category": "none", "inclusive_enrolled": False, "region": ""}
    mine = [code for code in principal.regions if code != "000000"]
    if len(mine) == 1:
        values["region"] = mine[0]
    page = _person_form_context(context, principal, values) | {"errors": [], "error_for": {}, "fields": PERSON_FIELDS}
    return render(request, "workbench/person_form.html", page)


@router.post("/persons", response_class=HTMLResponse, **access(*WRITERS))
async def create_person(request: Request, context: Context, principal: CurrentPrincipal) -> Response:
    """Register a person (登记); every field's error is shown next to it, all at once."""
    gettext = _gettext(request)
    values = _form_values(await request.form(), PERSON_FIELDS, checkboxes=("inclusive_enrolled",))
    errors: list[dict[str, Any]] = []
    try:
        PersonCreate.model_validate(values)
    except ValidationError as error:
        errors = _from_validation(error, gettext)
    # The service stops at its first refusal; these checks of its own let every field be named at once.
    flagged = {error["field"] for error in errors}
    try:
        if "id_number" not in flagged:
            normalise_id_number(values["id_number"], "id_number")
    except InvalidInput as error:
        errors.append(_from_domain(error, gettext))
    if "name" not in flagged and not values["name"]:
        errors.append(_from_domain(InvalidInput("name is required", "name"), gettext))
    if "region" not in flagged and not covers_region(principal, values["region"]):
        errors.append(_from_domain(Forbidden("this region is outside the regions you work in", "region"), gettext))
    if not errors:

        def work() -> int:
            with context.transaction() as session:
                person = service.create_person(
                    session, context.vault, values["id_number"], values["name"], values["scheme"],
                    values["assistance_category"], values["inclusive_enrolled"], values["region"],
                    actor=principal.username, subject=principal,
                )
                return person.id

        try:
            return _go(request, f"{HOME}/persons/{await run_in_threadpool(work)}")
        except GongjiError as error:
            errors = [_from_domain(error, gettext)]
    page = _person_form_context(context, principal, values)
    return _form_answer(request, "workbench/person_form.html", page, PERSON_FIELDS, errors)


# --- a person's year --------------------------------------------------------------------------


def _last_year(session: Session, person_id: int) -> int | None:
    """The calendar year of the person's latest discharge, the year a caseworker most likely wants to see."""
    last = session.scalar(select(func.max(Episode.discharge_date)).where(Episode.person_id == person_id))
    return last.year if last else None


@router.get("/persons/{person_id}", response_class=HTMLResponse, **access(*READERS))
def person_page(
    request: Request,
    person_id: RowId,
    context: Context,
    principal: CurrentPrincipal,
    year: Annotated[int | None, Query(ge=1950, le=2100)] = None,
) -> Response:
    """A person's year at a glance (年度结算概览): episodes in order, each layer against its annual limit.

    Without `year`, the year of the latest discharge (or this year, before any episode).
    """
    with context.transaction() as session:
        service.get_person(session, person_id, principal)  # outside the caller's scope: 404 before anything else
        last = _last_year(session, person_id)
        year = year or last or today_in_china().year
        view = PersonYearOut.of(service.person_year(session, context.book, person_id, year, principal))
    pset = _parameter_set(context.book, view.parameter_set)
    bars = [
        {"layer": layer.layer, "paid": layer.paid, "limit": layer.limit,
         "percent": min(100, layer.paid.fen * 100 // layer.limit.fen) if layer.limit and layer.limit.fen else None}
        for layer in view.layers
    ]
    return render(request, "workbench/person.html", {
        "view": view, "person": view.person, "year": year, "last_year": last, "parameter_set": pset, "bars": bars,
        "paid": Money.of(view.total.fen - view.residual.fen), "layers": LAYERS,
        "region_name": province_codes().get(view.person.region[:2], ""),
    })


def _parameter_set(book: ParameterBook, set_id: str | None) -> ParameterSetOut | None:
    return next((ParameterSetOut.of(pset) for pset in book.sets if pset.id == set_id), None)


# --- recording an episode ---------------------------------------------------------------------


def _episode_form_context(person: PersonOut, values: dict[str, Any]) -> dict[str, Any]:
    return {"person": person, "values": values, "levels": HOSPITAL_LEVELS}


@router.get("/persons/{person_id}/episodes/new", response_class=HTMLResponse, **access(*WRITERS))
def new_episode(request: Request, person_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    with context.transaction() as session:
        person = PersonOut.of(service.get_person(session, person_id, principal))
    values = {name: "" for name in EPISODE_FIELDS} | {"hospital_level": "2"}
    page = _episode_form_context(person, values) | {"errors": [], "error_for": {}, "fields": EPISODE_FIELDS}
    return render(request, "workbench/episode_form.html", page, back=f"{HOME}/persons/{person_id}")


@router.post("/persons/{person_id}/episodes", response_class=HTMLResponse, **access(*WRITERS))
async def create_episode(request: Request, person_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """Record a hospital stay (住院) with its itemised cost in yuan; errors are named next to each field."""
    gettext = _gettext(request)
    values = _form_values(await request.form(), EPISODE_FIELDS)

    def person_out() -> PersonOut:
        with context.transaction() as session:
            return PersonOut.of(service.get_person(session, person_id, principal))

    person = await run_in_threadpool(person_out)
    submitted: dict[str, Any] = dict(values)
    if values["hospital_level"].isdigit():
        submitted["hospital_level"] = int(values["hospital_level"])
    errors: list[dict[str, Any]] = []
    try:
        body = EpisodeCreate.model_validate(submitted)
    except ValidationError as error:
        errors = _from_validation(error, gettext)
    if not errors:

        def work() -> EpisodeOut:
            with context.transaction() as session:
                episode = service.create_episode(
                    session, person_id, body.admission_date, body.discharge_date, body.hospital_level, body.icd10,
                    body.class_a, body.class_b, body.out_of_catalogue, book=context.book, actor=principal.username,
                    subject=principal,
                )
                return EpisodeOut.of(episode)

        try:
            episode = await run_in_threadpool(work)
            year = episode.discharge_date.year
            return _go(request, f"{HOME}/persons/{person_id}?year={year}#episode-{episode.id}")
        except GongjiError as error:
            errors = [_from_domain(error, gettext)]
    page = _episode_form_context(person, values)
    return _form_answer(request, "workbench/episode_form.html", page, EPISODE_FIELDS, errors)


# --- settling ---------------------------------------------------------------------------------


@router.post("/episodes/{episode_id}/settle", response_class=HTMLResponse, **access(*WRITERS))
def settle(request: Request, episode_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """Settle the statutory layers of one episode against its person-year, and explain every line."""
    gettext = _gettext(request)
    with context.transaction() as session:
        settlement = service.settle_statutory(session, context.book, episode_id, principal.username, principal)
        episode = EpisodeOut.of(service.get_episode(session, episode_id, principal))
        person = PersonOut.of(service.get_person(session, episode.person_id, principal))
    result = SettlementOut.of(settlement, context.book, gettext)
    back = f"{HOME}/persons/{person.id}?year={episode.discharge_date.year}"
    return render(
        request, "workbench/settled.html",
        {"person": person, "episode": episode, "result": result, "back": back}, back=back,
    )


@router.post("/persons/{person_id}/years/{year}/resettle", response_class=HTMLResponse, **access(*WRITERS))
def resettle(request: Request, person_id: RowId, year: Year, context: Context, principal: CurrentPrincipal) -> Response:
    """Re-settle a person-year in discharge order; each difference is an audited adjustment, listed here."""
    gettext = _gettext(request)
    with context.transaction() as session:
        result = service.resettle_year(session, context.book, person_id, year, principal.username, principal)
        person = PersonOut.of(service.get_person(session, person_id, principal))
        episodes = {
            episode_id: EpisodeOut.of(service.get_episode(session, episode_id, principal))
            for episode_id in result.settlements
        }
    settlements = [
        (episodes[episode_id], SettlementOut.of(settlement, context.book, gettext))
        for episode_id, settlement in result.settlements.items()
    ]
    adjustments = [
        {"episode": episodes[a.episode_id], "layer": a.layer, "recorded": Money.of(a.recorded),
         "recomputed": Money.of(a.recomputed), "amount": Money.of(a.amount)}
        for a in result.adjustments
    ]
    back = f"{HOME}/persons/{person_id}?year={year}"
    return render(request, "workbench/resettled.html", {
        "person": person, "year": year, "settlements": settlements, "adjustments": adjustments, "back": back,
    }, back=back)


# --- the settlement sheet ---------------------------------------------------------------------


def _trace(explanation: Any, gettext: Gettext) -> LineOut | None:
    """A recorded explanation (what the settlement wrote into the coverage registry) as a readable line."""
    if not isinstance(explanation, dict) or "parameters" not in explanation:
        return None
    return LineOut(
        layer=explanation["layer"], name_zh=explanation["name_zh"], name_en=explanation["name_en"],
        applies=explanation.get("applies", True), base=Money.of(explanation["base"]),
        amount=Money.of(explanation["amount"]),
        parameters=[
            ParameterOut(name=Text.of(p["name"]).render(gettext), value=p["value"], source=p["source"])
            for p in explanation["parameters"]
        ],
        arithmetic=[Text.of(step).render(gettext) for step in explanation["arithmetic"]],
    )


def _sheet_layers(records: list[Coverage], gettext: Gettext) -> list[dict[str, Any]]:
    """Each layer's recorded total, its records (payments, adjustments) and the trace of the latest one."""
    layers = []
    for layer in service.COVERAGE_LAYERS:
        mine = [record for record in records if record.layer == layer]
        if not mine and layer not in LAYERS:
            continue
        layers.append({
            "layer": layer,
            "amount": Money.of(sum(record.amount for record in mine)),
            "records": [
                {"kind": r.kind, "amount": Money.of(r.amount), "on": r.recorded_at.astimezone(CHINA_TIME).date(),
                 "by": r.recorded_by}
                for r in mine
            ],
            "trace": _trace(mine[-1].explanation, gettext) if mine else None,
        })
    return layers


@router.get("/episodes/{episode_id}/sheet", response_class=HTMLResponse, **access(*READERS))
def sheet(request: Request, episode_id: RowId, context: Context, principal: CurrentPrincipal) -> Response:
    """The printable settlement sheet (结算单): masked person, episode, each layer with its rule trace, residual."""
    gettext = _gettext(request)
    with context.transaction() as session:
        record = service.get_episode(session, episode_id, principal)
        episode, settled_at = EpisodeOut.of(record), record.settled_at
        person = PersonOut.of(service.get_person(session, record.person_id, principal))
        view = service.coverage_of(session, episode_id, principal)
        layers = _sheet_layers(view.records, gettext)
        notes = [r.explanation.get("parameter_note") for r in view.records if isinstance(r.explanation, dict)]
        total, residual = Money.of(view.total), Money.of(view.residual)
        pset = _parameter_set(context.book, record.parameter_set)
    note = next((Text.of(n).render(gettext) for n in reversed(notes) if n), None)
    return render(request, "workbench/sheet.html", {
        "person": person, "episode": episode, "settled_at": settled_at, "layers": layers, "total": total,
        "residual": residual, "parameter_set": pset, "parameter_note": note,
        "printed_at": dt.datetime.now(CHINA_TIME).strftime("%Y-%m-%d %H:%M"),
        "back": f"{HOME}/persons/{person.id}?year={episode.discharge_date.year}",
    })
