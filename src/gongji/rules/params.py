"""Statutory parameters as data: YAML files with a region code (GB/T 2260) and an effective date.

Each file is one parameter set. A file may `extends:` another set by id and
override only what differs. Every parameter carries a `source` (a key of the
file's `sources:` map, or inherited ones), so the explanation of a settlement
can say where each number comes from. Amounts are written in yuan and held in
fen; rates are written as percentages ("80%") and held in basis points.
Validation errors name the file and the key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from gongji.core.errors import GongjiError, InvalidInput
from gongji.core.identity import province_codes
from gongji.core.messages import Text
from gongji.core.money import parse_yuan, percent_to_bp
from gongji.rules.rules import ASSISTANCE_CATEGORIES, HOSPITAL_LEVELS, NO_CAP, SCHEMES, FlatParams
from gongji.rules.rules import Band as RateBand

NATIONAL_REGION = "000000"


class ParameterError(GongjiError):
    """A parameter file is missing, malformed or inconsistent; the message names file and key."""


def _yuan(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("an amount in yuan is expected")
    try:
        return parse_yuan(str(value))
    except InvalidInput as error:
        raise ValueError(error.detail) from None


def _rate(value: Any) -> int:
    if not (isinstance(value, str) and value.strip().endswith("%")):
        raise ValueError('a rate is written as a percentage, e.g. "80%"')
    try:
        return percent_to_bp(value.strip().removesuffix("%"))
    except (InvalidInput, ArithmeticError) as error:
        raise ValueError(getattr(error, "detail", "not a percentage")) from None


Yuan = Annotated[int, BeforeValidator(_yuan)]
Rate = Annotated[int, BeforeValidator(_rate)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Amount(_Strict):
    value: Yuan
    source: str


class OptionalCap(_Strict):
    """An annual cap; `value: null` means no cap (不封顶)."""

    value: Yuan | None
    source: str


class Percentage(_Strict):
    value: Rate
    source: str


class AmountByLevel(_Strict):
    by_level: dict[int, Yuan]
    source: str

    @model_validator(mode="after")
    def _all_levels(self):
        if set(self.by_level) != set(HOSPITAL_LEVELS):
            raise ValueError(f"by_level needs exactly the hospital levels {list(HOSPITAL_LEVELS)}")
        return self


class RateByLevel(AmountByLevel):
    by_level: dict[int, Rate]


class BandSpec(_Strict):
    up_to: Yuan | None
    rate: Rate


class Bands(_Strict):
    """Tiered rates on the amount above the threshold (分段报销); the last band is open."""

    bands: list[BandSpec] = Field(min_length=1)
    source: str

    @model_validator(mode="after")
    def _ascending(self):
        bounds = [band.up_to for band in self.bands]
        if bounds[-1] is not None or any(bound is None for bound in bounds[:-1]):
            raise ValueError("only the last band is open-ended (up_to: null)")
        if bounds[:-1] != sorted(set(bounds[:-1])) or (bounds[:-1] and bounds[0] <= 0):
            raise ValueError("band bounds must be positive and strictly ascending")
        return self


class BasicScheme(_Strict):
    """基本医保 for one scheme: per-admission deductible by level, rate by level, annual fund cap."""

    deductible: AmountByLevel
    later_admission_share: Percentage
    rate: RateByLevel
    annual_cap: OptionalCap


class Categories(_Strict):
    value: list[str]
    source: str

    @model_validator(mode="after")
    def _known(self):
        unknown = set(self.value) - set(ASSISTANCE_CATEGORIES[1:])
        if unknown:
            raise ValueError(f"unknown assistance categories {sorted(unknown)}")
        return self


class AssistedTerms(_Strict):
    """倾斜支付: lower threshold, higher rates and a different cap for assisted people."""

    categories: Categories
    threshold: Amount
    rate_bonus: Percentage
    annual_cap: OptionalCap


class CriticalIllness(_Strict):
    """大病保险: tiered rates on the year's cumulative in-policy self-pay above a threshold."""

    name_zh: str = "大病保险"
    threshold: Amount
    bands: Bands
    annual_cap: OptionalCap
    assisted: AssistedTerms | None = None


class Assistance(_Strict):
    """医疗救助 for one category: annual deductible, rate and annual limit on in-policy residual."""

    deductible: Amount
    rate: Percentage
    annual_cap: OptionalCap


class Inclusive(_Strict):
    """惠民保: annual deductible shared by in-catalogue residual and out-of-catalogue costs."""

    name_zh: str = "惠民保"
    deductible: Amount
    rate_in_catalogue: Percentage
    rate_out_of_catalogue: Percentage
    annual_cap: OptionalCap


class ParameterSet(_Strict):
    id: str
    region: str = Field(pattern=r"^\d{6}$")
    name_zh: str
    name_en: str
    effective_from: dt.date
    sources: dict[str, str]
    class_b_selfpay_share: Percentage
    basic: dict[str, BasicScheme]
    critical_illness: dict[str, CriticalIllness | None]
    assistance: dict[str, Assistance]
    inclusive: Inclusive | None

    @model_validator(mode="after")
    def _complete(self):
        for section in ("basic", "critical_illness"):
            missing = set(SCHEMES) - set(getattr(self, section))
            extra = set(getattr(self, section)) - set(SCHEMES)
            if missing or extra:
                raise ValueError(f"{section} must name exactly the schemes {list(SCHEMES)}")
        if set(self.assistance) != set(ASSISTANCE_CATEGORIES[1:]):
            raise ValueError(f"assistance must name exactly the categories {list(ASSISTANCE_CATEGORIES[1:])}")
        for key, source in _sources_used(self.model_dump()):
            if source not in self.sources:
                raise ValueError(f"{key}: source {source!r} is not defined in sources")
        return self

    def source_text(self, key: str) -> str:
        return self.sources[key]


def _sources_used(tree: Any, path: str = "") -> list[tuple[str, str]]:
    found = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "source" and isinstance(value, str):
                found.append((path, value))
            elif key != "sources":
                found.extend(_sources_used(value, child))
    return found


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_error(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-")) or "(top)"
        lines.append(f"{path.name}: {key}: {item['msg']}")
    return "; ".join(lines)


@dataclass(frozen=True)
class ParameterBook:
    """All parameter sets of a directory, resolved by (region, date) with fallback to broader regions."""

    sets: tuple[ParameterSet, ...]
    directory: str

    def candidates(self, region: str) -> list[str]:
        """Region codes to try, most specific first: 330106 → 330100 → 330000 → national."""
        chain = [region, region[:4] + "00", region[:2] + "0000", NATIONAL_REGION]
        return list(dict.fromkeys(chain))

    def breakpoints(self, region: str) -> list[tuple[dt.date, int]]:
        """(effective_from, set index) for the sets in force for `region`, by ascending date.

        For each date the most specific region with a set in force wins.
        """
        starts = sorted({s.effective_from for s in self.sets})
        points: list[tuple[dt.date, int]] = []
        for start in starts:
            index = self.resolve_index(region, start)
            if index is not None and (not points or points[-1][1] != index):
                points.append((start, index))
        return points

    def resolve_index(self, region: str, on: dt.date) -> int | None:
        for code in self.candidates(region):
            in_force = [
                (s.effective_from, i) for i, s in enumerate(self.sets) if s.region == code and s.effective_from <= on
            ]
            if in_force:
                return max(in_force)[1]
        return None

    def resolve(self, region: str, on: dt.date) -> ParameterSet:
        return self.resolve_with_note(region, on)[0]

    def resolve_with_note(self, region: str, on: dt.date) -> tuple[ParameterSet, Text | None]:
        """The set in force, and why when it is not the region's own (a city's set for its district, or the
        national default for a region without one), so no answer silently borrows another region's rules."""
        check_region(region)
        index = self.resolve_index(region, on)
        if index is None:
            raise InvalidInput(f"no statutory parameters in force for region {region} on {on}", "discharge_date")
        pset = self.sets[index]
        if pset.region == region:
            return pset, None
        template = (
            "region {region} has no parameter set of its own in force on {date}; the national default {set} applies"
            if pset.region == NATIONAL_REGION
            else "region {region} has no parameter set of its own in force on {date}; {set} of region {owner} applies"
        )
        return pset, Text(template, {"region": region, "date": on.isoformat(), "set": pset.id, "owner": pset.region})


def check_region(region: str) -> None:
    """A six-digit GB/T 2260 code of a known province, or 000000 for the national default."""
    if not (isinstance(region, str) and len(region) == 6 and region.isascii() and region.isdigit()):
        raise InvalidInput("region must be a six-digit GB/T 2260 code", "region")
    if region != NATIONAL_REGION and region[:2] not in province_codes():
        raise InvalidInput("unknown province in region code (GB/T 2260)", "region")


def load_parameter_book(directory: Path | str | None = None) -> ParameterBook:
    """Load and validate every `*.yaml` in `directory` (default: the bundled set)."""
    if directory is None:
        root = Path(str(resources.files("gongji.data").joinpath("params")))
    else:
        root = Path(directory)
    if not root.is_dir():
        raise ParameterError(f"parameter directory not found: {root}")
    raw: dict[str, tuple[Path, dict]] = {}
    for path in sorted(root.glob("*.yaml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ParameterError(f"{path.name}: not valid YAML: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("id"), str):
            raise ParameterError(f"{path.name}: id: every parameter file needs a string id")
        if document["id"] in raw:
            raise ParameterError(f"{path.name}: id: duplicate set id {document['id']!r}")
        raw[document["id"]] = (path, document)
    if not raw:
        raise ParameterError(f"no *.yaml parameter files in {root}")

    def expanded(set_id: str, seen: tuple[str, ...] = ()) -> dict:
        path, document = raw[set_id]
        parent = document.get("extends")
        if parent is None:
            return document
        if parent not in raw:
            raise ParameterError(f"{path.name}: extends: unknown parameter set {parent!r}")
        if parent in seen:
            raise ParameterError(f"{path.name}: extends: cycle through {parent!r}")
        body = {key: value for key, value in document.items() if key != "extends"}
        return _deep_merge(expanded(parent, (*seen, set_id)), body)

    sets = []
    for set_id, (path, _document) in raw.items():
        try:
            sets.append(ParameterSet.model_validate(expanded(set_id)))
        except ValidationError as error:
            raise ParameterError(_format_error(path, error)) from None
    keys = [(s.region, s.effective_from) for s in sets]
    if len(keys) != len(set(keys)):
        raise ParameterError("two parameter sets share a region and effective date")
    if not any(s.region == NATIONAL_REGION for s in sets):
        raise ParameterError(f"a national default set (region {NATIONAL_REGION}) is required")
    return ParameterBook(sets=tuple(sets), directory=str(root))


def _cap(cap: OptionalCap) -> int:
    return NO_CAP if cap.value is None else cap.value


def assisted_terms(pset: ParameterSet, scheme: str, category: str) -> AssistedTerms | None:
    """The 大病保险 terms for assisted people, if this person's category qualifies."""
    ci = pset.critical_illness[scheme]
    if ci is None or ci.assisted is None or category not in ci.assisted.categories.value:
        return None
    return ci.assisted


def flat_params(pset: ParameterSet, scheme: str, level: int, category: str, enrolled: bool) -> FlatParams:
    """Resolve the integer parameters one episode needs; inapplicable layers get zero rates."""
    basic = pset.basic[scheme]
    ci = pset.critical_illness[scheme]
    ci_threshold, ci_bands, ci_cap = 0, (), 0
    if ci is not None:
        assisted = assisted_terms(pset, scheme, category)
        bonus = assisted.rate_bonus.value if assisted else 0
        ci_threshold = assisted.threshold.value if assisted else ci.threshold.value
        ci_cap = _cap(assisted.annual_cap if assisted else ci.annual_cap)
        lower, bands = 0, []
        for band in ci.bands.bands:
            width = NO_CAP if band.up_to is None else band.up_to - lower
            bands.append(RateBand(lower=lower, width=width, rate_bp=min(band.rate + bonus, 10_000)))
            lower = band.up_to or lower
        ci_bands = tuple(bands)
    aid = pset.assistance.get(category)
    hmb = pset.inclusive if enrolled else None
    return FlatParams(
        class_b_selfpay_bp=pset.class_b_selfpay_share.value,
        basic_deductible=basic.deductible.by_level[level],
        basic_later_share_bp=basic.later_admission_share.value,
        basic_rate_bp=basic.rate.by_level[level],
        basic_cap=_cap(basic.annual_cap),
        ci_threshold=ci_threshold,
        ci_bands=ci_bands,
        ci_cap=ci_cap,
        assistance_deductible=aid.deductible.value if aid else 0,
        assistance_rate_bp=aid.rate.value if aid else 0,
        assistance_cap=_cap(aid.annual_cap) if aid else 0,
        inclusive_deductible=hmb.deductible.value if hmb else 0,
        inclusive_rate_in_bp=hmb.rate_in_catalogue.value if hmb else 0,
        inclusive_rate_out_bp=hmb.rate_out_of_catalogue.value if hmb else 0,
        inclusive_cap=_cap(hmb.annual_cap) if hmb else 0,
    )
