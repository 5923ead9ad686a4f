"""Which language a reader gets, and the gettext catalog of that language.

Texts are gettext msgids in English; the Chinese catalog is
`gongji/locale/zh_CN/LC_MESSAGES/messages.po` (how to extract and update it:
locale/README.md). The .po is compiled in memory at first use, so no binary
.mo file is kept next to it. Pages are Chinese by default; `?lang=en` switches
to English and a cookie remembers the choice. The API answers in the language
`Accept-Language` prefers, Chinese unless it prefers English.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from gettext import NullTranslations
from importlib import resources
from io import BytesIO
from typing import Annotated, Any

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi import Header
from pydantic_core import PydanticKnownError

from gongji.core.errors import InvalidValue

Gettext = Callable[[str], str]

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANG_COOKIE = "gongji_lang"
HTML_LANG = {"zh": "zh-CN", "en": "en"}
#: Each language named in itself, for the link that switches to it.
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}
#: The catalog of each language but English, whose texts are the msgids themselves.
CATALOGS = {"zh": "zh_CN"}


def N_(message: str) -> str:
    """Mark a msgid where it is defined (for extraction); it is translated where it is shown."""
    return message


@cache
def translations(language: str) -> NullTranslations:
    """The catalog of `language` (English: the msgids as they are)."""
    if language not in CATALOGS:
        return NullTranslations()
    po = resources.files("gongji.locale").joinpath(CATALOGS[language], "LC_MESSAGES", "messages.po")
    with po.open("rb") as source:
        catalog = read_po(source, locale=CATALOGS[language])
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled)


def gettext_for(language: str) -> Gettext:
    return translations(language).gettext


def choose_language(requested: str | None, remembered: str | None) -> str:
    """The page language: the one asked for in the query, else the one in the cookie, else Chinese."""
    for candidate in (requested, remembered):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def page_language(request) -> str:
    """A page request's language: `?lang=`, else the remembering cookie, else Chinese."""
    return choose_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def accepted_language(header: str | None) -> str:
    """The API language from `Accept-Language`: English when the header ranks it above Chinese, else Chinese.

    "en-US,en;q=0.9" → en; "zh-CN,zh;q=0.9,en;q=0.8" → zh; none, "*" or only other languages → zh.
    """
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate((header or "").split(",")):
        tag, _, parameters = item.strip().partition(";")
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and 0 < quality <= 1:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def reader_gettext(
    accept_language: Annotated[
        str | None, Header(description="zh-CN (default) or en: the language of explanations and error details")
    ] = None,
) -> Gettext:
    """Route dependency: gettext in the language the caller's `Accept-Language` prefers."""
    return gettext_for(accepted_language(accept_language))


# --- templates --------------------------------------------------------------------------------


@jinja2.pass_context
def _page_gettext(context: jinja2.runtime.Context, message: str) -> str:
    return translations(context["lang"]).gettext(message)


@jinja2.pass_context
def _page_ngettext(context: jinja2.runtime.Context, singular: str, plural: str, count: int) -> str:
    return translations(context["lang"]).ngettext(singular, plural, count)


def install_gettext(env: jinja2.Environment) -> None:
    """`{{ _("…") }}` and `{% trans %}` in templates, in the language of the page being rendered (its `lang`)."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_page_gettext, _page_ngettext, newstyle=True)


# --- problem details: pydantic's messages and the titles --------------------------------------

#: Pydantic's messages (by error type) that our request models can produce, catalogued by their
#: templates; the placeholders are filled from the error's context.
PYDANTIC_MESSAGES = {
    "missing": N_("Field required"),
    "extra_forbidden": N_("Extra inputs are not permitted"),
    "literal_error": N_("Input should be {expected}"),
    "enum": N_("Input should be {expected}"),
    "string_type": N_("Input should be a valid string"),
    "string_too_short": N_("String should have at least {min_length} character{expected_plural}"),
    "string_too_long": N_("String should have at most {max_length} character{expected_plural}"),
    "string_pattern_mismatch": N_("String should match pattern '{pattern}'"),
    "int_type": N_("Input should be a valid integer"),
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "bool_type": N_("Input should be a valid boolean"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "date_type": N_("Input should be a valid date"),
    "date_parsing": N_("Input should be a valid date in the format YYYY-MM-DD, {error}"),
    "date_from_datetime_parsing": N_("Input should be a valid date or datetime, {error}"),
    "list_type": N_("Input should be a valid list"),
    "dict_type": N_("Input should be a valid dictionary"),
    "model_attributes_type": N_("Input should be a valid dictionary or object to extract fields from"),
    "model_type": N_("Input should be a valid dictionary or instance of {class_name}"),
    "too_short": N_(
        "{field_type} should have at least {min_length} item{expected_plural} after validation, not {actual_length}"
    ),
    "too_long": N_(
        "{field_type} should have at most {max_length} item{expected_plural} after validation, not {actual_length}"
    ),
    "json_invalid": N_("Invalid JSON: {error}"),
}
#: HTTP reason phrases used as problem titles (`HTTPStatus(status).phrase`) for errors raised by the framework.
HTTP_TITLES = {
    400: N_("Bad Request"), 401: N_("Unauthorized"), 403: N_("Forbidden"), 404: N_("Not Found"),
    405: N_("Method Not Allowed"), 413: N_("Request Entity Too Large"), 415: N_("Unsupported Media Type"),
    422: N_("Unprocessable Entity"), 429: N_("Too Many Requests"), 500: N_("Internal Server Error"),
}
#: Details the framework writes itself (FastAPI, when a body cannot be read).
HTTP_DETAILS = (N_("There was an error parsing the body"),)
#: Problem titles of our domain errors (`GongjiError.title` and its subclasses').
PROBLEM_TITLES = (
    N_("Bad request"), N_("Invalid input"), N_("Not found"), N_("Conflict"), N_("Forbidden"), N_("Unauthorized"),
    N_("Too many requests"),
)


class _Blank(dict):
    """Placeholders a template names but the error's context lacks (pydantic's `expected_plural`) stay empty."""

    def __missing__(self, key: str) -> str:
        return ""


def validation_message(error: Mapping[str, Any], gettext: Gettext) -> str:
    """One pydantic error's message in the reader's language.

    Our validators' refusals (`InvalidValue`) carry their msgid and values; other value errors are looked up
    as written; pydantic's own messages by their template, with the values from the error's context. A
    message without a translation stays as pydantic wrote it.
    """
    message = str(error["msg"]).removeprefix("Value error, ")
    context = error.get("ctx") or {}
    cause = context.get("error")
    if isinstance(cause, InvalidValue):
        return cause.text.render(gettext)
    if error["type"] == "value_error":
        return gettext(message)
    template = PYDANTIC_MESSAGES.get(error["type"])
    if template is None or template != _pydantic_template(error["type"], context):
        return message
    translated = gettext(template)
    return message if translated == template else translated.format_map(_Blank(context))


def _pydantic_template(error_type: str, context: Mapping[str, Any]) -> str | None:
    """The template pydantic itself renders the error from (None if it cannot say)."""
    try:
        return PydanticKnownError(error_type, dict(context) or None).message_template  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return None
