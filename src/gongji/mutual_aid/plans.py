"""Mutual-aid operators and plans as data: YAML files, validated here, kept as versioned rows.

`gongji/data/mutual_aid/operators.yaml` lists the operators; each file under
`gongji/data/mutual_aid/plans/` is one version of one plan. Amounts are
written in yuan and held in fen, rates as percentages held in basis points,
ages in whole years (the youngest entry age may be given in days: 出生满30天).
Every plan names its sources. Validation errors name the file and the key.
The white paper (2021, chapter 3) describes the kinds of plan modelled here:
online comprehensive plans (相互宝 type), elderly cancer and single-disease
plans, union hospitalisation plans (职工互助) and village plans (村级医疗互助).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from gongji.core.access import Subject
from gongji.core.errors import GongjiError, NotFound
from gongji.mutual_aid.models import OPERATOR_KINDS, Operator, PlanVersion
from gongji.rules.params import Rate, Yuan

_ICD_RANGE = re.compile(r"^([A-Z])(\d{2})(?:\.(\d{1,2}))?(?:-([A-Z])(\d{2})(?:\.(\d{1,2}))?)?$")


class PlanError(GongjiError):
    """A plan or operator file is malformed or inconsistent; the message names file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Strict):
    zh: str = Field(min_length=1, max_length=200)
    en: str = Field(min_length=1, max_length=200)


class OperatorSpec(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    kind: Literal[OPERATOR_KINDS]  # type: ignore[valid-type]
    name: Names
    region: str = Field(pattern=r"^\d{6}$")


def icd_key(code: str) -> tuple[str, int, int]:
    """("C", 34, 1) for "C34.1": comparable, so ranges like C00-C97 are tested by order."""
    found = _ICD_RANGE.match(code.strip().upper())
    if not found or found.group(4):
        raise ValueError(f"not an ICD-10 code: {code!r}")
    return found.group(1), int(found.group(2)), int(found.group(3) or -1)


def _icd_bounds(text: str) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
    found = _ICD_RANGE.match(text.strip().upper())
    if not found:
        raise ValueError(f"not an ICD-10 code or range (e.g. C00-C97, I21, N18.5): {text!r}")
    low = (found.group(1), int(found.group(2)), int(found.group(3) or -1))
    if not found.group(4):
        high = (low[0], low[1], int(found.group(3)) if found.group(3) else 99)
    else:
        high = (found.group(4), int(found.group(5)), int(found.group(6)) if found.group(6) else 99)
    if high < low:
        raise ValueError(f"ICD-10 range runs backwards: {text!r}")
    return low, high


class DiseaseGroup(_Strict):
    """A group of diseases under the plan's own name, by ICD-10 codes or ranges, with its waiting period."""

    code: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    name: Names
    icd10: list[str] = Field(min_length=1)
    #: Days from joining before this group is covered (等待期); the plan's default when absent.
    waiting_days: int | None = Field(default=None, ge=0, le=730)
    #: A lump sum (定额) for this group, on top of or instead of reimbursement (union critical-illness lists).
    lump_sum: Yuan | None = None

    @model_validator(mode="after")
    def _ranges(self):
        for text in self.icd10:
            _icd_bounds(text)
        return self

    def contains(self, icd10: str) -> bool:
        key = icd_key(icd10)
        return any(low <= key <= high for low, high in map(_icd_bounds, self.icd10))


class AgeBandPayout(_Strict):
    """定额给付: the payout for ages [from_age, to_age] by tier (standard / entry)."""

    from_age: int = Field(ge=0, le=120)
    to_age: int = Field(ge=0, le=120)
    standard: Yuan
    entry: Yuan | None = None


class FixedPayment(_Strict):
    mode: Literal["fixed"]
    bands: list[AgeBandPayout] = Field(min_length=1)

    @model_validator(mode="after")
    def _contiguous(self):
        for before, after in zip(self.bands, self.bands[1:], strict=False):
            if after.from_age != before.to_age + 1:
                raise ValueError("age bands must be contiguous and ascending")
        if any(band.to_age < band.from_age for band in self.bands):
            raise ValueError("an age band ends before it starts")
        return self


class ReimbursementPayment(_Strict):
    """报销型: rate × (base − deductible) per claim, within per-claim and annual limits and a count of claims."""

    mode: Literal["reimbursement"]
    #: What the rate applies to, read from the coverage registry after the statutory layers:
    #: in_policy_self_pay (政策范围内个人自付) or self_pay (个人自付 after insurance, all of it).
    base: Literal["in_policy_self_pay", "self_pay"]
    deductible: Yuan = 0
    #: Village plans: a different deductible per basic scheme (农村 rural = resident, 城镇 urban = employee).
    deductible_by_scheme: dict[str, Yuan] | None = None
    rate: Rate
    min_payout: Yuan = 0
    per_claim_cap: Yuan | None = None
    annual_cap: Yuan | None = None
    #: Claims paid per member per calendar year; none means unlimited (village plans: 不限次数).
    claims_per_year: int | None = Field(default=None, ge=1)


class PostEventFunding(_Strict):
    """后分摊: approved payouts plus a management fee, shared after the fact by members protected at the cut-off."""

    mode: Literal["post_event"]
    fee_rate: Rate
    #: Each member's share of one case is at most this (0.1 yuan in the reported rules).
    per_case_cap: Yuan | None = None
    per_period_cap: Yuan | None = None
    #: Per member per calendar year (188 yuan in 2019, reported).
    annual_cap: Yuan | None = None
    #: largest_remainder: Σ charges = amount exactly; round_up: an equal share rounded up to the fen
    #: (不足1分按1分), the excess recorded as surplus for the next period.
    rounding: Literal["largest_remainder", "round_up"]
    #: What the caps leave uncollected: carried into the next period, or taken off this period's payouts.
    uncovered: Literal["carry", "reduce_payouts"]
    #: Days a failed charge is retried before the member is removed.
    retry_days: int = Field(default=5, ge=0, le=60)


class ContributionFunding(_Strict):
    """Yearly contributions: union per share (up to 5), village per head split villager : collective : donors."""

    mode: Literal["contributions"]
    per_share: Yuan
    max_shares: int = Field(default=1, ge=1, le=5)
    #: Village plans: how one head's contribution is split (villager ≤ 50 yuan; about 3:4:3).
    split: dict[Literal["member", "collective", "donors"], int] | None = None


class Calendar(_Strict):
    """Announcement and charge days of the month (公示 7th/21st, 扣款 14th/28th reported)."""

    announce_days: list[int] = Field(default=[7, 21])
    charge_days: list[int] = Field(default=[14, 28])
    notice_days: int = Field(default=7, ge=0, le=60)

    @model_validator(mode="after")
    def _days(self):
        if len(self.announce_days) != len(self.charge_days) or not self.announce_days:
            raise ValueError("each announcement day needs its charge day")
        if any(not 1 <= day <= 28 for day in self.announce_days + self.charge_days):
            raise ValueError("calendar days must lie between 1 and 28")
        return self


class QuizQuestion(_Strict):
    id: str
    text: Names
    choices: list[Names] = Field(min_length=2)
    answer: int = Field(ge=0)


class Jury(_Strict):
    """评审团: who may sit, the quiz they pass, and how many valid votes decide (≥ 1,000 reported)."""

    quorum: int = Field(default=1000, ge=1)
    min_member_days: int = Field(default=30, ge=0)
    min_age: int = Field(default=18, ge=18)
    voting_days: int = Field(default=3, ge=1, le=30)
    quiz: list[QuizQuestion] = Field(min_length=1)
    pass_mark: int = Field(ge=1)

    @model_validator(mode="after")
    def _pass_mark(self):
        if self.pass_mark > len(self.quiz):
            raise ValueError("pass_mark exceeds the number of quiz questions")
        return self


class DeclarationQuestion(_Strict):
    """A health declaration question (健康告知); answering yes to a disqualifying one refuses the join."""

    id: str
    text: Names
    disqualifying: bool = True


class PlanSpec(_Strict):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    version: int = Field(ge=1)
    operator: str
    effective_from: dt.date
    name: Names
    type: Literal["comprehensive", "single_disease", "medical_event"]
    sources: dict[str, str] = Field(min_length=1)
    free_to_join: bool = True
    #: Entry ages: from `min_age_days` days old to `max_age` years (inclusive).
    min_age_days: int = Field(default=30, ge=0)
    max_age: int = Field(ge=0, le=120)
    #: Members stay until this age (inclusive); then they leave the plan. Defaults to max_age.
    exit_age: int | None = None
    tiers: list[Literal["standard", "entry"]] = Field(default=["standard"], min_length=1)
    waiting_days: int = Field(default=90, ge=0, le=730)
    #: Days after leaving (removed or withdrawn) before the same person may join again.
    rejoin_after_days: int = Field(default=180, ge=0)
    diseases: list[DiseaseGroup] = Field(min_length=1)
    #: ICD-10 codes or ranges never covered, whatever group they fall in.
    exclusions: list[str] = []
    declaration: list[DeclarationQuestion] = []
    payment: FixedPayment | ReimbursementPayment = Field(discriminator="mode")
    funding: PostEventFunding | ContributionFunding = Field(discriminator="mode")
    calendar: Calendar = Calendar()
    jury: Jury | None = None

    @model_validator(mode="after")
    def _consistent(self):
        for text in self.exclusions:
            _icd_bounds(text)
        codes = [group.code for group in self.diseases]
        if len(set(codes)) != len(codes):
            raise ValueError("disease group codes must be unique")
        if isinstance(self.payment, FixedPayment):
            if self.payment.bands[0].from_age > 0 or self.payment.bands[-1].to_age < self.max_age:
                raise ValueError("payment bands must cover every entry age")
            if "entry" in self.tiers and any(band.entry is None for band in self.payment.bands):
                raise ValueError("an entry tier needs an entry payout in every band")
        if self.exit_age is not None and self.exit_age < self.max_age:
            raise ValueError("exit_age must not be below max_age")
        return self

    @property
    def last_age(self) -> int:
        return self.exit_age if self.exit_age is not None else self.max_age

    def disease_group(self, icd10: str) -> DiseaseGroup | None:
        """The first group covering `icd10`, or None if it is excluded or in no group."""
        key = icd_key(icd10)
        if any(low <= key <= high for low, high in map(_icd_bounds, self.exclusions)):
            return None
        return next((group for group in self.diseases if group.contains(icd10)), None)


def _data_dir() -> Path:
    return Path(str(resources.files("gongji.data") / "mutual_aid"))


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PlanError("{file}: cannot read: {error}", values={"file": path.name, "error": str(error)}) from None


def _invalid(path: Path, error: ValidationError) -> PlanError:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top)"
    return PlanError("{file}: {key}: {problem}", key, values={"file": path.name, "key": key, "problem": first["msg"]})


def load_operators(directory: Path | None = None) -> list[OperatorSpec]:
    path = (directory or _data_dir()) / "operators.yaml"
    raw = _load_yaml(path)
    if not isinstance(raw, list):
        raise PlanError("{file}: a list of operators is expected", values={"file": path.name})
    try:
        return [OperatorSpec.model_validate(item) for item in raw]
    except ValidationError as error:
        raise _invalid(path, error) from None


def load_plan_sources(directory: Path | None = None) -> list[tuple[PlanSpec, dict[str, Any]]]:
    """Every plan version under `plans/`, validated, with its source mapping as written (yuan, percentages).

    Operators must exist and (code, version) be unique. The source form is what is stored: validating it
    again gives the same spec, whereas the validated form holds fen and basis points.
    """
    base = directory or _data_dir()
    operators = {operator.code for operator in load_operators(base)}
    found: list[tuple[PlanSpec, dict[str, Any]]] = []
    seen: set[tuple[str, int]] = set()
    for path in sorted((base / "plans").glob("*.yaml")):
        raw = _load_yaml(path)
        try:
            spec = PlanSpec.model_validate(raw)
        except ValidationError as error:
            raise _invalid(path, error) from None
        if spec.operator not in operators:
            raise PlanError(
                "{file}: operator: unknown operator {code}", "operator", values={"file": path.name, "code": spec.operator}
            )
        if (spec.code, spec.version) in seen:
            raise PlanError("{file}: version: {code} v{version} is defined twice", "version",
                            values={"file": path.name, "code": spec.code, "version": spec.version})
        seen.add((spec.code, spec.version))
        found.append((spec, json.loads(json.dumps(raw, default=str))))
    return found


def load_plans(directory: Path | None = None) -> list[PlanSpec]:
    return [spec for spec, _ in load_plan_sources(directory)]


def source_digest(source: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(source, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def sync_plans(session: Session, directory: Path | None = None) -> int:
    """Store operators and plan versions not stored yet; a stored version whose file changed is refused.

    Returns how many plan versions were added. Versions are never rewritten:
    a claim or period decided under version 2 must stay explainable by it.
    """
    base = directory or _data_dir()
    for operator in load_operators(base):
        row = session.scalar(select(Operator).where(Operator.code == operator.code))
        if row is None:
            session.add(Operator(code=operator.code, kind=operator.kind, name_zh=operator.name.zh,
                                 name_en=operator.name.en, region=operator.region))
        else:
            row.kind, row.name_zh, row.name_en, row.region = (
                operator.kind, operator.name.zh, operator.name.en, operator.region
            )
    session.flush()
    added = 0
    for spec, source in load_plan_sources(base):
        digest = source_digest(source)
        stored = session.scalar(
            select(PlanVersion).where(PlanVersion.plan_code == spec.code, PlanVersion.version == spec.version)
        )
        if stored is None:
            session.add(PlanVersion(plan_code=spec.code, version=spec.version, operator_code=spec.operator,
                                    effective_from=spec.effective_from, spec=source, digest=digest))
            added += 1
        elif stored.digest != digest:
            raise PlanError(
                "plan {code} v{version} changed after it was loaded; give the change a new version",
                "version", values={"code": spec.code, "version": spec.version},
            )
    session.flush()
    return added


def plan_at(session: Session, plan_code: str, on: dt.date) -> tuple[int, PlanSpec]:
    """(version, spec) of `plan_code` in force on `on`: the latest version effective on or before it."""
    row = session.scalar(
        select(PlanVersion)
        .where(PlanVersion.plan_code == plan_code, PlanVersion.effective_from <= on)
        .order_by(PlanVersion.effective_from.desc(), PlanVersion.version.desc())
        .limit(1)
    )
    if row is None:
        raise NotFound("no plan {code} in force on {date}", "plan_code", values={"code": plan_code, "date": on})
    return row.version, PlanSpec.model_validate(row.spec)


def plan_version(session: Session, plan_code: str, version: int) -> PlanSpec:
    row = session.scalar(
        select(PlanVersion).where(PlanVersion.plan_code == plan_code, PlanVersion.version == version)
    )
    if row is None:
        raise NotFound("no plan {code} version {version}", "plan_code", values={"code": plan_code, "version": version})
    return PlanSpec.model_validate(row.spec)


def check_operator(session: Session, subject: Subject | None, plan_code: str, missing: NotFound) -> None:
    """Operator staff act on their own operator's plans only: for them another operator's record does not
    exist, so `missing` (the caller's "no such record") is raised. `None` is the platform itself."""
    if subject is not None and plan_operator(session, plan_code) != subject.operator_code:
        raise missing


def plan_operator(session: Session, plan_code: str) -> str:
    """The operator owning `plan_code` (the same for every version)."""
    code = session.scalar(select(PlanVersion.operator_code).where(PlanVersion.plan_code == plan_code).limit(1))
    if code is None:
        raise NotFound("no plan {code}", "plan_code", values={"code": plan_code})
    return code
