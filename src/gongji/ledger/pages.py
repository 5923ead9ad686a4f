"""The public page 查验凭证 (check a receipt): the visitor's own browser checks a ledger receipt.

The server only hands out the page and its script (static/verify.js). The
browser fetches the receipt and the published key from the public API, or
takes a receipt pasted in, and does every check itself with WebCrypto
(SHA-256 and Ed25519): leaf hash, path to the root, root equal to the signed
checkpoint's, signature valid. The server never says 有效, so a visitor who
compares the key with the one they kept need not trust it at all.
`tools/verify_receipt.py` does the same checks offline.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from gongji.api.auth import PUBLIC, access
from gongji.web.i18n import (
    HTML_LANG,
    LANG_COOKIE,
    LANGUAGE_NAMES,
    LANGUAGES,
    page_language,
)
from gongji.web.rendering import templates

router = APIRouter(tags=["pages"])

ONE_YEAR = 365 * 24 * 3600


@router.get("/ledger/verify", response_class=HTMLResponse, include_in_schema=False, **access(PUBLIC))
def verify_page(request: Request, lang: Annotated[str | None, Query()] = None) -> HTMLResponse:
    """查验凭证; `?lang=en` or `?lang=zh` switches the language and remembers it, `?leaf=N` checks leaf N at once."""
    language = page_language(request)
    other = LANGUAGES[1 - LANGUAGES.index(language)]
    leaf = request.query_params.get("leaf")
    switch = f"/ledger/verify?lang={other}" + (f"&leaf={leaf}" if leaf and leaf.isascii() and leaf.isdigit() else "")
    response = templates.TemplateResponse(request, "ledger/verify.html", {
        "lang": language, "html_lang": HTML_LANG[language], "other_html_lang": HTML_LANG[other],
        "other_language_name": LANGUAGE_NAMES[other], "lang_href": switch,
    })
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, language, max_age=ONE_YEAR, samesite="lax")
    return response
