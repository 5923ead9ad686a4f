"""Request and response types of the statutory calculation.

Money in: yuan as a JSON *string* ("12,345.60", "¥800", "500.5"), at most two
decimals, parsed exactly by `core.money.parse_yuan` into integer fen. JSON
numbers are refused so that no amount ever passes through a float.
Money out: both forms, `{"fen": 1234560, "yuan": "12,345.60"}`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from gongji.core.errors import InvalidInput
from gongji.core.money import YUAN_PATTERN, format_yuan, parse_yuan
from gongji.rules.cascade import ASSISTANCE_CATEGORIES, HOSPITAL_LEVELS, SCHEMES, ExplanationLine, Settlement
from gongji.rules.params import ParameterBook, ParameterSet


def _yuan_to_fen(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError('send yuan as a string, e.g. "12,345.60"')
    try:
        return parse_yuan(value)
    except InvalidInput as error:
        raise ValueError(error.detail) from None


#: A yuan amount typed by a person, held as fen once validated.
YuanText = Annotated[
    int,
    BeforeValidator(_yuan_to_fen),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": YUAN_PATTERN,
            "description": "Yuan, at most two decimals; commas and a ¥ sign allowed.",
            "examples": ["12,345.60"],
        },
        mode="validation",
    ),
]

Scheme = Literal[SCHEMES]
AssistanceCategory = Literal[ASSISTANCE_CATEGORIES]
HospitalLevel = Literal[HOSPITAL_LEVELS]
RegionCode = Annotated[str, Field(pattern=r"^\d{6}$", description="GB/T 2260 code; 000000 = national default.")]


class Money(BaseModel):
    fen: int
    yuan: str

    @classmethod
    def of(cls, fen: int) -> Money:
        return cls(fen=fen, yuan=format_yuan(fen))


class CostItems(BaseModel):
    """An episode's itemised cost: 甲类 class A, 乙类 class B, 目录外 out of catalogue."""

    model_config = ConfigDict(extra="forbid")

    class_a: YuanText = Field(description="甲类 class A, yuan")
    class_b: YuanText = Field(description="乙类 class B, yuan")
    out_of_catalogue: YuanText = Field(description="目录外 out of catalogue, yuan")


class CalculateRequest(CostItems):
    """A what-if for one episode of an anonymous person; nothing is stored."""

    scheme: Scheme
    assistance_category: AssistanceCategory = "none"
    inclusive_enrolled: bool = False
    region: RegionCode = "000000"
    hospital_level: HospitalLevel
    admission_date: dt.date
    discharge_date: dt.date


class ParameterOut(BaseModel):
    name: str
    value: str
    source: str


class LineOut(BaseModel):
    """One layer's payment with the parameters (and their sources) and arithmetic behind it."""

    layer: str
    name_zh: str
    name_en: str
    applies: bool
    base: Money
    amount: Money
    parameters: list[ParameterOut]
    arithmetic: list[str]


class ParameterSetOut(BaseModel):
    id: str
    region: str
    name_zh: str
    name_en: str
    effective_from: dt.date

    @classmethod
    def of(cls, pset: ParameterSet) -> ParameterSetOut:
        return cls(
            id=pset.id, region=pset.region, name_zh=pset.name_zh, name_en=pset.name_en,
            effective_from=pset.effective_from,
        )


class Breakdown(BaseModel):
    """What each statutory layer pays and the residual (个人自付); the parts sum to the total."""

    total: Money
    basic: Money
    critical_illness: Money
    assistance: Money
    inclusive: Money
    residual: Money


class SettlementOut(BaseModel):
    parameter_set: ParameterSetOut
    amounts: Breakdown
    lines: list[LineOut]

    @classmethod
    def of(cls, settlement: Settlement, book: ParameterBook) -> SettlementOut:
        pset = next(pset for pset in book.sets if pset.id == settlement.parameter_set)
        return cls(
            parameter_set=ParameterSetOut.of(pset),
            amounts=Breakdown(**{name: Money.of(fen) for name, fen in settlement.amounts.items()}),
            lines=[line_out(line) for line in settlement.lines],
        )


def line_out(line: ExplanationLine) -> LineOut:
    data = dataclasses.asdict(line)
    return LineOut(**{**data, "base": Money.of(line.base), "amount": Money.of(line.amount)})
