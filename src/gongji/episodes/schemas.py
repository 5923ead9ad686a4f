"""Request and response types of persons, episodes and coverage.

Amounts follow `rules.schemas`: yuan strings in, `{fen, yuan}` out. A person's
raw ID number and name go in once and never come back out: responses carry
only the masked forms.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gongji.episodes.models import Coverage, Episode, Person
from gongji.episodes.service import CoverageView
from gongji.rules.schemas import (
    AssistanceCategory,
    CostItems,
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

    admission_date: dt.date
    discharge_date: dt.date
    hospital_level: HospitalLevel
    icd10: str = Field(max_length=16, examples=["I63.9"])


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
    layer: str
    program: str
    amount: Money
    recorded_at: dt.datetime
    recorded_by: str | None
    explanation: Any

    @classmethod
    def of(cls, record: Coverage) -> CoverageRecordOut:
        return cls(
            id=record.id, layer=record.layer, program=record.program, amount=Money.of(record.amount),
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
