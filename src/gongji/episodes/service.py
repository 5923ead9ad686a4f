"""Episode operations. Each takes the caller's Session and flushes; the caller commits.

The coverage registry is the information-sharing mechanism (信息共享机制): every
layer records what it paid, sees the residual, and may never pay beyond it
(no double compensation, 重复救助).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gongji.core.audit import AuditLog, record_audit
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.core.identity import (
    IdentityVault,
    birth_date,
    mask_id_number,
    mask_name,
    normalise_id_number,
    province_codes,
    sex,
)
from gongji.core.money import check_fen
from gongji.core.persistence import lock_row
from gongji.episodes.models import Coverage, Episode, Person
from gongji.rules.cascade import (
    ASSISTANCE_CATEGORIES,
    HOSPITAL_LEVELS,
    LAYERS,
    SCHEMES,
    EpisodeInput,
    Settlement,
    explain_person_year,
)
from gongji.rules.params import ParameterBook

#: Layers after the statutory ones: mutual aid (医疗互助), charity aid (慈善医疗救助), crowdfunding (大病众筹).
SUPPLEMENTARY_LAYERS = ("mutual_aid", "charity", "crowdfunding")
COVERAGE_LAYERS = LAYERS + SUPPLEMENTARY_LAYERS

ICD10_RE = re.compile(r"^[A-Z]\d{2}(?:\.\d{1,4})?$")
REGION_RE = re.compile(r"^\d{6}$")
_MAX_NAME = 50
_MAX_PROGRAM = 200


@dataclass(frozen=True)
class CoverageView:
    """What every layer has paid towards one episode, and what is left (剩余自付)."""

    episode_id: int
    total: int
    records: list[Coverage]
    covered: int
    residual: int


def create_person(
    session: Session,
    vault: IdentityVault,
    id_number: str,
    name: str,
    scheme: str,
    assistance_category: str,
    inclusive_enrolled: bool,
    region: str,
    *,
    actor: str = "system",
) -> Person:
    """Register a person; the ID and name are stored encrypted and shown masked. One person per ID."""
    number = normalise_id_number(id_number, "id_number")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > _MAX_NAME:
        raise InvalidInput(f"name must be 1–{_MAX_NAME} characters", "name")
    if any(not ch.isprintable() for ch in name):
        raise InvalidInput("name contains control characters", "name")
    name = name.strip()
    if scheme not in SCHEMES:
        raise InvalidInput(f"scheme must be one of {', '.join(SCHEMES)}", "scheme")
    if assistance_category not in ASSISTANCE_CATEGORIES:
        raise InvalidInput(
            f"assistance_category must be one of {', '.join(ASSISTANCE_CATEGORIES)}", "assistance_category"
        )
    if not isinstance(inclusive_enrolled, bool):
        raise InvalidInput("inclusive_enrolled must be true or false", "inclusive_enrolled")
    _check_region(region)

    key = vault.person_key(number)
    if session.scalar(select(Person.id).where(Person.person_key == key)) is not None:
        raise Conflict("a person with this ID number is already registered", "id_number")
    person = Person(
        person_key=key,
        id_number_enc=vault.encrypt(number, "persons.id_number_enc"),
        name_enc=vault.encrypt(name, "persons.name_enc"),
        masked_id=mask_id_number(number),
        masked_name=mask_name(name),
        birth_date=birth_date(number),
        sex=sex(number),
        scheme=scheme,
        assistance_category=assistance_category,
        inclusive_enrolled=inclusive_enrolled,
        region=region,
    )
    session.add(person)
    try:
        session.flush()
    except IntegrityError:  # a concurrent registration of the same ID won the race
        raise Conflict("a person with this ID number is already registered", "id_number") from None
    record_audit(
        session,
        actor,
        "person.create",
        "person",
        person.id,
        {"masked_id": person.masked_id, "masked_name": person.masked_name, "scheme": scheme, "region": region},
    )
    return person


def get_person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}", "person_id")
    return person


def find_person_by_id_number(session: Session, vault: IdentityVault, id_number: str) -> Person | None:
    """Look a person up by ID through the keyed hash; the raw number is never queried."""
    key = vault.person_key(normalise_id_number(id_number, "id_number"))
    return session.scalars(select(Person).where(Person.person_key == key)).one_or_none()


def create_episode(
    session: Session,
    person_id: int,
    admission_date: dt.date,
    discharge_date: dt.date,
    hospital_level: int,
    icd10: str,
    class_a: int,
    class_b: int,
    out_of_catalogue: int,
    *,
    actor: str = "system",
) -> Episode:
    """Record one episode of a registered person with its itemised cost in fen."""
    get_person(session, person_id)
    for field, value in (("admission_date", admission_date), ("discharge_date", discharge_date)):
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise InvalidInput("must be a calendar date", field)
    if discharge_date < admission_date:
        raise InvalidInput("discharge date is before admission date", "discharge_date")
    if isinstance(hospital_level, bool) or hospital_level not in HOSPITAL_LEVELS:
        raise InvalidInput("hospital_level must be 1, 2 or 3 (一级/二级/三级)", "hospital_level")
    code = icd10.strip().upper() if isinstance(icd10, str) else ""
    if not ICD10_RE.match(code):
        raise InvalidInput(f"not an ICD-10 code (letter, two digits, optional .digits): {icd10!r}", "icd10")
    amounts = {
        field: check_fen(value, field)
        for field, value in (("class_a", class_a), ("class_b", class_b), ("out_of_catalogue", out_of_catalogue))
    }
    episode = Episode(
        person_id=person_id,
        admission_date=admission_date,
        discharge_date=discharge_date,
        hospital_level=hospital_level,
        icd10=code,
        **amounts,
    )
    session.add(episode)
    session.flush()
    record_audit(
        session,
        actor,
        "episode.create",
        "episode",
        episode.id,
        {"person_id": person_id, "icd10": code, "total": episode.total},
    )
    return episode


def get_episode(session: Session, episode_id: int) -> Episode:
    episode = session.get(Episode, episode_id)
    if episode is None:
        raise NotFound(f"no episode {episode_id}", "episode_id")
    return episode


def list_episodes(session: Session, person_id: int, year: int) -> list[Episode]:
    """A person's episodes settled in one calendar year (by discharge date), in settlement order.

    Deductibles and caps accumulate over exactly this sequence (年度累计).
    """
    get_person(session, person_id)
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    return list(
        session.scalars(
            select(Episode)
            .where(Episode.person_id == person_id, Episode.discharge_date.between(start, end))
            .order_by(Episode.discharge_date, Episode.admission_date, Episode.id)
        )
    )


def record_coverage(
    session: Session,
    episode_id: int,
    layer: str,
    program: str,
    amount: int,
    explanation: Any,
    recorded_by: str | None = None,
) -> Coverage:
    """Register one layer's payment towards an episode; refuse anything beyond the residual.

    The episode row is locked (FOR UPDATE on PostgreSQL, the write lock on SQLite)
    so two layers paying at once cannot both see the same residual.
    """
    if layer not in COVERAGE_LAYERS:
        raise InvalidInput(f"layer must be one of {', '.join(COVERAGE_LAYERS)}", "layer")
    if not isinstance(program, str) or not program.strip() or len(program) > _MAX_PROGRAM:
        raise InvalidInput(f"program must be 1–{_MAX_PROGRAM} characters", "program")
    check_fen(amount, "amount")
    if amount <= 0:
        raise InvalidInput("coverage amount must be positive", "amount")
    try:
        json.dumps(explanation)
    except (TypeError, ValueError):
        raise InvalidInput("explanation must be JSON-serialisable", "explanation") from None

    episode = lock_row(session, Episode, episode_id)
    if episode is None:
        raise NotFound(f"no episode {episode_id}", "episode_id")
    covered = _covered(session, episode_id)
    residual = episode.total - covered
    if amount > residual:
        raise Conflict(
            f"coverage of {amount} fen exceeds the residual of {residual} fen (no double compensation)", "amount"
        )
    record = Coverage(
        episode_id=episode_id,
        layer=layer,
        program=program.strip(),
        amount=amount,
        explanation=explanation,
        recorded_by=recorded_by,
    )
    session.add(record)
    session.flush()
    record_audit(
        session,
        recorded_by or "system",
        "coverage.record",
        "episode",
        episode_id,
        {"coverage_id": record.id, "layer": layer, "program": record.program, "amount": amount},
    )
    return record


def coverage_of(session: Session, episode_id: int) -> CoverageView:
    """All coverage of an episode in recording order, with the residual the next layer sees."""
    episode = get_episode(session, episode_id)
    records = list(session.scalars(select(Coverage).where(Coverage.episode_id == episode_id).order_by(Coverage.id)))
    covered = sum(record.amount for record in records)
    return CoverageView(episode_id, episode.total, records, covered, episode.total - covered)


def _covered(session: Session, episode_id: int) -> int:
    return int(
        session.scalar(select(func.coalesce(func.sum(Coverage.amount), 0)).where(Coverage.episode_id == episode_id))
    )


def _check_region(region: str) -> None:
    """A 6-digit GB/T 2260 administrative code whose first two digits are a known province."""
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise InvalidInput("region must be a 6-digit GB/T 2260 code", "region")
    if region[:2] not in province_codes():
        raise InvalidInput(f"unknown province code {region[:2]!r} in region", "region")


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
    statutory_paid = any(record.layer in LAYERS for record in coverage_of(session, episode_id).records)
    if statutory_paid or _settled_before(session, episode_id):
        raise Conflict("statutory coverage is already recorded for this episode", "episode_id")
    person = get_person(session, episode.person_id)
    year = list_episodes(session, person.id, episode.discharge_date.year)
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
            record_coverage(
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
