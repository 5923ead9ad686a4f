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
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, false, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gongji.core.access import Subject, covers_region, is_self_service, region_prefixes
from gongji.core.audit import AuditLog, record_audit
from gongji.core.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests
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
from gongji.core.persistence import lock_row, utcnow
from gongji.episodes.models import COVERAGE_KINDS, Coverage, Episode, Person, PersonAccount
from gongji.ledger.rules import canonical, iso_utc
from gongji.ledger.service import enqueue_leaf, register_leaf_source
from gongji.rules.cascade import (
    ASSISTANCE_CATEGORIES,
    HOSPITAL_LEVELS,
    LAYERS,
    SCHEMES,
    EpisodeInput,
    RecordedEpisode,
    Settlement,
    explain_person_year,
    recorded_year,
    settle_episode,
)
from gongji.rules.params import ParameterBook, flat_params

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
    subject: Subject | None = None,
) -> Person:
    """Register a person; the ID and name are stored encrypted and shown masked. One person per ID."""
    number = normalise_id_number(id_number, "id_number")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > _MAX_NAME:
        raise InvalidInput("name must be 1–{max} characters", "name", values={"max": _MAX_NAME})
    if any(not ch.isprintable() for ch in name):
        raise InvalidInput("name contains control characters", "name")
    name = name.strip()
    if scheme not in SCHEMES:
        raise InvalidInput("scheme must be one of {choices}", "scheme", values={"choices": ", ".join(SCHEMES)})
    if assistance_category not in ASSISTANCE_CATEGORIES:
        raise InvalidInput(
            "assistance_category must be one of {choices}", "assistance_category",
            values={"choices": ", ".join(ASSISTANCE_CATEGORIES)},
        )
    if not isinstance(inclusive_enrolled, bool):
        raise InvalidInput("inclusive_enrolled must be true or false", "inclusive_enrolled")
    _check_region(region)
    if subject is not None and not covers_region(subject, region):
        raise Forbidden("this region is outside the regions you work in", "region")

    key = vault.person_key(number)
    if session.scalar(select(Person.id).where(Person.person_key == key)) is not None:
        raise Conflict("a person with this ID number is already registered", "id_number")
    person = Person(
        person_key=key,
        id_number_enc=vault.encrypt(number, "persons.id_number_enc"),
        name_enc=vault.encrypt(name, "persons.name_enc"),
        masked_id=mask_id_number(number),
        masked_name=mask_name(name),
        birth_year=birth_date(number).year,
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


@dataclass(frozen=True)
class NewPerson:
    """One row of a roster to register (an operator's members, say): validated like `create_person`."""

    id_number: str
    name: str
    scheme: str = "resident"
    region: str = "330100"


def register_persons(
    session: Session, vault: IdentityVault, rows: Sequence[NewPerson], *, actor: str, field: str = "rows"
) -> list[int]:
    """Find or register many persons at once; their ids in the rows' order.

    Each row is checked as `create_person` checks one, and an error names the row
    (`rows[12].id_number`). Known persons are matched by keyed hash and left as they
    are; new ones are inserted in one statement and audited as one batch, so a roster of
    tens of thousands costs seconds, not minutes.
    """
    numbers: list[str] = []
    for index, row in enumerate(rows):
        numbers.append(normalise_id_number(row.id_number, f"{field}[{index}].id_number"))
        name = row.name.strip() if isinstance(row.name, str) else ""
        if not name or len(name) > _MAX_NAME or any(not ch.isprintable() for ch in name):
            raise InvalidInput("name must be 1–{max} characters", f"{field}[{index}].name", values={"max": _MAX_NAME})
        if row.scheme not in SCHEMES:
            raise InvalidInput("scheme must be one of {choices}", f"{field}[{index}].scheme",
                               values={"choices": ", ".join(SCHEMES)})
        _check_region(row.region)
    keys = [vault.person_key(number) for number in numbers]
    known: dict[str, int] = {}
    for start in range(0, len(keys), 5_000):
        chunk = keys[start:start + 5_000]
        known.update(session.execute(select(Person.person_key, Person.id).where(Person.person_key.in_(chunk))).all())
    fresh, seen = [], set(known)
    for key, number, row in zip(keys, numbers, rows, strict=True):
        if key in seen:
            continue
        seen.add(key)
        name = row.name.strip()
        fresh.append({
            "person_key": key, "id_number_enc": vault.encrypt(number, "persons.id_number_enc"),
            "name_enc": vault.encrypt(name, "persons.name_enc"), "masked_id": mask_id_number(number),
            "masked_name": mask_name(name), "birth_year": birth_date(number).year, "sex": sex(number),
            "scheme": row.scheme, "assistance_category": "none", "inclusive_enrolled": False, "region": row.region,
            "created_at": utcnow(),
        })
    if fresh:
        session.execute(insert(Person), fresh)
        for start in range(0, len(fresh), 5_000):
            chunk = [row["person_key"] for row in fresh[start:start + 5_000]]
            known.update(session.execute(select(Person.person_key, Person.id).where(Person.person_key.in_(chunk))
                                         ).all())
        record_audit(session, actor, "person.register_batch", "person", "batch",
                     {"registered": len(fresh), "already_known": len(rows) - len(fresh)})
    return [known[key] for key in keys]


def readable_persons(subject: Subject | None) -> Select[tuple[Person]]:
    """The persons a caller may see — the one place this context narrows its reads (谁能看到什么).

    Staff see the persons of their regions (prefix match on GB/T 2260 codes,
    000000 = all); a self-service family account sees only the persons linked
    to it; `None` is the system itself (CLI, demo loader). Everything outside
    is answered as if it did not exist (404), so ids reveal nothing.
    """
    query = select(Person)
    if subject is None:
        return query
    if is_self_service(subject):
        linked = select(PersonAccount.person_id).where(PersonAccount.user_id == subject.user_id)
        return query.where(Person.id.in_(linked))
    prefixes = region_prefixes(subject.regions)
    if "" in prefixes:
        return query
    return query.where(or_(false(), *(Person.region.startswith(prefix, autoescape=True) for prefix in prefixes)))


def get_person(session: Session, person_id: int, subject: Subject | None = None) -> Person:
    person = session.scalars(readable_persons(subject).where(Person.id == person_id)).one_or_none()
    if person is None:
        raise NotFound("no person {id}", "person_id", values={"id": person_id})
    return person


def search_persons(
    session: Session,
    vault: IdentityVault,
    subject: Subject | None,
    *,
    id_number: str | None = None,
    name: str | None = None,
    region: str | None = None,
    limit: int = 50,
) -> list[Person]:
    """Find persons by ID number (exact, through the keyed hash) or by name (its mask, 张*明) within a region.

    Only what the caller may see is searched; the raw ID or name is never queried.
    """
    query = readable_persons(subject)
    if id_number:
        query = query.where(Person.person_key == vault.person_key(normalise_id_number(id_number, "id_number")))
    elif name:
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > _MAX_NAME:
            raise InvalidInput("name must be 1–{max} characters", "name", values={"max": _MAX_NAME})
        typed = name.strip()
        query = query.where(Person.masked_name == (typed if "*" in typed else mask_name(typed)))
    else:
        raise InvalidInput("give an ID number, or a name with an optional region", "id_number")
    if region:
        _check_region(region)
        query = query.where(Person.region.startswith(region_prefixes((region,))[0], autoescape=True))
    return list(session.scalars(query.order_by(Person.id).limit(limit)))


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
    book: ParameterBook,
    actor: str = "system",
    subject: Subject | None = None,
) -> Episode:
    """Record one episode of a registered person with its itemised cost in fen.

    Refused when no statutory parameter set is in force for the person's region
    on the discharge date: such an episode could never be settled.
    """
    person = get_person(session, person_id, subject)
    for field, value in (("admission_date", admission_date), ("discharge_date", discharge_date)):
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise InvalidInput("must be a calendar date", field)
    if discharge_date < admission_date:
        raise InvalidInput("discharge date is before admission date", "discharge_date")
    if isinstance(hospital_level, bool) or hospital_level not in HOSPITAL_LEVELS:
        raise InvalidInput("hospital_level must be 1, 2 or 3 (一级/二级/三级)", "hospital_level")
    code = icd10.strip().upper() if isinstance(icd10, str) else ""
    if not ICD10_RE.match(code):
        raise InvalidInput(
            "not an ICD-10 code (letter, two digits, optional .digits): {code}", "icd10", values={"code": repr(icd10)}
        )
    amounts = {
        field: check_fen(value, field)
        for field, value in (("class_a", class_a), ("class_b", class_b), ("out_of_catalogue", out_of_catalogue))
    }
    book.resolve(person.region, discharge_date)
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


def get_episode(session: Session, episode_id: int, subject: Subject | None = None) -> Episode:
    visible = readable_persons(subject).with_only_columns(Person.id)
    episode = session.scalars(
        select(Episode).where(Episode.id == episode_id, Episode.person_id.in_(visible))
    ).one_or_none()
    if episode is None:
        raise NotFound("no episode {id}", "episode_id", values={"id": episode_id})
    return episode


#: Failed attempts a family account may make to link a person per day, so IDs cannot be probed.
LINK_ATTEMPTS_PER_DAY = 5
RELATIONSHIPS = ("self", "spouse", "parent", "child", "sibling", "other")
LINK_MISMATCH = "no registered patient matches this ID number and name"


def link_person(
    session: Session, vault: IdentityVault, subject: Subject, id_number: str, name: str, relationship: str
) -> PersonAccount:
    """Link a family account to a registered patient whose ID number AND full name it knows (verified).

    A wrong pair answers exactly like an unknown ID, and after a few failures a
    day the account must wait, so the link cannot be used to find out who is a patient.
    """
    if not is_self_service(subject):
        raise Forbidden("only self-service family accounts link persons to themselves", "role")
    if relationship not in RELATIONSHIPS:
        raise InvalidInput(
            "relationship must be one of {choices}", "relationship", values={"choices": ", ".join(RELATIONSHIPS)}
        )
    number = normalise_id_number(id_number, "id_number")
    since = utcnow() - dt.timedelta(days=1)
    failures = session.scalar(
        select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "person_account.link_failed", AuditLog.entity == "user",
            AuditLog.entity_id == str(subject.user_id), AuditLog.at >= since,
        )
    )
    if failures >= LINK_ATTEMPTS_PER_DAY:
        raise TooManyRequests("too many failed attempts to link a person today", "id_number", retry_after=86_400)
    person = session.scalars(select(Person).where(Person.person_key == vault.person_key(number))).one_or_none()
    typed = name.strip() if isinstance(name, str) else ""
    if person is None or vault.decrypt(person.name_enc, "persons.name_enc") != typed:
        raise NotFound(LINK_MISMATCH, "id_number")
    existing = session.scalars(
        select(PersonAccount).where(PersonAccount.user_id == subject.user_id, PersonAccount.person_id == person.id)
    ).one_or_none()
    if existing is not None:
        return existing
    link = PersonAccount(user_id=subject.user_id, person_id=person.id, relationship=relationship)
    session.add(link)
    session.flush()
    record_audit(
        session, subject.username, "person_account.link", "person", person.id,
        {"user_id": subject.user_id, "relationship": relationship, "masked_id": person.masked_id},
    )
    return link


def record_link_failure(session: Session, subject: Subject) -> None:
    """Count a failed link attempt; the caller commits it in its own transaction (the attempt's rolled back)."""
    record_audit(session, subject.username, "person_account.link_failed", "user", subject.user_id, {})


def linked_persons(session: Session, subject: Subject) -> list[Person]:
    """The persons a family account may see (its own links), in the order they were linked."""
    return list(session.scalars(readable_persons(subject).order_by(Person.id)))


def list_episodes(session: Session, person_id: int, year: int) -> list[Episode]:
    """A person's episodes discharged in one calendar year, in settlement order (年度累计 runs over this)."""
    get_person(session, person_id)
    return _year_episodes(session, person_id, year, settled_only=False)


def record_coverage(
    session: Session,
    episode_id: int,
    layer: str,
    program: str,
    amount: int,
    explanation: Any,
    recorded_by: str | None = None,
    *,
    kind: str = "payment",
) -> Coverage:
    """Register one layer's payment (or a signed adjustment) towards an episode; refuse anything beyond the residual.

    The episode row is locked (FOR UPDATE on PostgreSQL, the write lock on SQLite)
    so two layers paying at once cannot both see the same residual.
    """
    if layer not in COVERAGE_LAYERS:
        raise InvalidInput("layer must be one of {choices}", "layer", values={"choices": ", ".join(COVERAGE_LAYERS)})
    if not isinstance(program, str) or not program.strip() or len(program) > _MAX_PROGRAM:
        raise InvalidInput("program must be 1–{max} characters", "program", values={"max": _MAX_PROGRAM})
    if kind not in COVERAGE_KINDS:
        raise InvalidInput("kind must be one of {choices}", "kind", values={"choices": ", ".join(COVERAGE_KINDS)})
    check_fen(amount, "amount", allow_negative=kind == "adjustment")
    if amount == 0 or (kind == "payment" and amount < 0):
        raise InvalidInput("a payment must be positive, an adjustment non-zero", "amount")
    try:
        json.dumps(explanation)
    except (TypeError, ValueError):
        raise InvalidInput("explanation must be JSON-serialisable", "explanation") from None

    episode = lock_row(session, Episode, episode_id)
    if episode is None:
        raise NotFound("no episode {id}", "episode_id", values={"id": episode_id})
    covered = _covered(session, episode_id)
    residual = episode.total - covered
    if amount > residual:
        raise Conflict(
            "coverage of {amount} fen exceeds the residual of {residual} fen (no double compensation)", "amount",
            values={"amount": amount, "residual": residual},
        )
    if covered + amount < 0 or _covered_by_layer(session, episode_id, layer) + amount < 0:
        raise Conflict("an adjustment may not take a layer's coverage below zero", "amount")
    record = Coverage(
        episode_id=episode_id,
        kind=kind,
        layer=layer,
        program=program.strip(),
        amount=amount,
        explanation=explanation,
        recorded_by=recorded_by,
    )
    session.add(record)
    session.flush()
    enqueue_leaf(session, "coverage", record.id, coverage_content(record))
    record_audit(
        session,
        recorded_by or "system",
        "coverage.record",
        "episode",
        episode_id,
        {"coverage_id": record.id, "layer": layer, "program": record.program, "amount": amount},
    )
    return record


def coverage_of(session: Session, episode_id: int, subject: Subject | None = None) -> CoverageView:
    """All coverage of an episode in recording order, with the residual the next layer sees."""
    episode = get_episode(session, episode_id, subject)
    records = list(session.scalars(select(Coverage).where(Coverage.episode_id == episode_id).order_by(Coverage.id)))
    covered = sum(record.amount for record in records)
    return CoverageView(episode_id, episode.total, records, covered, episode.total - covered)


def coverage_content(record: Coverage) -> bytes:
    """A coverage record as a leaf of the ledger's log: what was paid towards which episode, never who."""
    return canonical({
        "type": "coverage", "id": record.id, "episode_id": record.episode_id, "kind": record.kind,
        "layer": record.layer, "program": record.program, "amount": record.amount,
        "recorded_at": iso_utc(record.recorded_at),
    })


def _coverage_contents(session: Session, ids: Sequence[int]) -> dict[int, bytes]:
    records = session.scalars(select(Coverage).where(Coverage.id.in_(list(ids))))
    return {record.id: coverage_content(record) for record in records}


register_leaf_source("coverage", _coverage_contents)


def _covered(session: Session, episode_id: int) -> int:
    return int(
        session.scalar(select(func.coalesce(func.sum(Coverage.amount), 0)).where(Coverage.episode_id == episode_id))
    )


def _covered_by_layer(session: Session, episode_id: int, layer: str) -> int:
    query = select(func.coalesce(func.sum(Coverage.amount), 0)).where(
        Coverage.episode_id == episode_id, Coverage.layer == layer
    )
    return int(session.scalar(query))


def _check_region(region: str) -> None:
    """A 6-digit GB/T 2260 administrative code whose first two digits are a known province."""
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise InvalidInput("region must be a 6-digit GB/T 2260 code", "region")
    if region[:2] not in province_codes():
        raise InvalidInput("unknown province code {code} in region", "region", values={"code": repr(region[:2])})


SETTLE_ACTION = "episode.settle_statutory"
RESETTLE_ACTION = "person_year.resettle"


def _episode_input(person: Person, episode: Episode) -> EpisodeInput:
    return EpisodeInput(
        episode_id=str(episode.id),
        person_key=person.person_key,
        scheme=person.scheme,
        assistance_category=person.assistance_category,
        inclusive_enrolled=person.inclusive_enrolled,
        region=person.region,
        hospital_level=episode.hospital_level,
        admission_date=episode.admission_date,
        discharge_date=episode.discharge_date,
        icd10=episode.icd10,
        class_a=episode.class_a,
        class_b=episode.class_b,
        out_of_catalogue=episode.out_of_catalogue,
    )


def _year_episodes(session: Session, person_id: int, year: int, *, settled_only: bool) -> list[Episode]:
    """A person's episodes discharged in `year`, in settlement order (discharge, admission, id)."""
    query = select(Episode).where(
        Episode.person_id == person_id,
        Episode.discharge_date.between(dt.date(year, 1, 1), dt.date(year, 12, 31)),
    )
    if settled_only:
        query = query.where(Episode.settled_at.is_not(None))
    return list(session.scalars(query.order_by(Episode.discharge_date, Episode.admission_date, Episode.id)))


def _recorded_by_layer(session: Session, episode_ids: list[int]) -> dict[int, dict[str, int]]:
    """Σ coverage (payments and adjustments) per episode and layer."""
    paid: dict[int, dict[str, int]] = {episode_id: {} for episode_id in episode_ids}
    if not episode_ids:
        return paid
    rows = session.execute(
        select(Coverage.episode_id, Coverage.layer, func.sum(Coverage.amount))
        .where(Coverage.episode_id.in_(episode_ids))
        .group_by(Coverage.episode_id, Coverage.layer)
    )
    for episode_id, layer, amount in rows:
        paid[episode_id][layer] = int(amount)
    return paid


def settle_statutory(
    session: Session, book: ParameterBook, episode_id: int, actor: str, subject: Subject | None = None
) -> Settlement:
    """Settle the statutory layers of one episode against what is recorded for the person-year, once.

    Each layer pays its entitlement for this episode within what its annual
    limit has left after everything already recorded for the person's year,
    whatever order the episodes arrive in (`rules.rules` states the rule).
    The person row is locked first, so two episodes of one person-year
    cannot both be settled against the same year-to-date.
    """
    episode = get_episode(session, episode_id, subject)
    person = lock_row(session, Person, episode.person_id)
    episode = lock_row(session, Episode, episode_id)
    if episode.settled_at is not None:
        raise Conflict("statutory coverage is already recorded for this episode", "episode_id")
    settled = _year_episodes(session, person.id, episode.discharge_date.year, settled_only=True)
    paid = _recorded_by_layer(session, [other.id for other in settled])
    year = recorded_year(
        [
            RecordedEpisode(_episode_input(person, other), other.parameter_set or "", paid[other.id])
            for other in settled
        ],
        book,
    )
    settlement = settle_episode(_episode_input(person, episode), book, year)
    for line in settlement.lines:
        if line.amount > 0:
            record_coverage(
                session, episode_id, line.layer, f"{settlement.parameter_set}:{line.layer}", line.amount,
                _explanation(settlement, line), recorded_by=actor,
            )
    episode.settled_at = utcnow()
    episode.parameter_set = settlement.parameter_set
    session.flush()
    record_audit(
        session, actor, SETTLE_ACTION, "episode", episode_id,
        {"parameter_set": settlement.parameter_set, **settlement.amounts},
    )
    return settlement


def _explanation(settlement: Settlement, line) -> dict[str, Any]:
    note = settlement.parameter_note
    return {
        "parameter_set": settlement.parameter_set,
        "parameter_note": dataclasses.asdict(note) if note else None,
        **dataclasses.asdict(line),
    }


@dataclass(frozen=True)
class Adjustment:
    """One layer of one episode whose recorded total changed on re-settlement."""

    episode_id: int
    layer: str
    recorded: int
    recomputed: int

    @property
    def amount(self) -> int:
        return self.recomputed - self.recorded


@dataclass(frozen=True)
class Resettlement:
    person_id: int
    year: int
    settlements: dict[int, Settlement]
    adjustments: list[Adjustment]


def resettle_year(
    session: Session, book: ParameterBook, person_id: int, year: int, actor: str, subject: Subject | None = None
) -> Resettlement:
    """Recompute a person-year's settled episodes in discharge order and record the differences.

    Each difference is an audited adjustment line in the coverage registry, so
    the registry then sums to the recomputed year (the batch path's answer) for
    every episode and layer. Decreases are recorded before increases, so no
    episode's residual goes below zero on the way.
    """
    get_person(session, person_id, subject)
    person = lock_row(session, Person, person_id)
    if not 1950 <= year <= 2100:
        raise InvalidInput("year must lie between 1950 and 2100", "year")
    settled = _year_episodes(session, person_id, year, settled_only=True)
    recorded = _recorded_by_layer(session, [episode.id for episode in settled])
    results = explain_person_year([_episode_input(person, episode) for episode in settled], book)
    settlements = {episode.id: settlement for episode, settlement in zip(settled, results)}
    adjustments = [
        Adjustment(episode.id, layer, recorded[episode.id].get(layer, 0), settlement.amounts[layer])
        for episode, settlement in zip(settled, results)
        for layer in LAYERS
        if recorded[episode.id].get(layer, 0) != settlement.amounts[layer]
    ]
    lines = {(line.layer, episode_id): line for episode_id, s in settlements.items() for line in s.lines}
    for adjustment in sorted(adjustments, key=lambda a: a.amount > 0):
        settlement = settlements[adjustment.episode_id]
        explanation = {
            "recorded": adjustment.recorded, "recomputed": adjustment.recomputed,
            **_explanation(settlement, lines[(adjustment.layer, adjustment.episode_id)]),
        }
        record_coverage(
            session, adjustment.episode_id, adjustment.layer, f"{settlement.parameter_set}:{adjustment.layer}",
            adjustment.amount, explanation, recorded_by=actor, kind="adjustment",
        )
    for episode in settled:
        episode.parameter_set = settlements[episode.id].parameter_set
    session.flush()
    record_audit(
        session, actor, RESETTLE_ACTION, "person", person_id,
        {"year": year, "episodes": len(settled),
         "adjustments": [[a.episode_id, a.layer, a.recorded, a.recomputed] for a in adjustments]},
    )
    return Resettlement(person_id, year, settlements, adjustments)


@dataclass(frozen=True)
class LayerYear:
    """One statutory layer over a person-year: paid so far against its annual limit."""

    layer: str
    paid: int
    limit: int


@dataclass(frozen=True)
class PersonYear:
    """A person's year at a glance (年度结算概览): episodes in order, each layer's payments, limits, residual."""

    person: Person
    year: int
    episodes: list[Episode]
    paid: dict[int, dict[str, int]]
    layers: list[LayerYear]
    parameter_set: str | None

    @property
    def total(self) -> int:
        return sum(episode.total for episode in self.episodes)

    @property
    def residual(self) -> int:
        return self.total - sum(sum(by_layer.values()) for by_layer in self.paid.values())


def person_year(
    session: Session, book: ParameterBook, person_id: int, year: int, subject: Subject | None = None
) -> PersonYear:
    """The year's episodes with what every layer recorded, and each statutory layer against its limit.

    Limits are those of the set in force at the year's last discharge (or on
    31 December when the year has no episode yet).
    """
    person = get_person(session, person_id, subject)
    if not 1950 <= year <= 2100:
        raise InvalidInput("year must lie between 1950 and 2100", "year")
    episodes = _year_episodes(session, person_id, year, settled_only=False)
    paid = _recorded_by_layer(session, [episode.id for episode in episodes])
    on = episodes[-1].discharge_date if episodes else dt.date(year, 12, 31)
    index = book.resolve_index(person.region, on)
    layers = []
    if index is not None:
        pset = book.sets[index]
        flat = flat_params(pset, person.scheme, 3, person.assistance_category, person.inclusive_enrolled)
        limits = dict(zip(LAYERS, (flat.basic_cap, flat.ci_cap, flat.assistance_cap, flat.inclusive_cap)))
        totals = {layer: sum(by_layer.get(layer, 0) for by_layer in paid.values()) for layer in LAYERS}
        layers = [LayerYear(layer, totals[layer], limits[layer]) for layer in LAYERS]
    return PersonYear(person, year, episodes, paid, layers, book.sets[index].id if index is not None else None)
