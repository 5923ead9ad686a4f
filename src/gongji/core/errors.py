"""Domain errors that name the offending field, so every layer reports bad input the same way."""

from __future__ import annotations


class GongjiError(Exception):
    """Base of all domain errors."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(f"{field}: {detail}" if field else detail)
        self.detail = detail
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

    def __init__(self, detail: str, field: str | None = None, *, retry_after: int):
        super().__init__(detail, field)
        self.retry_after = retry_after
