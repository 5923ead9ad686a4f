"""HTTP routes of persons, episodes and the coverage registry.

Every route does its database work in one transaction: a failure anywhere
(bad input, a conflict, a crash) leaves nothing half-written.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gongji.api.auth import STAFF, CurrentPrincipal, access
from gongji.api.deps import AppContext, get_context
from gongji.api.problems import problem_responses
from gongji.episodes import service
from gongji.episodes.schemas import CoverageOut, EpisodeCreate, EpisodeOut, PersonCreate, PersonOut, SettleOut
from gongji.rules.schemas import SettlementOut

router = APIRouter(prefix="/api", tags=["episodes"], responses=problem_responses(401, 403, 404, 409, 422))
Context = Annotated[AppContext, Depends(get_context)]
WRITERS = ("caseworker", "admin")


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
        settlement = service.settle_statutory(session, context.book, episode_id, principal.username)
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
