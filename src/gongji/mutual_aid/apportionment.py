"""Apportionment (分摊): a period's noticed claims shared by the members protected at its cut-off.

The calendar (公示 7th/21st at 0:00 China time is the cut-off, 扣款 14th/28th)
opens periods; `apportion` writes every member's charge with one
INSERT … SELECT (line order = membership id) and posts them as one bulk
ledger entry whose line numbers are the charges' line numbers, so each member
can prove their own charge (`member_bill`). The arithmetic is `sharing.py`.

Choices stated here once:
- a claim is shared when its public notice (公示) ended before the cut-off day: `notice_until < cutoff date`;
- a member shares when protected at the cut-off instant: joined before it, protection started on or before
  its day, and not gone by then — status waiting/protected, or suspended (a failed charge still within its
  retry window), or removed/withdrawn only after the cut-off (they leave owing this period's share);
- one charge per membership whatever its shares (post-event plans sell one share);
- `Period.surplus_in` is the signed carry: the last period's surplus less its shortfall when the plan carries it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Date, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from gongji.core.access import Subject
from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.core.persistence import CHINA_TIME, UTCDateTime, china_day, lock_row, utcnow
from gongji.ledger import service as ledger
from gongji.ledger.service import LineReceipt
from gongji.mutual_aid import sharing
from gongji.mutual_aid.accounts import fee_account, member_account, pool_account
from gongji.mutual_aid.claims import pay_claim, payable_amount
from gongji.mutual_aid.models import Charge, Claim, Period
from gongji.mutual_aid.plans import PlanSpec, PostEventFunding, check_operator, plan_at, plan_version

Progress = Callable[[str, int, int], None]
#: Lines handed to the ledger per progress report.
_CHUNK = 100_000


def _funding(spec: PlanSpec) -> PostEventFunding:
    if not isinstance(spec.funding, PostEventFunding):
        raise InvalidInput("plan {code} is not shared after the event", "plan_code", values={"code": spec.code})
    return spec.funding


def next_period_dates(spec: PlanSpec, today: dt.date) -> tuple[dt.datetime, dt.date]:
    """The next announcement after `today` (0:00 China time, the cut-off) and its charge day (扣款日)."""
    calendar = spec.calendar
    for months_ahead in range(3):
        year, month = divmod(today.month - 1 + months_ahead, 12)
        first = dt.date(today.year + year, month + 1, 1)
        for announce, charge in sorted(zip(calendar.announce_days, calendar.charge_days, strict=True)):
            day = first.replace(day=announce)
            if day > today:
                charge_on = first.replace(day=charge)
                if charge <= announce:  # the charge day falls in the next month
                    charge_on = (first + dt.timedelta(days=32)).replace(day=charge)
                return dt.datetime.combine(day, dt.time(), CHINA_TIME).astimezone(dt.UTC), charge_on
    raise AssertionError("a calendar always has an announcement day within two months")


def open_period(session: Session, plan_code: str, *, cutoff_at: dt.datetime, charge_on: dt.date, actor: str,
                subject: Subject | None = None) -> Period:
    """The plan's next period (number = last + 1) under the plan version in force on the cut-off day."""
    check_operator(session, subject, plan_code, NotFound("no plan {code}", "plan_code", values={"code": plan_code}))
    if cutoff_at.tzinfo is None:
        raise InvalidInput("cutoff_at must carry a time zone", "cutoff_at")
    cutoff_day = china_day(cutoff_at)
    if charge_on < cutoff_day:
        raise InvalidInput("the charge day {charge_on} is before the cut-off day {cutoff}", "charge_on",
                           values={"charge_on": charge_on, "cutoff": cutoff_day})
    version, spec = plan_at(session, plan_code, cutoff_day)
    _funding(spec)
    last = session.scalars(
        select(Period).where(Period.plan_code == plan_code).order_by(Period.number.desc()).limit(1)
    ).first()
    if last is not None and last.cutoff_at >= cutoff_at:
        raise Conflict("period {number} already has a cut-off at or after {cutoff}", "cutoff_at",
                       values={"number": last.number, "cutoff": cutoff_at.isoformat()})
    period = Period(plan_code=plan_code, plan_version=version, number=(last.number + 1) if last else 1,
                    cutoff_at=cutoff_at, charge_on=charge_on, status="open")
    session.add(period)
    session.flush()
    record_audit(session, actor, "mutual_aid.open_period", "period", period.id,
                 {"plan": plan_code, "number": period.number, "cutoff_at": cutoff_at.isoformat(),
                  "charge_on": charge_on.isoformat()})
    return period


def period_schedule(session: Session, plan_code: str, today: dt.date, *, actor: str,
                    subject: Subject | None = None) -> Period:
    """Open the period of the next announcement day after `today`, from the plan's calendar."""
    _, spec = plan_at(session, plan_code, today)
    cutoff_at, charge_on = next_period_dates(spec, today)
    return open_period(session, plan_code, cutoff_at=cutoff_at, charge_on=charge_on, actor=actor, subject=subject)


# --- apportion -------------------------------------------------------------------------------

#: Memberships protected at the cut-off instant (see the module docstring for the rule).
_SHARING_MEMBERS = """
SELECT id FROM ma_memberships
WHERE plan_code = :plan AND protected_from <= :cutoff_day AND joined_at < :cutoff_at
  AND (status IN ('waiting', 'protected', 'suspended')
       OR (status IN ('removed', 'withdrawn') AND left_at > :cutoff_at))
"""

#: Per member, what this plan charged them in periods charged in the same calendar year.
_CHARGED_THIS_YEAR = """
LEFT JOIN (
    SELECT c.membership_id, SUM(c.amount) AS charged
    FROM ma_charges c JOIN ma_periods p ON p.id = c.period_id
    WHERE p.plan_code = :plan AND p.charge_on >= :year_start AND p.charge_on < :year_end AND p.id <> :period_id
    GROUP BY c.membership_id
) y ON y.membership_id = e.id
"""


def _least(first: str, second: str) -> str:
    return f"CASE WHEN {first} < {second} THEN {first} ELSE {second} END"


def _charges_statement(common_cap: int | None, annual_binds: bool, every_member_pays: bool) -> str:
    """One INSERT … SELECT: equal share by line position, within the caps; members left 0 get no line.

    When no member can come out at 0 (a base share of a fen or more, a common cap of at least that, no
    annual cap binding), line numbers are the positions themselves and one numbering pass is enough.
    """
    amount = "(:base + CASE WHEN e.position <= :extra THEN 1 ELSE 0 END)"
    if common_cap is not None:
        amount = _least(amount, ":common_cap")
    if annual_binds:
        amount = _least(amount, "(:annual_cap - COALESCE(y.charged, 0))")
    if every_member_pays:
        return f"""
INSERT INTO ma_charges (period_id, line_no, membership_id, amount, status, attempts)
SELECT :period_id, e.position - 1, e.id, {amount}, 'pending', 0
FROM (SELECT id, row_number() OVER (ORDER BY id) AS position FROM ({_SHARING_MEMBERS}) m) e
"""
    return f"""
INSERT INTO ma_charges (period_id, line_no, membership_id, amount, status, attempts)
SELECT :period_id, row_number() OVER (ORDER BY id) - 1, id, amount, 'pending', 0
FROM (
    SELECT e.id, {amount} AS amount
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS position FROM ({_SHARING_MEMBERS}) m) e
    {_CHARGED_THIS_YEAR if annual_binds else ""}
) shares
WHERE amount > 0
"""


def _bind_types(statement: str):
    clause = text(statement)
    names = {"cutoff_at": UTCDateTime, "cutoff_day": Date, "year_start": Date, "year_end": Date}
    return clause.bindparams(*(bindparam(name, type_=kind) for name, kind in names.items() if f":{name}" in statement))


@dataclass
class _Totals:
    lines: int = 0
    charged: int = 0
    max_charge: int = 0


def _charge_lines(chunks: Iterator[tuple[list[int], list[int]]], count: int, totals: _Totals,
                  progress: Progress | None) -> Iterator[tuple[str, int]]:
    """The period's charges as ledger lines in line order, counted and summed on the way."""
    for ids, amounts in chunks:
        if amounts:
            totals.charged += sum(amounts)
            totals.max_charge = max(totals.max_charge, max(amounts))
        for membership_id, amount in zip(ids, amounts, strict=True):
            yield member_account(membership_id), amount
        totals.lines += len(ids)
        if progress:
            progress("ledger", totals.lines, count)


def _charge_chunks(session: Session, period_id: int) -> Iterator[tuple[list[int], list[int]]]:
    """(membership ids, amounts) in line order, chunk by chunk.

    PostgreSQL: read whole, now — the ledger then COPYs into the same connection, which cannot fetch from a
    cursor while that COPY is open — a million lines per query, each packed by the server into one bytea of
    big-endian int64 pairs (16 bytes a line) that NumPy reads as it is: one message per million lines
    instead of one per line.
    SQLite: a driver cursor read lazily beside the ledger's insert cursor, as `ledger.service.stored_lines` does.
    """
    session.flush()
    driver = session.connection().connection.driver_connection
    if session.get_bind().dialect.name == "postgresql":
        ids, amounts = _packed_columns(driver, period_id)
        return ((ids[start:start + _CHUNK].tolist(), amounts[start:start + _CHUNK].tolist())
                for start in range(0, len(ids), _CHUNK))
    query = f"SELECT membership_id, amount FROM ma_charges WHERE period_id = {int(period_id)} ORDER BY line_no"
    return _cursor_chunks(driver, query)


def _cursor_chunks(driver, query: str) -> Iterator[tuple[list[int], list[int]]]:
    cursor = driver.cursor()
    try:
        cursor.execute(query)
        while rows := cursor.fetchmany(_CHUNK):
            yield [row[0] for row in rows], [row[1] for row in rows]
    finally:
        cursor.close()


#: Lines packed into one bytea per query (16 MB).
_PACKED = 1_000_000


def _packed_columns(driver, period_id: int):
    import numpy as np

    parts = []
    with driver.cursor() as cursor:
        start = 0
        while True:
            cursor.execute(
                "SELECT string_agg(int8send(CAST(membership_id AS bigint)) || int8send(amount), ''::bytea"
                " ORDER BY line_no) FROM ma_charges WHERE period_id = %s AND line_no >= %s AND line_no < %s",
                (period_id, start, start + _PACKED),
            )
            packed = cursor.fetchone()[0]
            if not packed:
                break
            parts.append(np.frombuffer(packed, dtype=">i8").reshape(-1, 2))
            start += _PACKED
    pairs = np.concatenate(parts) if parts else np.empty((0, 2), dtype=">i8")
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def _previous_carry(session: Session, period: Period, funding: PostEventFunding) -> int:
    if period.number == 1:
        return 0
    previous = session.scalar(
        select(Period).where(Period.plan_code == period.plan_code, Period.number == period.number - 1)
    )
    if previous is None or previous.status == "open":
        raise Conflict("period {number} is not apportioned yet", "period_id", values={"number": period.number - 1})
    return sharing.carried_to_next(previous.surplus_out, previous.uncovered, funding.uncovered)


def apportion(session: Session, period_id: int, *, actor: str, progress: Progress | None = None,
              subject: Subject | None = None) -> Period:
    """Charge the period: its cases' payouts and fee, less the carry, shared by the members at the cut-off.

    Writes the charges set-based, posts them as one bulk entry (lines = charges, balanced by the pool),
    moves the fee pool → fee account, stamps the claims with the period and pays them.
    """
    period = lock_row(session, Period, period_id)
    missing = NotFound("no period {id}", "period_id", values={"id": period_id})
    if period is None:
        raise missing
    check_operator(session, subject, period.plan_code, missing)
    if period.status != "open":
        raise Conflict("period {number} is already {status}", "period_id",
                       values={"number": period.number, "status": period.status})
    spec = plan_version(session, period.plan_code, period.plan_version)
    funding = _funding(spec)
    cutoff_day = china_day(period.cutoff_at)

    cases = session.scalars(
        select(Claim).where(
            Claim.plan_code == period.plan_code, Claim.status == "noticed", Claim.period_id.is_(None),
            Claim.notice_until < cutoff_day,
        ).order_by(Claim.id)
    ).all()
    # What each case will really pay: a reimbursement that another layer has since covered asks for less.
    claims = [(claim.id, claim.amount_approved or 0) for claim in cases]
    payouts = [payable_amount(session, claim, plan_version(session, claim.plan_code, claim.plan_version))
               for claim in cases]
    due = sharing.amount_to_collect(sum(payouts), funding.fee_rate, _previous_carry(session, period, funding))

    where = {"plan": period.plan_code, "cutoff_at": period.cutoff_at, "cutoff_day": cutoff_day}
    members = int(session.scalar(_bind_types(f"SELECT count(*) FROM ({_SHARING_MEMBERS}) m"), where))
    share = sharing.equal_share(due.amount, members, funding.rounding)
    common_cap = sharing.period_cap(funding, len(claims))
    highest = share.of(0) if common_cap is None else min(share.of(0), common_cap)
    year_start = dt.date(period.charge_on.year, 1, 1)
    annual_binds = False
    if funding.annual_cap is not None and highest > 0:
        earlier = session.scalar(
            select(func.coalesce(func.sum(Period.max_charge), 0)).where(
                Period.plan_code == period.plan_code, Period.id != period.id, Period.status != "open",
                Period.charge_on >= year_start, Period.charge_on < year_start.replace(year=year_start.year + 1),
            )
        )
        annual_binds = int(earlier) + highest > funding.annual_cap

    count = 0
    if highest > 0:
        every_member_pays = share.base >= 1 and (common_cap is None or common_cap >= 1) and not annual_binds
        statement = _charges_statement(common_cap, annual_binds, every_member_pays)
        params = {**where, "period_id": period.id, "base": share.base, "extra": share.extra,
                  "common_cap": common_cap, "annual_cap": funding.annual_cap, "year_start": year_start,
                  "year_end": year_start.replace(year=year_start.year + 1)}
        count = session.execute(_bind_types(statement), {k: v for k, v in params.items() if f":{k}" in statement}
                                ).rowcount
    if progress:
        progress("charges", count, count)

    totals = _Totals()
    if count:
        entry = ledger.post_bulk_entry(
            session, "apportionment", f"{spec.name.zh} 第{period.number}期分摊", f"{period.plan_code}:{period.number}",
            _charge_lines(_charge_chunks(session, period.id), count, totals, progress), counter_account=pool_account(period.plan_code),
            actor=actor,
        )
        period.entry_seq = entry.seq
    result = sharing.outcome(due.amount, totals.charged)

    fee = due.fee
    if funding.uncovered == "reduce_payouts" and result.uncovered:
        payouts, fee = sharing.reduce_payouts(payouts, due.fee, result.uncovered)
    period.cases, period.payouts, period.fee = len(claims), sum(payouts), fee
    period.surplus_in, period.amount_to_collect, period.members = due.carried_in, due.amount, members
    period.share = share.base + (1 if share.extra else 0)
    period.max_charge, period.charged = totals.max_charge, totals.charged
    period.surplus_out = due.surplus_left + result.excess
    period.uncovered = result.uncovered
    period.status, period.apportioned_at = "apportioned", utcnow()
    session.flush()
    if fee:
        ledger.post_entry(session, "fee", f"{spec.name.zh} 第{period.number}期管理费",
                          f"{period.plan_code}:{period.number}",
                          [(pool_account(period.plan_code), fee), (fee_account(period.plan_code), -fee)], actor=actor)
    _pay_claims(session, period, claims, payouts, actor)
    record_audit(session, actor, "mutual_aid.apportion", "period", period.id, _figures(period))
    return period


def _pay_claims(session: Session, period: Period, claims, payouts: list[int], actor: str) -> None:
    """Stamp the claims with the period (one UPDATE) and pay each through the claims service."""
    if not claims:
        return
    session.execute(update(Claim).where(Claim.id.in_([claim_id for claim_id, _ in claims])).values(
        period_id=period.id))
    for (claim_id, approved), paid in zip(claims, payouts, strict=True):
        if paid != approved:
            claim = session.get(Claim, claim_id)
            claim.amount_approved = paid
            record_audit(session, actor, "mutual_aid.reduce_payout", "claim", claim_id,
                         {"period": period.number, "approved": approved, "paid": paid})
    session.flush()
    for claim_id, _ in claims:
        pay_claim(session, claim_id, actor=actor)


def _figures(period: Period) -> dict:
    return {name: getattr(period, name) for name in (
        "number", "cases", "payouts", "fee", "surplus_in", "amount_to_collect", "members", "share", "max_charge",
        "charged", "surplus_out", "uncovered", "entry_seq",
    )}


# --- what members and the public see ---------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """A member's charge for one period (个人账单), with its proof once the entry is under a checkpoint."""

    period_id: int
    number: int
    line_no: int
    amount: int
    status: str
    entry_seq: int
    proof: LineReceipt | None


def member_bill(session: Session, membership_id: int, period_id: int) -> Bill:
    period = session.get(Period, period_id)
    charge = session.scalars(
        select(Charge).where(Charge.period_id == period_id, Charge.membership_id == membership_id)
    ).first()
    if period is None or charge is None or period.entry_seq is None:
        raise NotFound("no charge for membership {membership} in period {period}", "period_id",
                       values={"membership": membership_id, "period": period_id})
    try:
        proof = ledger.line_inclusion_proof(session, period.entry_seq, charge.line_no)
    except NotFound:
        proof = None
    return Bill(period_id, period.number, charge.line_no, charge.amount, charge.status, period.entry_seq, proof)


def period_statement(session: Session, period_id: int) -> dict:
    """The public statement (公示) of an apportioned period: counts and totals only, no member's identity."""
    period = session.get(Period, period_id)
    if period is None or period.status == "open":
        raise NotFound("no apportioned period {id}", "period_id", values={"id": period_id})
    return {"plan_code": period.plan_code, "plan_version": period.plan_version,
            "cutoff_at": period.cutoff_at, "charge_on": period.charge_on, "status": period.status, **_figures(period)}


def share_history(session: Session, plan_code: str) -> list[tuple[int, dt.date, int, int]]:
    """(period number, cut-off day, share per member, members) of every apportioned period, for the chart."""
    rows = session.execute(
        select(Period.number, Period.cutoff_at, Period.share, Period.members)
        .where(Period.plan_code == plan_code, Period.status != "open").order_by(Period.number)
    ).all()
    return [(number, china_day(cutoff), share, members) for number, cutoff, share, members in rows]
