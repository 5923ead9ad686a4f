"""A cap on request bodies, applied before any route reads one.

No request the platform takes needs more than a few kilobytes, so a body over
`MAX_BODY_BYTES` is refused with 413 as soon as that is known: at once when
`Content-Length` declares it (nothing of the body is read), or, for a chunked
body, as soon as the chunks read so far pass the cap. A client cannot make the
server hold more than 1 MiB of one request in memory.
"""

from __future__ import annotations

from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gongji.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_SCHEMA, problem_response
from gongji.core.messages import Text
from gongji.web.i18n import N_, accepted_language, gettext_for

#: 1 MiB: far above any JSON request here (an episode is under 1 KiB), far below what hurts the server.
MAX_BODY_BYTES = 1024 * 1024
#: What any operation may answer before its own handling, documented on all of them (`FastAPI(responses=...)`).
REQUEST_PROBLEMS: dict[int | str, dict] = {
    status: {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}
    for status, description in (
        (400, "The body cannot be read at all (e.g. JSON that is not UTF-8)"),
        (413, f"The body exceeds {MAX_BODY_BYTES} bytes (1 MiB)"),
    )
}


BODY_TOO_LARGE = N_("the request body exceeds {limit} bytes")


class BodyTooLarge(HTTPException):
    """Raised from `receive` mid-body; FastAPI re-raises HTTPExceptions from body reading, so it becomes 413."""

    def __init__(self, limit: int) -> None:
        # The unread rest of the body makes the connection unusable for another request.
        super().__init__(413, BODY_TOO_LARGE.format(limit=limit), headers={"Connection": "close"})
        #: The detail as a msgid and its values, rendered in the request's language.
        self.text = Text(BODY_TOO_LARGE, {"limit": str(limit)})


class BodySizeLimit:
    """Pure ASGI middleware: 413 problem+json for bodies over `max_bytes`, without reading the rest."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            # Read outside a route's own handling (no exception handler caught it).
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.max_bytes)
        language = accepted_language(dict(scope["headers"]).get(b"accept-language", b"").decode("latin-1"))
        response = problem_response(
            error.status_code, HTTPStatus(error.status_code).phrase, error.text, headers=error.headers,
            gettext=gettext_for(language),
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length, or None when absent or unreadable (the server refuses a malformed one itself)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            digits = value.strip()
            if not digits.isdigit():
                return None
            return int(digits) if len(digits) <= 18 else 10**18
    return None
