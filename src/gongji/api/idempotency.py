"""`Idempotency-Key` on creating requests: a retry after a timeout or a crash returns the first answer.

A client that lost the response to "create this episode" cannot tell whether it
was recorded. Sending the same `Idempotency-Key` again makes the retry safe:

* The key row (caller, key, method + path, SHA-256 of the body) is inserted
  *before* the work, and the response is stored in it, in the *same*
  transaction as the work. A crash before commit leaves neither; after
  commit both exist.
* A retry with the same key and body replays the stored status and JSON with
  `Idempotent-Replayed: true` and does nothing else.
* Two identical requests at once: the unique (user, key) constraint lets one
  insert win. On PostgreSQL the other's insert waits for the winner's commit
  and then fails; on SQLite it waits for the write lock. The loser rolls back
  and replays the winner's answer, so one record results.
* The same key with a different request is 422 naming `Idempotency-Key`.
* Errors are not stored (their transaction rolls back with the key), so a
  corrected retry with the same key can succeed.

Keys belong to the caller: another user's identical key is a different key.
A route opts in by taking an `Idempotent` parameter and running its work
through `Idempotency.run`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gongji.api.auth import CurrentPrincipal
from gongji.api.deps import AppContext, get_context
from gongji.api.models import IdempotencyRecord
from gongji.core.errors import InvalidInput

Result = TypeVar("Result", bound=BaseModel)

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255

KeyHeader = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[!-~]+$",
        description=(
            "Any unique value (a UUID is fine), 1–255 visible ASCII characters. A retry with the same key "
            f"and body returns the first response with `{REPLAYED_HEADER}: true` and creates nothing; "
            "the same key with another body is 422."
        ),
    ),
]


class _KeyTaken(Exception):
    """The (user, key) row exists: committed by an earlier or a concurrent request."""


@dataclass(frozen=True)
class Idempotency:
    """One creating request as the idempotency layer sees it."""

    context: AppContext
    key: str | None
    user_id: int
    method: str
    path: str
    fingerprint: str
    status_code: int

    def run(self, work: Callable[[Session], Result]) -> Result | JSONResponse:
        """`work(session)` in one transaction with the key's row, or the stored answer of an earlier run."""
        if self.key is None:
            with self.context.transaction() as session:
                return work(session)
        try:
            with self.context.transaction() as session:
                record = IdempotencyRecord(
                    user_id=self.user_id, key=self.key, method=self.method, path=self.path,
                    fingerprint=self.fingerprint,
                )
                session.add(record)
                try:
                    session.flush()
                except IntegrityError:
                    raise _KeyTaken from None
                result = work(session)
                record.status_code = self.status_code
                record.response = jsonable_encoder(result)
                session.flush()
                return result
        except _KeyTaken:
            pass
        with self.context.transaction() as session:
            stored = session.scalars(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.user_id == self.user_id, IdempotencyRecord.key == self.key
                )
            ).one()
        if (stored.method, stored.path, stored.fingerprint) != (self.method, self.path, self.fingerprint):
            raise InvalidInput(
                "this key was already used for a different request ({method} {path} or another body); "
                "send a new key for a new request",
                KEY_HEADER,
                values={"method": stored.method, "path": stored.path},
            )
        return JSONResponse(stored.response, status_code=stored.status_code, headers={REPLAYED_HEADER: "true"})


async def idempotency(
    request: Request,
    principal: CurrentPrincipal,
    context: Annotated[AppContext, Depends(get_context)],
    key: KeyHeader = None,
) -> Idempotency:
    """The caller, the key and the request's fingerprint (the body FastAPI has already read)."""
    body = await request.body()
    return Idempotency(
        context=context,
        key=key,
        user_id=principal.user_id,
        method=request.method,
        path=request.url.path,
        fingerprint=hashlib.sha256(body).hexdigest(),
        status_code=request.scope["route"].status_code or 200,
    )


#: A route parameter that documents the `Idempotency-Key` header and runs the route's work once per key.
Idempotent = Annotated[Idempotency, Depends(idempotency)]
