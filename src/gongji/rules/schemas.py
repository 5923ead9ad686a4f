"""Request and response types of the statutory calculation.

Money in: yuan as a JSON *string* ("12,345.60", "¥800", "500.5", full-width
"１２，３４５．６０"), at most two decimals, parsed exactly by `core.money.parse_yuan`
into integer fen; other scripts' digits are refused. JSON
numbers are refused so that no amount ever passes through a float.
Money out: both forms, `{"fen": 1234560, "yuan": "12,345.60"}`.
Dates in: ISO strings ("2024-03-04") within the window a stay can have: from
1950-01-01 to today in China (UTC+8), discharge not before admission. A JSON
number is refused, so `0` never turns into 1970-01-01.
Unknown fields are refused (422 naming each), so a misspelt field is never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from gongji.core.errors import InvalidInput, InvalidValue
from gongji.core.messages import identity
from gongji.core.money import YUAN_PATTERN, format_yuan, parse_yuan
from gongji.core.persistence import CHINA_TIME
from gongji.rules.cascade import ASSISTANCE_CATEGORIES, HOSPITAL_LEVELS, SCHEMES, ExplanationLine, Settlement
from gongji.rules.params import ParameterBook, ParameterSet, check_region


def _yuan_to_fen(value: Any) -> int:
    if not isinstance(value, str):
        raise InvalidValue('send yuan as a string, e.g. "12,345.60"')
    try:
        return parse_yuan(value)
    except InvalidInput as error:
        raise InvalidValue(error.text) from None


#: A yuan amount typed by a person, held as fen once validated.
YuanText = Annotated[
    int,
    BeforeValidator(_yuan_to_fen),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": YUAN_PATTERN,
            "description": "Yuan, at most two decimals; commas and a ¥ sign allowed; full-width (１２，３４５．６０) too.",
            "examples": ["12,345.60"],
        },
        mode="validation",
    ),
]

#: No stay the platform settles is older; earlier dates (0001-01-01, 1900-01-01) are typos or placeholders.
EARLIEST_STAY = dt.date(1950, 1, 1)
_ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def today_in_china() -> dt.date:
    """The calendar day hospitals in China date their stays by."""
    return dt.datetime.now(CHINA_TIME).date()


def _iso_date_text(value: Any) -> Any:
    """Only "YYYY-MM-DD" text (or a date from Python callers); pydantic then checks the calendar."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_RE.fullmatch(value):
        raise InvalidValue('send the date as ISO text "YYYY-MM-DD", e.g. "2024-03-04"')
    return value


def _within_stay_window(value: dt.date) -> dt.date:
    today = today_in_china()
    if value < EARLIEST_STAY:
        raise InvalidValue("must not be before {date}", values={"date": EARLIEST_STAY.isoformat()})
    if value > today:
        raise InvalidValue("must not be after today ({today}, China time)", values={"today": today.isoformat()})
    return value


def _not_before_admission(value: dt.date, info: ValidationInfo) -> dt.date:
    """Runs on the field, not the model, so it reports together with other fields' errors."""
    admission = info.data.get("admission_date")
    if admission is not None and value < admission:
        raise InvalidValue(
            "discharge date is before admission date ({admission})", values={"admission": admission.isoformat()}
        )
    return value


_WINDOW = f"ISO date, from {EARLIEST_STAY.isoformat()} to today (China time)"
#: 入院日期: ISO text within the stay window.
AdmissionDate = Annotated[
    dt.date, BeforeValidator(_iso_date_text), AfterValidator(_within_stay_window),
    Field(description=f"入院 admission; {_WINDOW}.", examples=["2024-03-04"]),
]
#: 出院日期: as admission, and not before it (declare it after `admission_date`).
DischargeDate = Annotated[
    dt.date, BeforeValidator(_iso_date_text), AfterValidator(_within_stay_window),
    AfterValidator(_not_before_admission),
    Field(description=f"出院 discharge; {_WINDOW}, not before admission.", examples=["2024-03-18"]),
]

Scheme = Literal[SCHEMES]
AssistanceCategory = Literal[ASSISTANCE_CATEGORIES]
HospitalLevel = Literal[HOSPITAL_LEVELS]
RegionCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="GB/T 2260 code; 000000 = national default.")]


def _known_region(region: str) -> str:
    """A known province's code, checked with the other fields so that all errors of a request come back together."""
    try:
        check_region(region)
    except InvalidInput as error:
        raise InvalidValue(error.text) from None
    return region


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
    region: Annotated[RegionCode, AfterValidator(_known_region)] = "000000"
    hospital_level: HospitalLevel
    admission_date: AdmissionDate
    discharge_date: DischargeDate


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
    parameter_note: str | None = Field(
        None, description="Why this set applies when it is not the region's own (e.g. the national default)."
    )
    amounts: Breakdown
    lines: list[LineOut]

    @classmethod
    def of(cls, settlement: Settlement, book: ParameterBook, gettext: Callable[[str], str] = identity) -> SettlementOut:
        """The settlement with its texts rendered in the reader's language (`gettext`)."""
        pset = next(pset for pset in book.sets if pset.id == settlement.parameter_set)
        note = settlement.parameter_note
        return cls(
            parameter_set=ParameterSetOut.of(pset),
            parameter_note=note.render(gettext) if note else None,
            amounts=Breakdown(**{name: Money.of(fen) for name, fen in settlement.amounts.items()}),
            lines=[line_out(line, gettext) for line in settlement.lines],
        )


def line_out(line: ExplanationLine, gettext: Callable[[str], str] = identity) -> LineOut:
    return LineOut(
        layer=line.layer, name_zh=line.name_zh, name_en=line.name_en, applies=line.applies,
        base=Money.of(line.base), amount=Money.of(line.amount),
        parameters=[
            ParameterOut(name=p.name.render(gettext), value=p.value, source=p.source) for p in line.parameters
        ],
        arithmetic=[step.render(gettext) for step in line.arithmetic],
    )
