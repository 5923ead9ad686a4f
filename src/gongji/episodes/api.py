"""HTTP routes of persons, episodes and the coverage registry, and the statutory settlement they share with the demo.

Every route does its database work in one transaction: a failure anywhere
(bad input, a conflict, a crash) leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from gongji.api.auth import STAFF, CurrentPrincipal, access
from gongji.api.deps import AppContext, get_context
from gongji.api.problems import problem_responses
from gongji.core.audit import AuditLog, record_audit
from gongji.core.errors import Conflict, NotFound
from gongji.core.persistence import lock_row
from gongji.episodes import service
from gongji.episodes.models import Episode
from gongji.episodes.schemas import CoverageOut, EpisodeCreate, EpisodeOut, PersonCreate, PersonOut, SettleOut
from gongji.rules.cascade import LAYERS, EpisodeInput, Settlement, explain_person_year
from gongji.rules.params import ParameterBook
from gongji.rules.schemas import SettlementOut

router = APIRouter(prefix="/api", tags=["episodes"], responses=problem_responses(401, 403, 404, 409, 422))
Context = Annotated[AppContext, Depends(get_context)]
WRITERS = ("caseworker", "admin")
SETTLE_ACTION = "episode.settle_statutory"


def settle_statutory(session: Session, book: ParameterBook, episode_id: int, actor: str) -> Settlement:
    """Run the statutory cascade for one episode and record one coverage row per paying layer.

    The person's whole calendar year (by discharge date) is settled so that
    deductibles and caps carry over from earlier episodes. The episode row is
    locked first, so two concurrent settlements cannot both pass the
    "not yet settled" check. The check also reads the audit log, because a
    settlement in which no layer paid (cost below the deductible) records no
    coverage row.
    """
    episode = lock_row(session, Episode, episode_id)
    if episode is None:
        raise NotFound(f"no episode {episode_id}", "episode_id")
    statutory_paid = any(record.layer in LAYERS for record in service.coverage_of(session, episode_id).records)
    if statutory_paid or _settled_before(session, episode_id):
        raise Conflict("statutory coverage is already recorded for this episode", "episode_id")
    person = service.get_person(session, episode.person_id)
    year = service.list_episodes(session, person.id, episode.discharge_date.year)
    inputs = [
        EpisodeInput(
            episode_id=str(ep.id),
            person_key=person.person_key,
            scheme=person.scheme,
            assistance_category=person.assistance_category,
            inclusive_enrolled=person.inclusive_enrolled,
            region=person.region,
            hospital_level=ep.hospital_level,
            admission_date=ep.admission_date,
            discharge_date=ep.discharge_date,
            icd10=ep.icd10,
            class_a=ep.class_a,
            class_b=ep.class_b,
            out_of_catalogue=ep.out_of_catalogue,
        )
        for ep in year
    ]
    settlement = next(s for s in explain_person_year(inputs, book) if s.episode_id == str(episode_id))
    for line in settlement.lines:
        if line.amount > 0:
            explanation = {"parameter_set": settlement.parameter_set, **dataclasses.asdict(line)}
            service.record_coverage(
                session, episode_id, line.layer, f"{settlement.parameter_set}:{line.layer}", line.amount,
                explanation, recorded_by=actor,
            )
    record_audit(
        session, actor, SETTLE_ACTION, "episode", episode_id,
        {"parameter_set": settlement.parameter_set, **settlement.amounts},
    )
    return settlement


def _settled_before(session: Session, episode_id: int) -> bool:
    query = select(AuditLog.id).where(
        AuditLog.entity == "episode", AuditLog.entity_id == str(episode_id), AuditLog.action == SETTLE_ACTION
    )
    return session.scalar(query.limit(1)) is not None


@router.post("/persons", status_code=201, response_model=PersonOut, **access(*WRITERS))
def create_person(body: PersonCreate, context: Context, principal: CurrentPrincipal) -> PersonOut:
    """Register a person. The ID number and name are stored encrypted and only ever shown masked."""
    with context.transaction() as session:
        person = service.create_person(
            session, context.vault, body.id_number, body.name, body.scheme, body.assistance_category,
            body.inclusive_enrolled, body.region, actor=principal.username,
        )
        return PersonOut.of(person)


@router.get("/persons/{person_id}", response_model=PersonOut, **access(*STAFF))
def get_person(person_id: int, context: Context) -> PersonOut:
    with context.transaction() as session:
        return PersonOut.of(service.get_person(session, person_id))


@router.post("/persons/{person_id}/episodes", status_code=201, response_model=EpisodeOut, **access(*WRITERS))
def create_episode(person_id: int, body: EpisodeCreate, context: Context, principal: CurrentPrincipal) -> EpisodeOut:
    """Record one hospitalisation of the person with its itemised cost (yuan strings)."""
    with context.transaction() as session:
        episode = service.create_episode(
            session, person_id, body.admission_date, body.discharge_date, body.hospital_level, body.icd10,
            body.class_a, body.class_b, body.out_of_catalogue, actor=principal.username,
        )
        return EpisodeOut.of(episode)


@router.get("/episodes/{episode_id}", response_model=EpisodeOut, **access(*STAFF))
def get_episode(episode_id: int, context: Context) -> EpisodeOut:
    with context.transaction() as session:
        return EpisodeOut.of(service.get_episode(session, episode_id))


@router.post("/episodes/{episode_id}/settle", response_model=SettleOut, **access(*WRITERS))
def settle(episode_id: int, context: Context, principal: CurrentPrincipal) -> SettleOut:
    """Settle the statutory layers (基本医保 → 大病保险 → 医疗救助 → 惠民保) once; a second call is 409."""
    with context.transaction() as session:
        settlement = settle_statutory(session, context.book, episode_id, principal.username)
        return SettleOut(
            episode_id=episode_id,
            settlement=SettlementOut.of(settlement, context.book),
            coverage=CoverageOut.of(service.coverage_of(session, episode_id)),
        )


@router.get("/episodes/{episode_id}/coverage", response_model=CoverageOut, **access(*STAFF))
def coverage(episode_id: int, context: Context) -> CoverageOut:
    """What every layer has paid towards the episode, and the residual (剩余自付)."""
    with context.transaction() as session:
        return CoverageOut.of(service.coverage_of(session, episode_id))
