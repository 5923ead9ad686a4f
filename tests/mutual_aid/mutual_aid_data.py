"""Constants and data makers the mutual-aid tests share; a module of its own, because `from conftest import …`
finds whichever conftest comes first on the path when several test folders run together."""

from __future__ import annotations

import datetime as dt
import itertools

from helpers import valid_id_number

#: Every test runs "today" = 1 March 2025 unless it says otherwise.
NOW = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
#: The comprehensive plan's health declaration, answered "no" throughout.
NO = {"q-cancer": False, "q-hospital": False}

_seqs = itertools.count(100)


def person_id_number(birth: dt.date, region: str = "330102") -> str:
    """A valid resident ID born on `birth`, a different one at each call."""
    return valid_id_number(region, birth, next(_seqs) % 1000)
