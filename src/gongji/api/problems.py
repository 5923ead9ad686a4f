"""Errors as RFC 9457 problem details (application/problem+json), each naming the field at fault.

Every error the API returns has this one shape, so a client (or the web page)
can point at the offending field without parsing prose: `field` names the first
one, `errors` lists them all.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gongji.core.errors import GongjiError, TooManyRequests
from gongji.core.identity import redact_personal_digits
from gongji.core.messages import Text, identity
from gongji.web.i18n import Gettext, accepted_language, gettext_for, validation_message

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Where a request value came from; not part of the field path a client sees.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "errors"],
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "The (first) field at fault, as a dotted path."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_DESCRIPTIONS = {
    401: "No token, or an unknown or expired one",
    403: "The caller's role may not do this",
    404: "No such record",
    409: "Contradicts recorded state",
    422: "Invalid input; `field` names where",
    429: "Too many failed attempts, or the account is locked; `Retry-After` gives the seconds to wait",
}


def problem_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` documenting problem+json errors, for a router's `responses=`."""
    return {
        status: {"description": _DESCRIPTIONS[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


def problem_type(title: str) -> str:
    """A stable URI per kind of problem: "Invalid input" → urn:gongji:problem:invalid-input."""
    return "urn:gongji:problem:" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def problem_response(
    status: int,
    title: str,
    detail: str | Text,
    *,
    field: str | None = None,
    errors: list[dict[str, str | Text]] | None = None,
    headers: dict[str, str] | None = None,
    gettext: Gettext = identity,
) -> JSONResponse:
    """The one place every error leaves the API: the title and texts (`Text`) in the reader's language
    (`gettext`; the type URI stays English), and ID- and phone-length digit runs masked, whatever message a
    layer below wrote."""
    detail = redact_personal_digits(_rendered(detail, gettext))
    errors = [
        {**error, "message": redact_personal_digits(_rendered(error["message"], gettext))} for error in errors or []
    ] or None
    body: dict[str, object] = {
        "type": problem_type(title), "title": gettext(title), "status": status, "detail": detail
    }
    if field is not None:
        body["field"] = field
    body["errors"] = errors if errors is not None else ([{"field": field, "message": detail}] if field else [])
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _rendered(message: str | Text, gettext: Gettext) -> str:
    return message.render(gettext) if isinstance(message, Text) else message


def request_gettext(request: Request) -> Gettext:
    """gettext in the language the request's `Accept-Language` prefers (Chinese unless English)."""
    return gettext_for(accepted_language(request.headers.get("accept-language")))


def field_path(loc: tuple | list) -> str:
    """("body", "amounts", 0, "class_a") → "amounts.0.class_a"; a missing body is "body"."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts)


def validation_errors(errors, gettext: Gettext = identity) -> list[dict[str, str]]:
    """Pydantic error dicts as [{field, message}] in the reader's language; 'Value error, ' prefixes dropped."""
    return [{"field": field_path(error["loc"]), "message": validation_message(error, gettext)} for error in errors]


async def _domain_error(request: Request, error: GongjiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    if isinstance(error, TooManyRequests):
        headers = {"Retry-After": str(error.retry_after)}
    return problem_response(
        error.status, error.title, error.text, field=error.field, headers=headers, gettext=request_gettext(request)
    )


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    gettext = request_gettext(request)
    errors = validation_errors(error.errors(), gettext)
    first = errors[0] if errors else {"field": "body", "message": gettext("invalid request")}
    return problem_response(
        422, "Invalid input", f"{first['field']}: {first['message']}", field=first["field"], errors=errors,
        gettext=gettext,
    )


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    title = HTTPStatus(error.status_code).phrase
    return problem_response(
        error.status_code, title, getattr(error, "text", None) or Text.of(str(error.detail)), headers=error.headers,
        gettext=request_gettext(request),
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GongjiError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
