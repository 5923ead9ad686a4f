"""What every route shares: the engine's session factory, the identity vault and the parameter book.

Built once by the app factory and kept on `app.state.gongji`, so a request
never reloads parameters or keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gongji.core.db import transaction
from gongji.core.identity import IdentityVault
from gongji.core.settings import Settings
from gongji.ledger.signing import LedgerSigner
from gongji.rules.params import ParameterBook


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    vault: IdentityVault
    book: ParameterBook
    signer: LedgerSigner

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One request's database work: committed as a whole before the response, or not at all."""
        with transaction(self.sessions) as session:
            yield session


#: Largest id an INTEGER key holds on both databases (PostgreSQL int4), and so the largest we accept.
MAX_ROW_ID = 2**31 - 1
#: A row id in a URL path (`/persons/{person_id}`): beyond the key's range is 422 naming it, never an overflow.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Row id (1 to 2³¹−1).")]


def get_context(request: Request) -> AppContext:
    return request.app.state.gongji
