"""Request and response types of persons, episodes and coverage.

Amounts and dates follow `rules.schemas`: yuan strings in, `{fen, yuan}` out;
ISO dates within the stay window; unknown fields refused. A person's
raw ID number and name go in once and never come back out: responses carry
only the masked forms.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gongji.episodes.models import Coverage, Episode, Person
from gongji.rules.rules import NO_CAP
from gongji.episodes.service import CoverageView, PersonYear, Resettlement
from gongji.rules.schemas import (
    AdmissionDate,
    AssistanceCategory,
    CostItems,
    DischargeDate,
    HospitalLevel,
    Money,
    RegionCode,
    Scheme,
    SettlementOut,
)


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: str = Field(max_length=32, description="18-digit resident ID (GB 11643); stored encrypted.")
    name: str = Field(max_length=100, examples=["张小明"])
    scheme: Scheme
    assistance_category: AssistanceCategory = "none"
    inclusive_enrolled: bool = False
    region: RegionCode


class PersonSearch(BaseModel):
    """Search by ID number (exact) or by name (matched on its mask, 张*明), optionally within a region."""

    model_config = ConfigDict(extra="forbid")

    id_number: str | None = Field(None, max_length=32)
    name: str | None = Field(None, max_length=100)
    region: RegionCode | None = None


class PersonLink(BaseModel):
    """A family account proves it knows the patient: ID number and full name must both match."""

    model_config = ConfigDict(extra="forbid")

    id_number: str = Field(max_length=32)
    name: str = Field(max_length=100)
    relationship: Literal["self", "spouse", "parent", "child", "sibling", "other"]


class PersonOut(BaseModel):
    id: int
    masked_id: str
    masked_name: str
    sex: str
    scheme: str
    assistance_category: str
    inclusive_enrolled: bool
    region: str
    created_at: dt.datetime

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        return cls.model_validate(person, from_attributes=True)


class EpisodeCreate(CostItems):
    """One hospitalisation (住院) of the person, with its itemised cost in yuan."""

    admission_date: AdmissionDate
    discharge_date: DischargeDate
    hospital_level: HospitalLevel
    icd10: str = Field(
        max_length=16, pattern=r"^\s*[A-Za-z][0-9]{2}(?:\.[0-9]{1,4})?\s*$", examples=["I63.9"],
        description="ICD-10 code: a letter, two digits, optional .digits (ASCII only).",
    )


class EpisodeAmounts(BaseModel):
    class_a: Money
    class_b: Money
    out_of_catalogue: Money
    total: Money


class EpisodeOut(BaseModel):
    id: int
    person_id: int
    admission_date: dt.date
    discharge_date: dt.date
    hospital_level: int
    icd10: str
    amounts: EpisodeAmounts

    @classmethod
    def of(cls, episode: Episode) -> EpisodeOut:
        return cls(
            id=episode.id,
            person_id=episode.person_id,
            admission_date=episode.admission_date,
            discharge_date=episode.discharge_date,
            hospital_level=episode.hospital_level,
            icd10=episode.icd10,
            amounts=EpisodeAmounts(
                class_a=Money.of(episode.class_a),
                class_b=Money.of(episode.class_b),
                out_of_catalogue=Money.of(episode.out_of_catalogue),
                total=Money.of(episode.total),
            ),
        )


class CoverageRecordOut(BaseModel):
    id: int
    kind: str = Field(description="payment, or adjustment (signed) recorded when a year is re-settled")
    layer: str
    program: str
    amount: Money
    recorded_at: dt.datetime
    recorded_by: str | None
    explanation: Any

    @classmethod
    def of(cls, record: Coverage) -> CoverageRecordOut:
        return cls(
            id=record.id, kind=record.kind, layer=record.layer, program=record.program,
            amount=Money.of(record.amount),
            recorded_at=record.recorded_at, recorded_by=record.recorded_by, explanation=record.explanation,
        )


class CoverageOut(BaseModel):
    """Everything paid towards one episode by any layer, and the residual the next layer sees."""

    episode_id: int
    total: Money
    covered: Money
    residual: Money
    records: list[CoverageRecordOut]

    @classmethod
    def of(cls, view: CoverageView) -> CoverageOut:
        return cls(
            episode_id=view.episode_id, total=Money.of(view.total), covered=Money.of(view.covered),
            residual=Money.of(view.residual), records=[CoverageRecordOut.of(record) for record in view.records],
        )


class SettleOut(BaseModel):
    """The statutory settlement of an episode and the coverage it recorded."""

    episode_id: int
    settlement: SettlementOut
    coverage: CoverageOut


class YearEpisodeOut(BaseModel):
    """One episode of the year with what each layer recorded for it (payments and adjustments summed)."""

    episode: EpisodeOut
    settled: bool
    parameter_set: str | None
    paid: dict[str, Money]
    residual: Money


class LayerYearOut(BaseModel):
    layer: str
    paid: Money
    limit: Money | None = Field(description="Annual limit of the set in force at the year's last discharge; null = none")
    left: Money | None


class PersonYearOut(BaseModel):
    """A person's year at a glance (年度结算概览)."""

    person: PersonOut
    year: int
    parameter_set: str | None
    episodes: list[YearEpisodeOut]
    layers: list[LayerYearOut]
    total: Money
    residual: Money

    @classmethod
    def of(cls, view: PersonYear) -> PersonYearOut:
        episodes = []
        for episode in view.episodes:
            paid = view.paid[episode.id]
            episodes.append(
                YearEpisodeOut(
                    episode=EpisodeOut.of(episode), settled=episode.settled_at is not None,
                    parameter_set=episode.parameter_set,
                    paid={layer: Money.of(amount) for layer, amount in paid.items()},
                    residual=Money.of(episode.total - sum(paid.values())),
                )
            )
        layers = [
            LayerYearOut(
                layer=layer.layer, paid=Money.of(layer.paid),
                limit=None if layer.limit >= NO_CAP else Money.of(layer.limit),
                left=None if layer.limit >= NO_CAP else Money.of(max(layer.limit - layer.paid, 0)),
            )
            for layer in view.layers
        ]
        return cls(
            person=PersonOut.of(view.person), year=view.year, parameter_set=view.parameter_set, episodes=episodes,
            layers=layers, total=Money.of(view.total), residual=Money.of(view.residual),
        )


class AdjustmentOut(BaseModel):
    episode_id: int
    layer: str
    recorded: Money
    recomputed: Money
    adjustment: Money


class ResettleOut(BaseModel):
    """The year recomputed in discharge order; each difference was recorded as an audited adjustment."""

    person_id: int
    year: int
    episodes: int
    adjustments: list[AdjustmentOut]

    @classmethod
    def of(cls, result: Resettlement) -> ResettleOut:
        return cls(
            person_id=result.person_id, year=result.year, episodes=len(result.settlements),
            adjustments=[
                AdjustmentOut(
                    episode_id=a.episode_id, layer=a.layer, recorded=Money.of(a.recorded),
                    recomputed=Money.of(a.recomputed), adjustment=Money.of(a.amount),
                )
                for a in result.adjustments
            ],
        )
