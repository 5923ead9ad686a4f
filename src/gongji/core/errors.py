"""Domain errors that name the offending field, so every layer reports bad input the same way."""

from __future__ import annotations

from collections.abc import Mapping

from gongji.core.messages import Text


def _text(detail: str | Text, values: Mapping[str, object] | None) -> Text:
    """The message as a gettext msgid and its values; without values, `detail` is taken literally."""
    if isinstance(detail, Text):
        return detail
    if values is None:
        return Text.of(detail)
    return Text(detail, {name: str(value) for name, value in values.items()})


class GongjiError(Exception):
    """Base of all domain errors.

    `detail` is English. With `values` it is a msgid template whose {placeholders} they fill, so the API can
    render it in the reader's language (`text`); the catalog holds the template, not each filled-in text.
    """

    status = 400
    title = "Bad request"

    def __init__(self, detail: str | Text, field: str | None = None, *, values: Mapping[str, object] | None = None):
        self.text = _text(detail, values)
        self.detail = self.text.render()
        super().__init__(f"{field}: {self.detail}" if field else self.detail)
        self.field = field


class InvalidInput(GongjiError):
    """Input that fails validation; `field` names where."""

    status = 422
    title = "Invalid input"


class NotFound(GongjiError):
    status = 404
    title = "Not found"


class Conflict(GongjiError):
    """The request contradicts recorded state (e.g. coverage beyond the episode's cost)."""

    status = 409
    title = "Conflict"


class Forbidden(GongjiError):
    status = 403
    title = "Forbidden"


class Unauthorized(GongjiError):
    status = 401
    title = "Unauthorized"


class TooManyRequests(GongjiError):
    """Refused for now (too many failed attempts, or a locked account); `retry_after` is in seconds."""

    status = 429
    title = "Too many requests"

    def __init__(
        self, detail: str, field: str | None = None, *, retry_after: int, values: Mapping[str, object] | None = None
    ):
        super().__init__(detail, field, values=values)
        self.retry_after = retry_after


class InvalidValue(ValueError):
    """A validator's refusal inside a pydantic model, which pydantic reports together with the other fields'
    errors; like `GongjiError` it carries its msgid and values (`text`) for the reader's language."""

    def __init__(self, detail: str | Text, *, values: Mapping[str, object] | None = None):
        self.text = _text(detail, values)
        super().__init__(self.text.render())
