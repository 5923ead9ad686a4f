"""HTTP routes of persons, episodes and the coverage registry.

Every route does its database work in one transaction: a failure anywhere
(bad input, a conflict, a crash) leaves nothing half-written.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as FastApiPath
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from gongji.api.auth import STAFF, CurrentPrincipal, access
from gongji.api.deps import AppContext, RowId, get_context
from gongji.api.idempotency import Idempotent
from gongji.api.problems import problem_responses
from gongji.core.errors import NotFound
from gongji.episodes import service
from gongji.episodes.schemas import (
    CoverageOut,
    EpisodeCreate,
    EpisodeOut,
    PersonCreate,
    PersonLink,
    PersonOut,
    PersonSearch,
    PersonYearOut,
    ResettleOut,
    SettleOut,
)
from gongji.rules.schemas import SettlementOut
from gongji.web.i18n import Gettext, reader_gettext

router = APIRouter(prefix="/api", tags=["episodes"], responses=problem_responses(401, 403, 404, 409, 422))
Context = Annotated[AppContext, Depends(get_context)]
WRITERS = ("caseworker", "admin")
#: Reads are open to staff and to family accounts; `service.readable_persons` narrows what each one sees.
READERS = (*STAFF, "family")
#: A calendar year of settlement (结算年度).
Year = Annotated[int, FastApiPath(ge=1950, le=2100, description="Calendar year of discharge")]


@router.post("/persons", status_code=201, response_model=PersonOut, **access(*WRITERS))
def create_person(
    body: PersonCreate, context: Context, principal: CurrentPrincipal, once: Idempotent
) -> PersonOut | JSONResponse:
    """Register a person. The ID number and name are stored encrypted and only ever shown masked."""

    def work(session: Session) -> PersonOut:
        person = service.create_person(
            session, context.vault, body.id_number, body.name, body.scheme, body.assistance_category,
            body.inclusive_enrolled, body.region, actor=principal.username, subject=principal,
        )
        return PersonOut.of(person)

    return once.run(work)


@router.get("/persons/{person_id}", response_model=PersonOut, **access(*READERS))
def get_person(person_id: RowId, context: Context, principal: CurrentPrincipal) -> PersonOut:
    """One person, masked; outside the caller's regions (or links, for a family account) it does not exist."""
    with context.transaction() as session:
        return PersonOut.of(service.get_person(session, person_id, principal))


@router.post("/persons/search", response_model=list[PersonOut], **access(*STAFF))
def search_persons(body: PersonSearch, context: Context, principal: CurrentPrincipal) -> list[PersonOut]:
    """Find persons by ID number (exact, via the keyed hash) or by name within a region, in the caller's scope.

    A POST, so the ID number never appears in a URL or an access log.
    """
    with context.transaction() as session:
        found = service.search_persons(
            session, context.vault, principal, id_number=body.id_number, name=body.name, region=body.region
        )
        return [PersonOut.of(person) for person in found]


@router.get("/me/persons", response_model=list[PersonOut], **access("family"))
def my_persons(context: Context, principal: CurrentPrincipal) -> list[PersonOut]:
    """The patients linked to this family account (患者家属)."""
    with context.transaction() as session:
        return [PersonOut.of(person) for person in service.linked_persons(session, principal)]


@router.post("/me/persons", status_code=201, response_model=PersonOut, **access("family"))
def link_my_person(
    body: PersonLink, context: Context, principal: CurrentPrincipal, once: Idempotent
) -> PersonOut | JSONResponse:
    """Link a registered patient to this family account by the patient's ID number and full name.

    A wrong pair is counted (in its own transaction) towards the daily limit of attempts.
    """

    def work(session: Session) -> PersonOut:
        link = service.link_person(session, context.vault, principal, body.id_number, body.name, body.relationship)
        return PersonOut.of(service.get_person(session, link.person_id, principal))

    try:
        return once.run(work)
    except NotFound:
        with context.transaction() as session:
            service.record_link_failure(session, principal)
        raise


@router.post("/persons/{person_id}/episodes", status_code=201, response_model=EpisodeOut, **access(*WRITERS))
def create_episode(
    person_id: RowId, body: EpisodeCreate, context: Context, principal: CurrentPrincipal, once: Idempotent
) -> EpisodeOut | JSONResponse:
    """Record one hospitalisation of the person with its itemised cost (yuan strings)."""

    def work(session: Session) -> EpisodeOut:
        episode = service.create_episode(
            session, person_id, body.admission_date, body.discharge_date, body.hospital_level, body.icd10,
            body.class_a, body.class_b, body.out_of_catalogue, book=context.book, actor=principal.username,
            subject=principal,
        )
        return EpisodeOut.of(episode)

    return once.run(work)


@router.get("/episodes/{episode_id}", response_model=EpisodeOut, **access(*READERS))
def get_episode(episode_id: RowId, context: Context, principal: CurrentPrincipal) -> EpisodeOut:
    with context.transaction() as session:
        return EpisodeOut.of(service.get_episode(session, episode_id, principal))


@router.post("/episodes/{episode_id}/settle", response_model=SettleOut, **access(*WRITERS))
def settle(
    episode_id: RowId,
    context: Context,
    principal: CurrentPrincipal,
    once: Idempotent,
    gettext: Annotated[Gettext, Depends(reader_gettext)],
) -> SettleOut | JSONResponse:
    """Settle the statutory layers (基本医保 → 大病保险 → 医疗救助 → 惠民保) once; a second call is 409.

    A retry with the same Idempotency-Key returns the first settlement instead of 409. The explanation is in
    the `Accept-Language` language (Chinese by default).
    """

    def work(session: Session) -> SettleOut:
        settlement = service.settle_statutory(session, context.book, episode_id, principal.username, principal)
        return SettleOut(
            episode_id=episode_id,
            settlement=SettlementOut.of(settlement, context.book, gettext),
            coverage=CoverageOut.of(service.coverage_of(session, episode_id, principal)),
        )

    return once.run(work)


@router.get("/episodes/{episode_id}/coverage", response_model=CoverageOut, **access(*READERS))
def coverage(episode_id: RowId, context: Context, principal: CurrentPrincipal) -> CoverageOut:
    """What every layer has paid towards the episode, and the residual (剩余自付)."""
    with context.transaction() as session:
        return CoverageOut.of(service.coverage_of(session, episode_id, principal))


@router.get("/persons/{person_id}/years/{year}", response_model=PersonYearOut, **access(*READERS))
def person_year(person_id: RowId, year: Year, context: Context, principal: CurrentPrincipal) -> PersonYearOut:
    """A person's year at a glance: episodes in order, each layer's payments, year to date against every limit."""
    with context.transaction() as session:
        return PersonYearOut.of(service.person_year(session, context.book, person_id, year, principal))


@router.post("/persons/{person_id}/years/{year}/resettle", response_model=ResettleOut, **access(*WRITERS))
def resettle(person_id: RowId, year: Year, context: Context, principal: CurrentPrincipal) -> ResettleOut:
    """Re-settle a person-year in discharge order; differences become audited adjustment lines (调整)."""
    with context.transaction() as session:
        return ResettleOut.of(
            service.resettle_year(session, context.book, person_id, year, principal.username, principal)
        )
