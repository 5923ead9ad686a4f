"""Money as integer fen (分).

The one rounding rule: a rate is held in integer basis points (1 bp = 0.01%),
an amount times a rate is computed exactly in integers and rounded half up to
the fen (四舍五入) — ``(fen * bp + 5000) // 10000`` — once per formula
application. Shares of a total are split by the largest-remainder method so
the parts always sum to the whole.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from gongji.core.errors import InvalidInput

FEN_PER_YUAN = 100
BP_PER_UNIT = 10_000
#: No single amount the platform handles exceeds 100 million yuan.
MAX_FEN = 100_000_000 * FEN_PER_YUAN

#: Full-width digits, comma and point as a Chinese keyboard's 全角 mode types them (１２，３４５．６０).
_DIGIT = "[0-9０-９]"
#: Accepted yuan text: optional ¥/￥ sign, digits optionally grouped by commas in threes, at most two
#: decimals; ASCII or full-width. Explicit [0-9] because \d would also match other scripts' digits.
#: The OpenAPI schema documents this pattern and the CSV reader (Polars) checks it.
YUAN_PATTERN = rf"^[¥￥]?[ \u3000]*(?:{_DIGIT}{{1,3}}(?:[,，]{_DIGIT}{{3}})+|{_DIGIT}+)(?:[.．]{_DIGIT}{{0,2}})?$"
_YUAN_RE = re.compile(YUAN_PATTERN)
_MINUS_RE = re.compile(r"^\s*[-−]")
_TOO_PRECISE_RE = re.compile(r"\.[0-9]{3,}\s*$")
_MAX_WHOLE_DIGITS = len(str(MAX_FEN // FEN_PER_YUAN))


def _is_typeable(ch: str) -> bool:
    """ASCII, the full-width forms (U+FF01–FF5E, ￥), the ideographic space, ¥ and the minus sign."""
    return ch.isascii() or "\uff01" <= ch <= "\uff5e" or ch in "￥\u3000¥−"


def parse_yuan(text: str | int | Decimal, field: str = "amount", *, allow_negative: bool = False) -> int:
    """Parse a yuan amount typed by a person ("12,345.6", "¥12345.60", "１２，３４５．６") into fen, exactly.

    Full-width forms are folded to ASCII (NFKC) first; any other script's digits (٣, ๓),
    superscripts (²) or circled numbers (①) are refused rather than read as numbers.
    """
    raw = str(text).strip()
    foreign = next((ch for ch in raw if not _is_typeable(ch)), None)
    if foreign is not None:
        raise InvalidInput(
            "amount may use only the digits 0–9 (or full-width ０–９), ',', '.' and ¥; "
            "{character} (U+{code}) is not allowed",
            field,
            values={"character": repr(foreign), "code": f"{ord(foreign):04X}"},
        )
    raw = unicodedata.normalize("NFKC", raw).strip()
    negative = False
    if _MINUS_RE.match(raw):
        if not allow_negative:
            raise InvalidInput("amount must not be negative: {text}", field, values={"text": repr(raw)})
        negative = True
        raw = _MINUS_RE.sub("", raw, count=1).strip()
    if _TOO_PRECISE_RE.search(raw):
        raise InvalidInput("at most two decimals (fen) allowed: {text}", field, values={"text": repr(raw)})
    if not _YUAN_RE.fullmatch(raw):
        raise InvalidInput("not a yuan amount: {text}", field, values={"text": repr(raw)})
    digits = raw.lstrip("¥").strip().replace(",", "")
    too_large = "amount exceeds the ceiling of {ceiling} yuan: {text}"
    if len(digits.partition(".")[0].lstrip("0")) > _MAX_WHOLE_DIGITS:
        raise InvalidInput(too_large, field, values={"ceiling": format_yuan(MAX_FEN), "text": repr(raw)})
    fen = int(Decimal(digits) * FEN_PER_YUAN)
    if fen > MAX_FEN:
        raise InvalidInput(too_large, field, values={"ceiling": format_yuan(MAX_FEN), "text": repr(raw)})
    return -fen if negative else fen


def check_fen(value: int, field: str = "amount", *, allow_negative: bool = False) -> int:
    """Validate an amount already in fen (from JSON or Parquet)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("amount in fen must be an integer, got {value}", field, values={"value": repr(value)})
    if value < 0 and not allow_negative:
        raise InvalidInput("amount must not be negative: {text}", field, values={"text": value})
    if abs(value) > MAX_FEN:
        raise InvalidInput(
            "amount exceeds the ceiling of {ceiling} yuan", field, values={"ceiling": format_yuan(MAX_FEN)}
        )
    return value


def format_yuan(fen: int, *, grouping: bool = True) -> str:
    """Render fen as yuan with two decimals ("12,345.60")."""
    sign = "-" if fen < 0 else ""
    whole, part = divmod(abs(fen), FEN_PER_YUAN)
    whole_text = f"{whole:,}" if grouping else str(whole)
    return f"{sign}{whole_text}.{part:02d}"


def apply_rate(fen, bp):
    """fen × bp / 10000, rounded half up to the fen; works on ints and on Polars/NumPy columns."""
    return (fen * bp + BP_PER_UNIT // 2) // BP_PER_UNIT


def percent_to_bp(text: str | int | float | Decimal, field: str = "rate") -> int:
    """Turn a percentage such as "70", "12.5" or "0.6" into integer basis points, exactly."""
    value = Decimal(str(text)) * 100
    if value != value.to_integral_value():
        raise InvalidInput("rate finer than 0.01% not supported: {text}", field, values={"text": text})
    bp = int(value)
    if not 0 <= bp <= BP_PER_UNIT:
        raise InvalidInput("rate must lie between 0% and 100%: {text}", field, values={"text": text})
    return bp


def split_largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Split `total` fen in proportion to integer `weights`; parts sum exactly to `total`.

    Each part gets the floor of its exact share; the fen left over go one each
    to the largest remainders (ties to the earlier part).
    """
    if total < 0:
        raise InvalidInput("total to split must not be negative", "total")
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise InvalidInput("weights must be non-negative and not all zero", "weights")
    weight_sum = sum(weights)
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    leftover = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        floors[i] += 1
    return floors
