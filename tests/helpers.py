"""Test helpers importable from any test module (``from helpers import valid_id_number``)."""

from __future__ import annotations

import datetime as dt

from gongji.api.models import OPERATOR_ROLES
from gongji.core.identity import check_char


def valid_id_number(region6: str, birth: dt.date, seq: int) -> str:
    """A GB 11643 ID with a correct check digit; `seq` (0–999) is the order code, odd for men."""
    first17 = f"{region6}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


def demo_operator(role: str) -> str | None:
    """The shipped demo operator for operator staff roles (which must have one), None for every other role."""
    return "online-demo" if role in OPERATOR_ROLES else None
