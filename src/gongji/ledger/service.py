"""Ledger operations. Each takes the caller's Session and flushes; the caller commits."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.core.money import check_fen
from gongji.core.persistence import lock_row, utcnow
from gongji.ledger.models import ACCOUNT_KINDS, Account, JournalEntry, LedgerHead, Posting
from gongji.ledger.rules import ENTRY_KINDS, GENESIS_HASH, Line, check_balanced, entry_hash

_MAX_MEMO = 500
_MAX_REFERENCE = 200


@dataclass(frozen=True)
class ChainReport:
    """Outcome of walking the hash chain; `first_bad_seq` names the first entry that fails."""

    ok: bool
    entries_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


def open_account(session: Session, code: str, name: str, kind: str, *, actor: str = "system") -> Account:
    """Add an account to the chart; codes are unique and permanent."""
    if not isinstance(code, str) or not code.strip() or len(code.strip()) > 64:
        raise InvalidInput("account code must be 1–64 characters", "code")
    code = code.strip()
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("account name must be 1–200 characters", "name")
    if kind not in ACCOUNT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(ACCOUNT_KINDS)}", "kind")
    if session.scalar(select(Account.id).where(Account.code == code)) is not None:
        raise Conflict(f"account {code!r} already exists", "code")
    account = Account(code=code, name=name.strip(), kind=kind)
    session.add(account)
    session.flush()
    record_audit(session, actor, "ledger.open_account", "account", account.id, {"code": code, "kind": kind})
    return account


def post_entry(
    session: Session,
    kind: str,
    memo: str,
    reference: str | None,
    lines: Sequence[Line],
    *,
    actor: str = "system",
) -> JournalEntry:
    """Append one balanced entry to the journal, chained to the previous one.

    `lines` are (account_code, amount_fen) pairs, debit positive, credit negative.
    The head row is locked (FOR UPDATE on PostgreSQL, the write lock on SQLite) so appends take turns.
    """
    if kind not in ENTRY_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(ENTRY_KINDS)}", "kind")
    if not isinstance(memo, str) or len(memo) > _MAX_MEMO:
        raise InvalidInput(f"memo must be text of at most {_MAX_MEMO} characters", "memo")
    if reference is not None and (not isinstance(reference, str) or len(reference) > _MAX_REFERENCE):
        raise InvalidInput(f"reference must be text of at most {_MAX_REFERENCE} characters", "reference")
    clean = _validate_lines(lines)
    check_balanced(clean)
    accounts = _accounts_by_code(session, [code for code, _ in clean])

    head = lock_row(session, LedgerHead, 1)
    seq = head.last_seq + 1
    posted_at = utcnow()
    digest = entry_hash(seq, posted_at, kind, memo, reference, clean, head.last_hash)
    entry = JournalEntry(
        seq=seq,
        posted_at=posted_at,
        kind=kind,
        memo=memo,
        reference=reference,
        prev_hash=head.last_hash,
        hash=digest,
        postings=[Posting(account_id=accounts[code].id, amount=amount) for code, amount in clean],
    )
    session.add(entry)
    session.flush()
    head.last_seq, head.last_hash = seq, digest
    record_audit(
        session,
        actor,
        "ledger.post",
        "journal_entry",
        seq,
        {"kind": kind, "reference": reference, "lines": [[code, amount] for code, amount in clean]},
    )
    return entry


def account_balance(session: Session, code: str) -> int:
    """Signed balance in fen (debits positive): assets and expenses are positive, liabilities and income negative."""
    account_id = session.scalar(select(Account.id).where(Account.code == code))
    if account_id is None:
        raise NotFound(f"no account {code!r}", "account_code")
    return int(
        session.scalar(select(func.coalesce(func.sum(Posting.amount), 0)).where(Posting.account_id == account_id))
    )


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash in seq order; check links, balance, and that the head names the last entry.

    Triggers stop accidental edits; this detects deliberate ones made after dropping them.
    """
    rows = session.execute(
        select(
            JournalEntry.seq,
            JournalEntry.posted_at,
            JournalEntry.kind,
            JournalEntry.memo,
            JournalEntry.reference,
            JournalEntry.prev_hash,
            JournalEntry.hash,
            Account.code,
            Posting.amount,
        )
        .outerjoin(Posting, Posting.entry_seq == JournalEntry.seq)
        .outerjoin(Account, Account.id == Posting.account_id)
        .order_by(JournalEntry.seq, Posting.id),
        execution_options={"yield_per": 2000},
    )
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for seq, group in itertools.groupby(rows, key=lambda row: row.seq):
        entry_rows = list(group)
        entry = entry_rows[0]
        checked += 1
        lines = [(row.code, row.amount) for row in entry_rows if row.amount is not None]
        problem = _entry_problem(entry, lines, expected_seq, prev_hash)
        if problem:
            rows.close()
            return ChainReport(False, checked, seq, problem)
        expected_seq, prev_hash = seq + 1, entry.hash

    head = session.execute(select(LedgerHead).where(LedgerHead.id == 1)).scalar_one()
    if head.last_seq != expected_seq - 1 or head.last_hash != prev_hash:
        return ChainReport(
            False,
            checked,
            expected_seq,
            f"ledger head names entry {head.last_seq} but the journal ends at {expected_seq - 1}"
            " (entries removed or head altered)",
        )
    return ChainReport(True, checked)


def _entry_problem(entry, lines: list[Line], expected_seq: int, prev_hash: str) -> str | None:
    if entry.seq != expected_seq:
        return f"sequence gap: expected entry {expected_seq}, found {entry.seq}"
    if entry.prev_hash != prev_hash:
        return f"prev_hash does not link to entry {entry.seq - 1}"
    try:
        check_balanced(lines)
    except InvalidInput as error:
        return f"postings no longer balance: {error.detail}"
    recomputed = entry_hash(entry.seq, entry.posted_at, entry.kind, entry.memo, entry.reference, lines, prev_hash)
    if recomputed != entry.hash:
        return "hash mismatch: the entry's content was changed after posting"
    return None


def _validate_lines(lines: Sequence[Line]) -> list[Line]:
    if isinstance(lines, (str, bytes)) or not isinstance(lines, Sequence):
        raise InvalidInput("lines must be a list of (account_code, amount_fen) pairs", "lines")
    clean: list[Line] = []
    for index, line in enumerate(lines):
        if not isinstance(line, Sequence) or isinstance(line, (str, bytes)) or len(line) != 2:
            raise InvalidInput("each line must be an (account_code, amount_fen) pair", f"lines[{index}]")
        code, amount = line
        if not isinstance(code, str) or not code:
            raise InvalidInput("account code must be text", f"lines[{index}].account_code")
        clean.append((code, check_fen(amount, f"lines[{index}].amount", allow_negative=True)))
    return clean


def _accounts_by_code(session: Session, codes: list[str]) -> dict[str, Account]:
    found = {a.code: a for a in session.scalars(select(Account).where(Account.code.in_(set(codes))))}
    for index, code in enumerate(codes):
        if code not in found:
            raise InvalidInput(f"unknown account {code!r}", f"lines[{index}].account_code")
    return found
