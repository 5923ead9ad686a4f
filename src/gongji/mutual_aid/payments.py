"""Collecting charges (扣款) through a payment channel; a sandbox channel that behaves like a real one.

A channel takes batches of debit requests and reports back later, in any
order, sometimes twice. A request id names (period, line, attempt), and a
charge remembers the id of its request in flight (`channel_ref`), so a late
or repeated notification matches nothing and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gongji.core.audit import record_audit
from gongji.ledger.service import post_bulk_entry
from gongji.mutual_aid.accounts import BANK, member_account
from gongji.mutual_aid.models import Charge, Membership, Period

BATCH = 10_000


@dataclass(frozen=True)
class DebitRequest:
    request_id: str
    membership_id: int
    amount: int


@dataclass(frozen=True)
class Notification:
    request_id: str
    ok: bool
    channel_ref: str


class PaymentChannel(Protocol):
    def submit(self, requests: list[DebitRequest], now: dt.datetime) -> None: ...

    def notifications(self, now: dt.datetime) -> list[Notification]: ...


@dataclass
class SandboxChannel:
    """Accepts every request; after a random latency reports success or failure, now and then twice."""

    seed: int = 0
    latency: tuple[float, float] = (1.0, 30.0)
    failure_rate: float = 0.1
    duplicate_rate: float = 0.05
    _random: random.Random = field(init=False)
    _due: list[tuple[dt.datetime, Notification]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def submit(self, requests: list[DebitRequest], now: dt.datetime) -> None:
        for request in requests:
            ok = self._random.random() >= self.failure_rate
            note = Notification(request.request_id, ok, f"sbx-{self._random.getrandbits(48):012x}")
            copies = 2 if self._random.random() < self.duplicate_rate else 1
            for _ in range(copies):
                self._due.append((now + dt.timedelta(seconds=self._random.uniform(*self.latency)), note))

    def notifications(self, now: dt.datetime) -> list[Notification]:
        ready = [note for at, note in self._due if at <= now]
        self._due = [(at, note) for at, note in self._due if at > now]
        return ready


def _request_id(period_id: int, line_no: int, attempts: int) -> str:
    return f"r:{period_id}:{line_no}:{attempts}"


def collect_period(session: Session, period_id: int, channel: PaymentChannel, *, now: dt.datetime,
                   batch: int = BATCH) -> int:
    """Submit the period's charges not in flight (pending, or retrying after a failure), batch by batch."""
    submitted, after = 0, -1
    while True:
        rows = session.execute(
            select(Charge.line_no, Charge.membership_id, Charge.amount, Charge.attempts)
            .where(Charge.period_id == period_id, Charge.status.in_(("pending", "retrying")),
                   Charge.channel_ref.is_(None), Charge.line_no > after)
            .order_by(Charge.line_no).limit(batch)
        ).all()
        if not rows:
            return submitted
        requests = [DebitRequest(_request_id(period_id, line, tries), member, amount)
                    for line, member, amount, tries in rows]
        session.execute(update(Charge), [
            {"period_id": period_id, "line_no": line, "channel_ref": request.request_id, "updated_at": now}
            for (line, *_), request in zip(rows, requests, strict=True)
        ])
        channel.submit(requests, now)
        submitted += len(rows)
        after = rows[-1].line_no


def handle_notifications(session: Session, notifications: list[Notification], now: dt.datetime) -> dict[str, int]:
    """Apply each request's first notification: paid (one collection entry per batch) or retrying (suspended)."""
    first: dict[str, Notification] = {}
    for note in notifications:
        first.setdefault(note.request_id, note)
    wanted: dict[int, list[int]] = {}
    for request_id in first:
        _, period_id, line_no, _ = request_id.split(":")
        wanted.setdefault(int(period_id), []).append(int(line_no))
    paid, failed = [], []
    for period_id, lines in wanted.items():
        rows = session.execute(
            select(Charge.period_id, Charge.line_no, Charge.membership_id, Charge.amount, Charge.channel_ref)
            .where(Charge.period_id == period_id, Charge.line_no.in_(lines), Charge.status != "paid")
        ).all()
        for row in rows:
            note = first.get(row.channel_ref or "")
            if note is not None:
                (paid if note.ok else failed).append((row, note))
    if paid:
        session.execute(update(Charge), [
            {"period_id": row.period_id, "line_no": row.line_no, "status": "paid", "channel_ref": note.channel_ref,
             "updated_at": now} for row, note in paid])
        post_bulk_entry(session, "collection", "分摊扣款到账", None,
                        ((member_account(row.membership_id), -row.amount) for row, _ in paid), counter_account=BANK)
    if failed:
        session.execute(update(Charge), [
            {"period_id": row.period_id, "line_no": row.line_no, "status": "retrying", "channel_ref": None,
             "attempts": Charge.attempts + 1, "updated_at": now} for row, _ in failed])
        session.execute(update(Membership).where(
            Membership.id.in_({row.membership_id for row, _ in failed}), Membership.status == "protected"
        ).values(status="suspended", status_changed_at=now))
    counts = {"paid": len(paid), "failed": len(failed), "ignored": len(notifications) - len(paid) - len(failed)}
    record_audit(session, "payments", "mutual_aid.collect", "charges", "batch", counts)
    return counts


def retry_failed(session: Session, plan_code: str, now: dt.datetime, *, retry_days: int) -> int:
    """Charges still unpaid `retry_days` after their charge day fail, and their members are removed (移出)."""
    last_day = (now + dt.timedelta(hours=8)).date() - dt.timedelta(days=retry_days)
    periods = select(Period.id).where(Period.plan_code == plan_code, Period.charge_on < last_day)
    members = select(Charge.membership_id).where(Charge.period_id.in_(periods), Charge.status == "retrying")
    removed = session.execute(update(Membership).where(
        Membership.id.in_(members), Membership.status.in_(("protected", "suspended"))
    ).values(status="removed", status_changed_at=now, left_at=now)).rowcount
    failed = session.execute(update(Charge).where(Charge.period_id.in_(periods), Charge.status == "retrying")
                             .values(status="failed", updated_at=now)).rowcount
    record_audit(session, "payments", "mutual_aid.remove_unpaid", "plan", plan_code,
                 {"charges_failed": failed, "members_removed": removed, "before": last_day.isoformat()})
    return removed
