"""Collecting charges (扣款) through a payment channel; a sandbox channel that behaves like a real one.

A channel accepts batches of debit requests at once and reports each outcome
later, in any order, sometimes twice. A request id names (period, line,
attempt); while a request is in flight its charge holds that id in
`channel_ref`, and once paid the channel's own reference. A notification
changes a charge only while the charge still holds its request id and is
unpaid, checked inside the UPDATE itself, so a late, repeated or concurrent
notification changes nothing and posts nothing.

Choices stated here once:
- a failed charge is retried by the next `collect_period` at least `RETRY_EVERY` after its failure;
- the retry window (扣款失败重试期) is the suspension (暂停): it starts when the first failure suspends the member,
  and `retry_failed` removes members suspended longer than the plan's `funding.retry_days` who still have a
  charge to retry (a member already gone is written off on the same clock, from their leaving);
- a paid charge reinstates its suspended member only when none of their charges is left to retry;
- a charge given up (failed) is written off: one bulk `adjustment` entry credits each member's receivable and
  debits the plan's pool, so the pool shows the shortfall instead of money that will not come.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import String, and_, case, cast, exists, func, literal, select, update
from sqlalchemy.orm import Session

from gongji.core.audit import record_audit
from gongji.core.errors import InvalidInput
from gongji.core.persistence import china_day
from gongji.ledger.service import post_bulk_entry
from gongji.mutual_aid.accounts import BANK, member_account, pool_account
from gongji.mutual_aid.models import Charge, Membership, Period
from gongji.mutual_aid.plans import PostEventFunding, plan_at

#: Charges submitted per request batch.
BATCH = 10_000
#: Keys per IN list when matching notifications (two lists per statement stay far below any bind limit).
_MATCH = 2_000
#: How long a failed charge waits before the next attempt.
RETRY_EVERY = dt.timedelta(days=1)
#: Charges that still owe money: not yet paid, not given up.
OPEN = ("pending", "retrying")


@dataclass(frozen=True)
class DebitRequest:
    """Debit `amount` fen from the member's mandate; the same `request_id` is never debited twice."""

    request_id: str
    membership_id: int
    amount: int


@dataclass(frozen=True)
class Notification:
    """A channel's word on one request: paid (`ok`) or refused with a `reason`, under its own reference."""

    request_id: str
    ok: bool
    channel_ref: str
    reason: str | None = None


class PaymentChannel(Protocol):
    def submit(self, requests: list[DebitRequest], now: dt.datetime) -> list[str]:
        """Accept a batch at once (the request ids accepted); outcomes come later as notifications."""
        ...

    def poll(self, now: dt.datetime) -> list[Notification]:
        """The notifications that have arrived by `now`, each handed out once (a real channel may repeat one)."""
        ...


FAILURE_REASONS = ("insufficient_funds", "mandate_revoked", "account_frozen")


@dataclass
class SandboxChannel:
    """A channel without money: every request accepted; after a random latency (seconds) success or failure,
    now and then twice, in no particular order.

    Reproducible: each request's outcome, reference and latencies depend only on the seed and its id, so
    the same requests give the same notifications whatever the batching. A request id seen before is not
    debited again: its first outcome is reported once more, as an idempotent channel does. Memberships in
    `failing` always fail (a revoked mandate). Time is whatever `now` the caller passes: nothing sleeps.
    """

    seed: int = 0
    latency: tuple[float, float] = (1.0, 30.0)
    failure_rate: float = 0.1
    duplicate_rate: float = 0.05
    failing: frozenset[int] = frozenset()
    _outcomes: dict[str, Notification] = field(default_factory=dict, init=False)
    _submitted: Counter[str] = field(default_factory=Counter, init=False)
    _due: list[tuple[dt.datetime, Notification]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        low, high = self.latency
        if not 0 <= low <= high:
            raise InvalidInput("latency must be a range of seconds (low ≤ high)", "latency")
        for name in ("failure_rate", "duplicate_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidInput("{name} must be between 0 and 1", name, values={"name": name})

    def submit(self, requests: list[DebitRequest], now: dt.datetime) -> list[str]:
        for request in requests:
            note = self._outcomes.get(request.request_id)
            if note is None:
                outcome = random.Random(f"{self.seed}/{request.request_id}")
                ok = request.membership_id not in self.failing and outcome.random() >= self.failure_rate
                note = Notification(request.request_id, ok, f"sbx-{outcome.getrandbits(48):012x}",
                                    None if ok else outcome.choice(FAILURE_REASONS))
                self._outcomes[request.request_id] = note
            self._submitted[request.request_id] += 1
            delivery = random.Random(f"{self.seed}/{request.request_id}/{self._submitted[request.request_id]}")
            for _ in range(2 if delivery.random() < self.duplicate_rate else 1):
                self._due.append((now + dt.timedelta(seconds=delivery.uniform(*self.latency)), note))
        return [request.request_id for request in requests]

    def poll(self, now: dt.datetime) -> list[Notification]:
        ready = [note for at, note in self._due if at <= now]
        self._due = [item for item in self._due if item[0] > now]
        random.Random(f"{self.seed}/poll/{now.isoformat()}/{len(ready)}").shuffle(ready)
        return ready

    @property
    def in_flight(self) -> int:
        """Notifications not yet due."""
        return len(self._due)


def _request_id(period_id: int, line_no: int, attempts: int) -> str:
    return f"r:{period_id}:{line_no}:{attempts}"


#: The same request id, computed by the database for a whole batch in one UPDATE.
_REQUEST_ID = (literal("r:").concat(cast(Charge.period_id, String)).concat(":")
               .concat(cast(Charge.line_no, String)).concat(":").concat(cast(Charge.attempts, String)))


def collect_period(session: Session, period_id: int, channel: PaymentChannel, *, now: dt.datetime,
                   batch: int = BATCH) -> int:
    """Submit the period's charges not in flight — pending, or retrying at least `RETRY_EVERY` after their last
    failure — batch by batch; returns how many were submitted. Nothing is paid until a success notification.

    Each batch is taken by one UPDATE … RETURNING that marks its charges in flight with their request ids,
    so two collectors never submit the same charge. The caller commits right after: the ids the channel
    holds are then the ones the charges hold (and a channel re-reports a request id it has seen).
    """
    if batch < 1:
        raise InvalidInput("batch must be at least 1", "batch")
    candidate = Charge.__table__.alias("candidate")
    lines = (select(candidate.c.line_no).where(candidate.c.period_id == period_id, _due(candidate.c, now))
             .order_by(candidate.c.line_no).limit(batch).scalar_subquery())
    submitted = 0
    while True:
        rows = session.execute(
            update(Charge).where(Charge.period_id == period_id, Charge.line_no.in_(lines),
                                 _due(Charge.__table__.c, now))
            .values(channel_ref=_REQUEST_ID, updated_at=now)
            .returning(Charge.line_no, Charge.membership_id, Charge.amount, Charge.attempts)
            .execution_options(synchronize_session=False)
        ).all()
        if not rows:
            return submitted
        requests = [DebitRequest(_request_id(period_id, row.line_no, row.attempts), row.membership_id, row.amount)
                    for row in sorted(rows)]
        channel.submit(requests, now)
        submitted += len(requests)


def _due(charge, now: dt.datetime):
    """Not in flight, and pending or failed at least `RETRY_EVERY` ago."""
    retry_due = (charge.status == "retrying") & (charge.updated_at <= now - RETRY_EVERY)
    return and_(charge.channel_ref.is_(None), (charge.status == "pending") | retry_due)


def _by_period(notes: Iterable[Notification]) -> dict[int, dict[str, tuple[int, Notification]]]:
    """{period: {request id: (line, notification)}} of well-formed request ids; anything else cannot be ours."""
    found: dict[int, dict[str, tuple[int, Notification]]] = {}
    for note in notes:
        parts = note.request_id.split(":") if isinstance(note.request_id, str) else []
        if len(parts) == 4 and parts[0] == "r" and all(part.isdigit() for part in parts[1:]):
            found.setdefault(int(parts[1]), {})[note.request_id] = (int(parts[2]), note)
    return found


def _claim(session: Session, notes: dict[int, dict[str, tuple[int, Notification]]], values: dict) -> list:
    """Move the unpaid charges still holding these request ids to `values`, in guarded UPDATEs; the rows moved
    (period_id, line_no, membership_id, amount, attempts as now stored)."""
    moved = []
    for period_id, by_id in notes.items():
        ids = sorted(by_id)
        for start in range(0, len(ids), _MATCH):
            chunk = ids[start:start + _MATCH]
            moved += session.execute(
                update(Charge).where(
                    Charge.period_id == period_id, Charge.line_no.in_(sorted({by_id[i][0] for i in chunk})),
                    Charge.status.in_(OPEN), Charge.channel_ref.in_(chunk),
                ).values(**values)
                .returning(Charge.period_id, Charge.line_no, Charge.membership_id, Charge.amount, Charge.attempts)
                .execution_options(synchronize_session=False)
            ).all()
    return sorted(moved)


def handle_notifications(session: Session, notifications: Iterable[Notification], *, now: dt.datetime,
                         actor: str = "payments") -> dict[str, int]:
    """Apply a batch of notifications; each request counts once, whatever arrives twice or too late.

    Success: the charge is paid (its `channel_ref` becomes the channel's reference) and the batch's money is
    posted as one `collection` bulk entry — each member's receivable credited, custody (`bank`) debited by
    the balancing line — and a suspended member with nothing left to retry is reinstated. Failure: the
    charge is to be retried (attempts + 1) and its member, if protected or waiting, suspended.
    Returns counts: paid, failed, ignored (duplicates, stale attempts, unknown ids), suspended, reinstated.
    """
    notes = list(notifications)
    first: dict[str, Notification] = {}
    for note in notes:
        first.setdefault(note.request_id, note)
    successes = _by_period(note for note in first.values() if note.ok)
    failures = _by_period(note for note in first.values() if not note.ok)

    paid = _claim(session, successes, {"status": "paid", "updated_at": now})
    failed = _claim(session, failures, {"status": "retrying", "channel_ref": None, "attempts": Charge.attempts + 1,
                                        "first_failed_at": func.coalesce(Charge.first_failed_at, now),
                                        "updated_at": now})
    reasons = Counter(
        failures[row.period_id][_request_id(row.period_id, row.line_no, row.attempts - 1)][1].reason or "unknown"
        for row in failed)
    entry_seq = None
    if paid:
        session.execute(update(Charge).execution_options(synchronize_session=False), [
            {"period_id": row.period_id, "line_no": row.line_no,
             "channel_ref": successes[row.period_id][_request_id(row.period_id, row.line_no, row.attempts)][1]
             .channel_ref} for row in paid])
        entry_seq = post_bulk_entry(
            session, "collection", "分摊扣款到账", None,
            ((member_account(row.membership_id), -row.amount) for row in paid), counter_account=BANK, actor=actor,
        ).seq
    suspended = _suspend(session, sorted({row.membership_id for row in failed}), now, actor)
    reinstated = _reinstate(session, sorted({row.membership_id for row in paid}), now, actor)
    _mark_collected(session, {row.period_id for row in paid})
    counts = {"paid": len(paid), "failed": len(failed), "ignored": len(notes) - len(paid) - len(failed),
              "suspended": len(suspended), "reinstated": len(reinstated)}
    record_audit(session, actor, "mutual_aid.collect", "charges", "batch",
                 {**counts, "collected": sum(row.amount for row in paid), "entry_seq": entry_seq,
                  "reasons": dict(reasons)})
    return counts


def _suspend(session: Session, membership_ids: list[int], now: dt.datetime, actor: str) -> list[int]:
    """暂停 the members in force whose charge failed, in one UPDATE per chunk, audited as one batch."""
    changed: list[int] = []
    for start in range(0, len(membership_ids), _MATCH):
        changed += session.scalars(
            update(Membership).where(Membership.id.in_(membership_ids[start:start + _MATCH]),
                                     Membership.status.in_(("protected", "waiting")))
            .values(status="suspended", status_changed_at=now).returning(Membership.id)
            .execution_options(synchronize_session=False)
        ).all()
    if changed:
        record_audit(session, actor, "membership.suspended", "membership", "batch",
                     {"to": "suspended", "reason": "charge failed", "memberships": sorted(changed)})
    return sorted(changed)


def _reinstate(session: Session, membership_ids: list[int], now: dt.datetime, actor: str) -> list[int]:
    """Suspended members with no charge left to retry are back in force: protected, or waiting if still waiting."""
    retrying = exists().where(Charge.membership_id == Membership.id, Charge.status == "retrying")
    changed: list[int] = []
    for start in range(0, len(membership_ids), _MATCH):
        changed += session.scalars(
            update(Membership).where(Membership.id.in_(membership_ids[start:start + _MATCH]),
                                     Membership.status == "suspended", ~retrying)
            .values(status=case((Membership.protected_from <= china_day(now), "protected"), else_="waiting"),
                    status_changed_at=now)
            .returning(Membership.id).execution_options(synchronize_session=False)
        ).all()
    if changed:
        record_audit(session, actor, "membership.reinstated", "membership", "batch",
                     {"from": "suspended", "reason": "charge paid", "memberships": sorted(changed)})
    return sorted(changed)


def _mark_collected(session: Session, period_ids: set[int]) -> None:
    """A period with nothing left to collect (every charge paid or given up) is collected."""
    if period_ids:
        owing = exists().where(Charge.period_id == Period.id, Charge.status.in_(OPEN))
        session.execute(update(Period).where(Period.id.in_(sorted(period_ids)), Period.status == "apportioned", ~owing)
                        .values(status="collected").execution_options(synchronize_session=False))


def retry_failed(session: Session, plan_code: str, now: dt.datetime, *, actor: str = "payments") -> dict[str, int]:
    """移出: give up the charges still failing `funding.retry_days` after their first failure.

    Those waiting for a retry (not those in flight, whose outcome is still coming) fail, their suspended
    members are removed (one UPDATE, audited as one batch), and the written-off receivables are moved back
    from the pool by one bulk `adjustment` entry (member receivable credited, pool debited), so the pool
    shows the shortfall. Returns counts: charges failed, members removed, fen written off.
    """
    _, spec = plan_at(session, plan_code, china_day(now))
    if not isinstance(spec.funding, PostEventFunding):
        raise InvalidInput("plan {code} is not shared after the event", "plan_code", values={"code": plan_code})
    deadline = now - dt.timedelta(days=spec.funding.retry_days)
    failed = session.execute(
        update(Charge).where(
            Charge.period_id.in_(select(Period.id).where(Period.plan_code == plan_code)),
            Charge.status == "retrying", Charge.channel_ref.is_(None), Charge.first_failed_at <= deadline,
        ).values(status="failed", updated_at=now)
        .returning(Charge.period_id, Charge.line_no, Charge.membership_id, Charge.amount)
        .execution_options(synchronize_session=False)
    ).all()
    failed = sorted(failed)
    members = sorted({row.membership_id for row in failed})
    removed: list[int] = []
    for start in range(0, len(members), _MATCH):
        removed += session.scalars(
            update(Membership).where(Membership.id.in_(members[start:start + _MATCH]),
                                     Membership.status == "suspended")
            .values(status="removed", status_changed_at=now, left_at=now).returning(Membership.id)
            .execution_options(synchronize_session=False)
        ).all()
    written_off = sum(row.amount for row in failed)
    entry_seq = None
    if failed:
        entry_seq = post_bulk_entry(
            session, "adjustment", "扣款失败核销", plan_code,
            ((member_account(row.membership_id), -row.amount) for row in failed),
            counter_account=pool_account(plan_code), actor=actor,
        ).seq
        _mark_collected(session, {row.period_id for row in failed})
    if removed:
        record_audit(session, actor, "membership.removed", "membership", "batch",
                     {"from": "suspended", "to": "removed", "reason": "charge failed after the retry window",
                      "plan_code": plan_code, "memberships": sorted(removed)})
    counts = {"charges_failed": len(failed), "members_removed": len(removed), "written_off": written_off}
    record_audit(session, actor, "mutual_aid.write_off", "plan", plan_code,
                 {**counts, "retry_days": spec.funding.retry_days, "before": deadline.isoformat(),
                  "entry_seq": entry_seq})
    return counts
