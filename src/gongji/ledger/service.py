"""Ledger operations: post entries without a global lock, sequence them into the log, prove and verify.

Each function takes the caller's Session and flushes; the caller commits —
except `sequence`, which a background task or `gongji ledger sequence` runs
in its own transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import String, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session, make_transient_to_detached

from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.core.identity import redact_personal_digits
from gongji.core.money import check_fen
from gongji.core.persistence import UTCDateTime, utcnow
from gongji.ledger import merkle
from gongji.ledger.checkpoint import Checkpoint, CheckpointError, open_note, sign
from gongji.ledger.models import (
    ACCOUNT_KINDS,
    Account,
    JournalEntry,
    LedgerCheckpoint,
    LedgerLeaf,
    LedgerNode,
    LedgerPending,
    Posting,
)
from gongji.ledger.rules import ENTRY_KINDS, Line, check_balanced, entry_content
from gongji.ledger.signing import LedgerSigner

_MAX_MEMO = 500
_MAX_REFERENCE = 200
#: Leaves moved from pending into the tree per transaction.
SEQUENCE_BATCH = 20_000
#: PostgreSQL advisory lock key held while sequencing, so two sequencers never number the same leaf.
_SEQUENCER_LOCK = 0x6C6F6721

#: source → function(session, ids) → {id: canonical leaf data}; other contexts register theirs.
_LEAF_CONTENTS: dict[str, Callable[[Session, Sequence[int]], dict[int, bytes]]] = {}


def register_leaf_source(source: str, contents: Callable[[Session, Sequence[int]], dict[int, bytes]]) -> None:
    """Let the log recompute the leaves of another context's records (the coverage registry) when verifying."""
    _LEAF_CONTENTS[source] = contents


def enqueue_leaf(session: Session, source: str, source_id: int, content: bytes) -> None:
    """Commit a record's leaf hash with the record itself; the sequencer gives it a place in the tree later."""
    session.execute(
        insert(LedgerPending).values(source=source, source_id=source_id, leaf_hash=merkle.leaf_hash(content).hex())
    )


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
    """Append one balanced entry; durable when the caller's transaction commits, sequenced into the log after.

    `lines` are (account_code, amount_fen) pairs, debit positive, credit negative.
    No row is locked: concurrent writers never wait for each other.
    """
    if kind not in ENTRY_KINDS:
        raise InvalidInput("kind must be one of {kinds}", "kind", values={"kinds": ", ".join(ENTRY_KINDS)})
    if not isinstance(memo, str) or len(memo) > _MAX_MEMO:
        raise InvalidInput("memo must be text of at most {max} characters", "memo", values={"max": str(_MAX_MEMO)})
    if reference is not None and (not isinstance(reference, str) or len(reference) > _MAX_REFERENCE):
        raise InvalidInput(
            "reference must be text of at most {max} characters", "reference", values={"max": str(_MAX_REFERENCE)}
        )
    if not isinstance(actor, str) or not 0 < len(actor) <= 100:
        raise InvalidInput("actor must be 1–100 characters", "actor")
    for field, value in (("memo", memo), ("reference", reference or "")):
        if redact_personal_digits(value) != value:
            raise InvalidInput("the public log must not carry ID, phone or card numbers", field)
    clean = _validate_lines(lines)
    check_balanced(clean)

    uid, posted_at = secrets.token_hex(16), utcnow()
    content = entry_content(uid, posted_at, kind, memo, reference, clean)
    values = {
        "uid": uid, "posted_at": posted_at, "posted_by": actor, "kind": kind, "memo": memo, "reference": reference,
        "line_count": len(clean), "lines_root": None, "leaf_hash": merkle.leaf_hash(content).hex(),
    }
    if session.get_bind().dialect.name == "postgresql":
        seq = _insert_entry_postgres(session, values, clean)
    else:
        seq = _insert_entry(session, values, clean)
    # The entry as the database now holds it, without reading it back (its lines load when first asked for).
    entry = JournalEntry(seq=seq, **values)
    make_transient_to_detached(entry)
    session.add(entry)
    return entry


#: One round trip for the whole entry: its row, its lines and its outbox row — or, if an account is unknown,
#: nothing at all and the first unknown line's number.
_POST_ENTRY_POSTGRES = text("""
WITH line AS (
    SELECT given.ord - 1 AS line_no, accounts.id AS account_id, given.amount
    FROM unnest(CAST(:codes AS varchar[]), CAST(:amounts AS bigint[])) WITH ORDINALITY AS given (code, amount, ord)
    LEFT JOIN accounts ON accounts.code = given.code
), entry AS (
    INSERT INTO journal_entries (uid, posted_at, posted_by, kind, memo, reference, line_count, lines_root, leaf_hash)
    SELECT :uid, :posted_at, :posted_by, :kind, :memo, :reference, :line_count, :lines_root, :leaf_hash
    WHERE NOT EXISTS (SELECT FROM line WHERE account_id IS NULL)
    RETURNING seq
), posting AS (
    INSERT INTO postings (entry_seq, line_no, account_id, amount)
    SELECT entry.seq, line.line_no, line.account_id, line.amount FROM entry, line
), outbox AS (
    INSERT INTO ledger_pending (source, source_id, leaf_hash) SELECT 'entry', entry.seq, :leaf_hash FROM entry
)
SELECT (SELECT seq FROM entry) AS seq, (SELECT min(line_no) FROM line WHERE account_id IS NULL) AS unknown
""").bindparams(bindparam("posted_at", type_=UTCDateTime), bindparam("lines_root", type_=String))


def _insert_entry_postgres(session: Session, values: dict, lines: list[Line]) -> int:
    row = session.execute(
        _POST_ENTRY_POSTGRES,
        {**values, "codes": [code for code, _ in lines], "amounts": [amount for _, amount in lines]},
    ).one()
    if row.seq is None:
        code = lines[row.unknown][0]
        raise InvalidInput("unknown account {code}", f"lines[{row.unknown}].account_code", values={"code": repr(code)})
    return row.seq


def _insert_entry(session: Session, values: dict, lines: list[Line]) -> int:
    accounts = _account_ids(session, [code for code, _ in lines])
    seq = session.execute(insert(JournalEntry).values(values).returning(JournalEntry.seq)).scalar_one()
    session.execute(
        insert(Posting),
        [
            {"entry_seq": seq, "line_no": line_no, "account_id": accounts[code], "amount": amount}
            for line_no, (code, amount) in enumerate(lines)
        ],
    )
    session.execute(insert(LedgerPending).values(source="entry", source_id=seq, leaf_hash=values["leaf_hash"]))
    return seq


def account_balance(session: Session, code: str) -> int:
    """Signed balance in fen (debits positive): assets and expenses are positive, liabilities and income negative."""
    account_id = session.scalar(select(Account.id).where(Account.code == code))
    if account_id is None:
        raise NotFound("no account {code}", "account_code", values={"code": repr(code)})
    return int(
        session.scalar(select(func.coalesce(func.sum(Posting.amount), 0)).where(Posting.account_id == account_id))
    )


# --- the log ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceReport:
    sequenced: int
    size: int
    checkpoint: LedgerCheckpoint | None


def tree_size(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(LedgerLeaf.leaf_index) + 1, 0))))


def stored_full_node(session: Session) -> merkle.FullNode:
    """Read full nodes from the database: level 0 are the leaves, higher levels the stored inner nodes."""

    def full_node(level: int, index: int) -> bytes:
        if level == 0:
            value = session.scalar(select(LedgerLeaf.leaf_hash).where(LedgerLeaf.leaf_index == index))
        else:
            value = session.scalar(select(LedgerNode.hash).where(LedgerNode.level == level, LedgerNode.idx == index))
        if value is None:
            raise merkle.ProofError(f"node ({level}, {index}) is not in the tree")
        return bytes.fromhex(value)

    return full_node


def sequence(session: Session, signer: LedgerSigner, *, batch: int = SEQUENCE_BATCH) -> SequenceReport:
    """Give pending leaves their places in the tree, store the new full nodes and sign a checkpoint.

    All in the caller's transaction: a crash anywhere leaves the pending rows
    pending and the tree as it was, so the next run simply does the work.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
    pending = session.execute(
        select(LedgerPending.id, LedgerPending.source, LedgerPending.source_id, LedgerPending.leaf_hash)
        .order_by(LedgerPending.id)
        .limit(batch)
    ).all()
    size = tree_size(session)
    if not pending:
        return SequenceReport(0, size, None)
    now = utcnow()
    session.execute(
        insert(LedgerLeaf),
        [
            {"leaf_index": size + k, "source": row.source, "source_id": row.source_id, "leaf_hash": row.leaf_hash,
             "sequenced_at": now}
            for k, row in enumerate(pending)
        ],
    )
    new_nodes = _new_full_nodes(session, size, [bytes.fromhex(row.leaf_hash) for row in pending])
    if new_nodes:
        session.execute(
            insert(LedgerNode), [{"level": level, "idx": idx, "hash": value.hex()} for level, idx, value in new_nodes]
        )
    session.execute(delete(LedgerPending).where(LedgerPending.id.in_([row.id for row in pending])))
    new_size = size + len(pending)
    checkpoint = issue_checkpoint(session, signer, new_size)
    return SequenceReport(len(pending), new_size, checkpoint)


def _new_full_nodes(session: Session, size: int, leaves: list[bytes]) -> list[tuple[int, int, bytes]]:
    """Inner nodes completed by appending `leaves` to a tree of `size` leaves (left siblings read as needed)."""
    created: list[tuple[int, int, bytes]] = []
    level_nodes = {size + k: leaf for k, leaf in enumerate(leaves)}
    known = stored_full_node(session)
    level, first, last = 0, size, size + len(leaves) - 1
    while True:
        parents: dict[int, bytes] = {}
        start = first - (first % 2)
        for idx in range(start, last + 1, 2):
            if idx + 1 > last:
                break
            left = level_nodes[idx] if idx in level_nodes else known(level, idx)
            parents[idx // 2] = merkle.node_hash(left, level_nodes[idx + 1])
        if not parents:
            break
        level += 1
        created.extend((level, idx, value) for idx, value in sorted(parents.items()))
        level_nodes = parents
        first, last = min(parents), max(parents)
    return created


def issue_checkpoint(session: Session, signer: LedgerSigner, size: int | None = None) -> LedgerCheckpoint | None:
    """Sign and keep a checkpoint of the tree at `size` (default: its whole size), unless one exists."""
    size = tree_size(session) if size is None else size
    if size == 0 or session.get(LedgerCheckpoint, size) is not None:
        return None
    root = merkle.root(size, stored_full_node(session))
    checkpoint = LedgerCheckpoint(
        size=size, root=root.hex(), note=signer.sign(Checkpoint(signer.origin, size, root)), issued_at=utcnow()
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def latest_checkpoint(session: Session) -> LedgerCheckpoint:
    checkpoint = session.scalars(select(LedgerCheckpoint).order_by(LedgerCheckpoint.size.desc()).limit(1)).first()
    if checkpoint is None:
        raise NotFound("the log has no checkpoint yet", "size")
    return checkpoint


def checkpoint_at(session: Session, size: int) -> LedgerCheckpoint:
    checkpoint = session.get(LedgerCheckpoint, size)
    if checkpoint is None:
        raise NotFound("no checkpoint of size {size}", "size", values={"size": str(size)})
    return checkpoint


def inclusion_proof(session: Session, leaf_index: int, size: int) -> list[bytes]:
    """The audit path of a leaf against the checkpoint of `size` leaves."""
    checkpoint_at(session, size)
    try:
        return merkle.inclusion_proof(leaf_index, size, stored_full_node(session))
    except merkle.ProofError as error:
        raise NotFound(str(error), "leaf_index") from None


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    checkpoint_at(session, old_size)
    checkpoint_at(session, new_size)
    if old_size > new_size:
        raise InvalidInput("the old size must not exceed the new one", "old")
    return merkle.consistency_proof(old_size, new_size, stored_full_node(session))


def leaf(session: Session, leaf_index: int) -> LedgerLeaf:
    found = session.get(LedgerLeaf, leaf_index)
    if found is None:
        raise NotFound("no leaf {index}", "leaf_index", values={"index": str(leaf_index)})
    return found


def leaf_with_content(session: Session, leaf_index: int) -> tuple[LedgerLeaf, bytes]:
    """A leaf and its canonical content, recomputed from its record (so a changed record shows here too)."""
    found = leaf(session, leaf_index)
    loader = _LEAF_CONTENTS.get(found.source)
    content = loader(session, [found.source_id]).get(found.source_id) if loader else None
    if content is None:
        raise NotFound("the record of leaf {index} is gone", "leaf_index", values={"index": str(leaf_index)})
    return found, content


def checkpoints(session: Session, *, below: int | None = None, limit: int = 100) -> list[LedgerCheckpoint]:
    query = select(LedgerCheckpoint).order_by(LedgerCheckpoint.size.desc()).limit(limit)
    if below is not None:
        query = query.where(LedgerCheckpoint.size < below)
    return list(session.scalars(query))


def leaf_of_entry(session: Session, seq: int) -> LedgerLeaf | None:
    return session.scalars(select(LedgerLeaf).where(LedgerLeaf.source == "entry", LedgerLeaf.source_id == seq)).first()


def entry_contents(session: Session, seqs: Sequence[int]) -> dict[int, bytes]:
    """Canonical leaf data of journal entries, recomputed from their stored rows."""
    entries = session.scalars(select(JournalEntry).where(JournalEntry.seq.in_(list(seqs)))).all()
    return {
        entry.seq: entry_content(
            entry.uid, entry.posted_at, entry.kind, entry.memo, entry.reference,
            [(p.account.code, p.amount) for p in entry.postings],
        )
        for entry in entries
    }


register_leaf_source("entry", entry_contents)


# --- verification by anyone ------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    leaves_checked: int
    first_bad_leaf: int | None = None
    reason: str | None = None


def verify_log(session: Session, verifier: str, *, since: str | None = None, chunk: int = 5_000) -> VerifyReport:
    """Recompute every leaf from its record and the tree from the leaves; check every kept checkpoint.

    Names the first bad leaf: a record changed after it was logged, a record
    missing, leaves out of order, or a checkpoint whose root the leaves no
    longer give. With `since` (a signed checkpoint saved earlier) it also
    proves that today's tree extends it — so truncating or rewriting history
    is caught by anyone who kept an old checkpoint, even with the database's
    own checkpoints removed.
    """
    checkpoints = {c.size: c for c in session.scalars(select(LedgerCheckpoint))}
    for stored in checkpoints.values():
        try:
            signed = open_note(stored.note, verifier)
        except CheckpointError as error:
            return VerifyReport(False, 0, None, f"checkpoint of size {stored.size}: {error}")
        if signed.size != stored.size or signed.root.hex() != stored.root:
            return VerifyReport(False, 0, None, f"checkpoint of size {stored.size} differs from its signed note")
    old: Checkpoint | None = None
    if since is not None:
        try:
            old = open_note(since, verifier)
        except CheckpointError as error:
            return VerifyReport(False, 0, None, f"the saved checkpoint: {error}")

    frontier: list[tuple[int, bytes]] = []  # (level, hash) of the full subtrees so far, biggest first
    checked = 0
    expected = 0
    while True:
        rows = session.execute(
            select(LedgerLeaf.leaf_index, LedgerLeaf.source, LedgerLeaf.source_id, LedgerLeaf.leaf_hash)
            .where(LedgerLeaf.leaf_index >= expected)
            .order_by(LedgerLeaf.leaf_index)
            .limit(chunk)
        ).all()
        if not rows:
            break
        contents: dict[str, dict[int, bytes]] = {}
        for source in {row.source for row in rows}:
            loader = _LEAF_CONTENTS.get(source)
            if loader is None:
                return VerifyReport(False, checked, rows[0].leaf_index, f"no way to recompute {source!r} leaves")
            contents[source] = loader(session, [row.source_id for row in rows if row.source == source])
        for row in rows:
            if row.leaf_index != expected:
                return VerifyReport(False, checked, expected, f"leaf {expected} is missing from the log")
            content = contents[row.source].get(row.source_id)
            if content is None:
                return VerifyReport(False, checked, expected, f"the {row.source} {row.source_id} of this leaf is gone")
            value = merkle.leaf_hash(content)
            if value.hex() != row.leaf_hash:
                return VerifyReport(
                    False, checked, expected, f"the {row.source} {row.source_id} was changed after it was logged"
                )
            _push(frontier, value)
            checked += 1
            expected += 1
            problem = _check_root_at(expected, frontier, checkpoints, old)
            if problem:
                return VerifyReport(False, checked, expected - 1, problem)
    if old is not None and old.size > expected:
        return VerifyReport(False, checked, expected, f"the log has {expected} leaves, fewer than the saved {old.size}")
    largest = max(checkpoints, default=0)
    if largest > expected:
        return VerifyReport(False, checked, expected, f"a checkpoint covers {largest} leaves but only {expected} exist")
    return VerifyReport(True, checked)


def _push(frontier: list[tuple[int, bytes]], value: bytes) -> None:
    """Append a leaf to the running list of full subtrees, merging equal levels (a binary counter)."""
    level = 0
    while frontier and frontier[-1][0] == level:
        _, left = frontier.pop()
        value = merkle.node_hash(left, value)
        level += 1
    frontier.append((level, value))


def _frontier_root(frontier: list[tuple[int, bytes]]) -> bytes:
    value = frontier[-1][1]
    for _, left in reversed(frontier[:-1]):
        value = merkle.node_hash(left, value)
    return value


def _check_root_at(
    size: int, frontier: list[tuple[int, bytes]], checkpoints: dict[int, LedgerCheckpoint], old: Checkpoint | None
) -> str | None:
    if size in checkpoints and _frontier_root(frontier).hex() != checkpoints[size].root:
        return f"the leaves no longer give the root of the checkpoint of size {size}"
    if old is not None and size == old.size and _frontier_root(frontier) != old.root:
        return f"the log was rewritten: its first {old.size} leaves no longer give the saved checkpoint's root"
    return None


# --- helpers ---------------------------------------------------------------------------------


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


def _account_ids(session: Session, codes: Iterable[str]) -> dict[str, int]:
    codes = list(codes)
    found = dict(session.execute(select(Account.code, Account.id).where(Account.code.in_(set(codes)))).all())
    for index, code in enumerate(codes):
        if code not in found:
            raise InvalidInput("unknown account {code}", f"lines[{index}].account_code", values={"code": repr(code)})
    return found

