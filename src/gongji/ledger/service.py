"""Ledger operations: post entries without a global lock, sequence them into the log, prove and verify.

Each function takes the caller's Session and flushes; the caller commits —
except `sequence`, which a background task or `gongji ledger sequence` runs
in its own transaction.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ARRAY,
    BigInteger,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from gongji.core.audit import record_audit
from gongji.core.errors import Conflict, InvalidInput, NotFound
from gongji.core.identity import redact_personal_digits
from gongji.core.money import MAX_FEN, check_fen
from gongji.core.persistence import UTCDateTime, utcnow
from gongji.ledger import merkle
from gongji.ledger.checkpoint import Checkpoint, CheckpointError, open_note
from gongji.ledger.lines import TILE, TILE_LEVEL, LineRow, LinesTree, line_leaves, tile_nodes
from gongji.ledger.models import (
    ACCOUNT_KINDS,
    Account,
    JournalEntry,
    LedgerBulkLine,
    LedgerCheckpoint,
    LedgerLeaf,
    LedgerLineNode,
    LedgerNode,
    LedgerPending,
    Posting,
)
from gongji.ledger.rules import ENTRY_KINDS, Line, check_balanced, entry_content, line_content
from gongji.ledger.signing import LedgerSigner

_MAX_MEMO = 500
_MAX_REFERENCE = 200
#: Leaves moved from pending into the tree per transaction.
SEQUENCE_BATCH = 20_000
#: PostgreSQL advisory lock key held while sequencing, so two sequencers never number the same leaf.
_SEQUENCER_LOCK = 0x6C6F6721

#: source → function(session, ids) → {id: canonical leaf data}; other contexts register theirs.
_LEAF_CONTENTS: dict[str, Callable[[Session, Sequence[int]], dict[int, bytes]]] = {}


#: source → function(session, id) → leaf data for showing one leaf where recomputing it is too dear (a bulk
#: entry's millions of lines); verify_log always recomputes through `_LEAF_CONTENTS`.
_LEAF_VIEWS: dict[str, Callable[[Session, int], bytes | None]] = {}


def register_leaf_source(source: str, contents: Callable[[Session, Sequence[int]], dict[int, bytes]]) -> None:
    """Let the log recompute the leaves of another context's records (the coverage registry) when verifying."""
    _LEAF_CONTENTS[source] = contents


def enqueue_leaf(session: Session, source: str, source_id: int, content: bytes) -> None:
    """Commit a record's leaf hash with the record itself; the sequencer gives it a place in the tree later."""
    session.execute(
        insert(LedgerPending).values(source=source, source_id=source_id, leaf_hash=merkle.leaf_hash(content).hex())
    )


def open_account(
    session: Session, code: str, name: str, kind: str, *, public: bool = False, actor: str = "system"
) -> Account:
    """Add an account to the chart; codes are unique and permanent. `public` shows it on the transparency pages."""
    if not isinstance(code, str) or not code.strip() or len(code.strip()) > 64:
        raise InvalidInput("account code must be 1–64 characters", "code")
    code = code.strip()
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("account name must be 1–200 characters", "name")
    if kind not in ACCOUNT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(ACCOUNT_KINDS)}", "kind")
    if session.scalar(select(Account.id).where(Account.code == code)) is not None:
        raise Conflict(f"account {code!r} already exists", "code")
    account = Account(code=code, name=name.strip(), kind=kind, public=public is True)
    session.add(account)
    session.flush()
    record_audit(
        session, actor, "ledger.open_account", "account", account.id,
        {"code": code, "kind": kind, "public": account.public},
    )
    return account


def open_accounts(
    session: Session, accounts: Sequence[tuple[str, str, str]], *, actor: str = "system"
) -> int:
    """Open many (code, name, kind) accounts in one statement — a roster's member receivables, say.

    Checked like `open_account`; any code already open, or given twice, refuses the whole batch.
    Audited as one batch. Returns how many were opened.
    """
    codes = [code for code, _, _ in accounts]
    for index, (code, name, kind) in enumerate(accounts):
        if not isinstance(code, str) or not code.strip() or len(code) > 64 or code != code.strip():
            raise InvalidInput("account code must be 1–64 characters", f"accounts[{index}].code")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput("account name must be 1–200 characters", f"accounts[{index}].name")
        if kind not in ACCOUNT_KINDS:
            raise InvalidInput("kind must be one of {kinds}", f"accounts[{index}].kind",
                               values={"kinds": ", ".join(ACCOUNT_KINDS)})
    if len(set(codes)) != len(codes):
        raise InvalidInput("an account code is given twice", "accounts")
    for start in range(0, len(codes), 5_000):
        taken = session.scalar(select(Account.code).where(Account.code.in_(codes[start:start + 5_000])).limit(1))
        if taken is not None:
            raise Conflict("account {code} already exists", "accounts", values={"code": repr(taken)})
    if accounts:
        now = utcnow()
        session.execute(insert(Account), [
            {"code": code, "name": name.strip(), "kind": kind, "public": False, "created_at": now}
            for code, name, kind in accounts
        ])
        record_audit(session, actor, "ledger.open_accounts", "account", "batch",
                     {"opened": len(accounts), "first": codes[0], "last": codes[-1]})
    return len(accounts)


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
    ) + _bulk_balance(session, code)


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
    A handful of statements however big the batch: move the pending rows into
    leaves, read the tree's frontier, insert the new nodes, keep the checkpoint.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
    size = tree_size(session)
    leaves = (_move_pending_postgres if postgres else _move_pending)(session, size, batch)
    if not leaves:
        return SequenceReport(0, size, None)
    frontier = _frontier(session, size)
    new_nodes = _new_full_nodes(size, leaves, frontier)
    if new_nodes:
        _insert_nodes(session, new_nodes, postgres)
    new_size = size + len(leaves)
    known = frontier | {(0, size + k): leaf for k, leaf in enumerate(leaves)}
    known.update(((level, idx), value) for level, idx, value in new_nodes)
    root = merkle.root(new_size, lambda level, index: known[level, index])
    checkpoint = None if session.get(LedgerCheckpoint, new_size) else _keep_checkpoint(session, signer, new_size, root)
    return SequenceReport(len(leaves), new_size, checkpoint)


#: The oldest pending rows become the next leaves, in one statement (the advisory lock keeps it to one sequencer).
_MOVE_PENDING_POSTGRES = text("""
WITH batch AS (
    DELETE FROM ledger_pending WHERE id IN (SELECT id FROM ledger_pending ORDER BY id LIMIT :batch)
    RETURNING id, source, source_id, leaf_hash
)
INSERT INTO ledger_leaves (leaf_index, source, source_id, leaf_hash, sequenced_at)
SELECT :size + row_number() OVER (ORDER BY id) - 1, source, source_id, leaf_hash, :now FROM batch
RETURNING leaf_index, leaf_hash
""").bindparams(bindparam("now", type_=UTCDateTime))


def _move_pending_postgres(session: Session, size: int, batch: int) -> list[bytes]:
    rows = session.execute(_MOVE_PENDING_POSTGRES, {"batch": batch, "size": size, "now": utcnow()}).all()
    return [bytes.fromhex(value) for _, value in sorted(rows)]


def _move_pending(session: Session, size: int, batch: int) -> list[bytes]:
    pending = session.execute(
        select(LedgerPending.id, LedgerPending.source, LedgerPending.source_id, LedgerPending.leaf_hash)
        .order_by(LedgerPending.id)
        .limit(batch)
    ).all()
    if not pending:
        return []
    now = utcnow()
    session.execute(
        insert(LedgerLeaf),
        [
            {"leaf_index": size + k, "source": row.source, "source_id": row.source_id, "leaf_hash": row.leaf_hash,
             "sequenced_at": now}
            for k, row in enumerate(pending)
        ],
    )
    session.execute(delete(LedgerPending).where(LedgerPending.id.in_([row.id for row in pending])))
    return [bytes.fromhex(row.leaf_hash) for row in pending]


def _frontier(session: Session, size: int) -> dict[tuple[int, int], bytes]:
    """The full nodes that make up the root of a tree of `size` leaves, one per set bit of `size`.

    They are also the only left siblings that leaves appended after `size` need.
    """
    wanted = [(level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1]
    found: dict[tuple[int, int], bytes] = {}
    if size & 1:
        value = session.scalar(select(LedgerLeaf.leaf_hash).where(LedgerLeaf.leaf_index == size - 1))
        if value is not None:
            found[0, size - 1] = bytes.fromhex(value)
    inner = [(level, idx) for level, idx in wanted if level > 0]
    if inner:
        rows = session.execute(
            select(LedgerNode.level, LedgerNode.idx, LedgerNode.hash).where(
                or_(*(and_(LedgerNode.level == level, LedgerNode.idx == idx) for level, idx in inner))
            )
        )
        found.update(((level, idx), bytes.fromhex(value)) for level, idx, value in rows)
    for level, idx in wanted:
        if (level, idx) not in found:
            raise merkle.ProofError(f"node ({level}, {idx}) is not in the tree")
    return found


def _insert_nodes(session: Session, nodes: list[tuple[int, int, bytes]], postgres: bool) -> None:
    if postgres:
        session.execute(
            text(
                "INSERT INTO ledger_nodes (level, idx, hash) SELECT * FROM "
                "unnest(CAST(:levels AS smallint[]), CAST(:idxs AS bigint[]), CAST(:hashes AS varchar[]))"
            ),
            {"levels": [n[0] for n in nodes], "idxs": [n[1] for n in nodes], "hashes": [n[2].hex() for n in nodes]},
        )
    else:
        session.execute(
            insert(LedgerNode), [{"level": level, "idx": idx, "hash": value.hex()} for level, idx, value in nodes]
        )


def _new_full_nodes(
    size: int, leaves: list[bytes], frontier: dict[tuple[int, int], bytes]
) -> list[tuple[int, int, bytes]]:
    """Inner nodes completed by appending `leaves` to a tree of `size` leaves (left siblings from its frontier)."""
    created: list[tuple[int, int, bytes]] = []
    level_nodes = {size + k: leaf for k, leaf in enumerate(leaves)}
    level, first, last = 0, size, size + len(leaves) - 1
    while True:
        parents: dict[int, bytes] = {}
        start = first - (first % 2)
        for idx in range(start, last + 1, 2):
            if idx + 1 > last:
                break
            left = level_nodes[idx] if idx in level_nodes else frontier[level, idx]
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
    return _keep_checkpoint(session, signer, size, merkle.root(size, stored_full_node(session)))


def _keep_checkpoint(session: Session, signer: LedgerSigner, size: int, root: bytes) -> LedgerCheckpoint:
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
    view = _LEAF_VIEWS.get(found.source)
    loader = _LEAF_CONTENTS.get(found.source)
    if view is not None:
        content = view(session, found.source_id)
    else:
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
    """Canonical leaf data of journal entries, recomputed from their stored rows.

    Set-based: one query for the entries and one for all their lines, however many entries.
    """
    connection = session.connection()
    entries = connection.execute(
        select(
            JournalEntry.seq, JournalEntry.uid, JournalEntry.posted_at, JournalEntry.kind, JournalEntry.memo,
            JournalEntry.reference, JournalEntry.lines_root,
        ).where(_among(session, JournalEntry.seq, seqs))
    ).all()
    lines: dict[int, list[Line]] = {entry.seq: [] for entry in entries if entry.lines_root is None}
    if lines:
        for seq, code, amount in connection.execute(
            select(Posting.entry_seq, Account.code, Posting.amount)
            .join(Account, Account.id == Posting.account_id)
            .where(_among(session, Posting.entry_seq, lines))
            .order_by(Posting.entry_seq, Posting.line_no)
        ).all():
            lines[seq].append((code, amount))
    return {
        entry.seq: bulk_entry_content(session, entry) if entry.lines_root is not None else entry_content(
            entry.uid, entry.posted_at, entry.kind, entry.memo, entry.reference, lines[entry.seq]
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
    roots_to_check = set(checkpoints) | ({old.size} if old is not None else set())
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
            if expected in roots_to_check:
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


def _among(session: Session, column, ids: Iterable[int]):
    """`column IN ids` for thousands of ids: one array parameter on PostgreSQL rather than one parameter each."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(cast(bindparam("ids", list(ids), unique=True), ARRAY(BigInteger)))
    return column.in_(list(ids))


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



# --- bulk entries: millions of lines, each a leaf of the entry's own subtree --------------------

#: Lines validated, hashed and handed to the database per round (a COPY block, or one executemany).
BULK_CHUNK = 20_000
#: Above this many lines the account check hashes `accounts` once instead of probing its index per line.
_BULK_HASH_CHECK = 200_000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def post_bulk_entry(
    session: Session,
    kind: str,
    memo: str,
    reference: str | None,
    lines_source: Iterable[Line],
    *,
    counter_account: str,
    actor: str = "system",
) -> JournalEntry:
    """One entry of many lines — a mutual-aid period's charges — written set-based, each line a leaf.

    `lines_source` is any iterable of (account_code, amount_fen) pairs (a
    generator over a query's rows, say), read once and never held in memory:
    lines 0, 1, … in its order, then one balancing line to `counter_account`
    (the plan's pool) for minus their sum. Each line's leaf is
    `rules.line_content`; the entry's leaf commits to the subtree's root and
    size. PostgreSQL takes the lines by COPY while they are hashed, SQLite by
    executemany in chunks; every account code is then checked in one query.
    Durable when the caller commits, and sequenced into the log after, like `post_entry`.
    """
    _check_entry_header(kind, memo, reference, actor)
    if not isinstance(counter_account, str) or session.scalar(
        select(Account.id).where(Account.code == counter_account)
    ) is None:
        raise InvalidInput("unknown account {code}", "counter_account", values={"code": repr(counter_account)})
    if isinstance(lines_source, (str, bytes)) or not isinstance(lines_source, Iterable):
        raise InvalidInput("lines must be an iterable of (account_code, amount_fen) pairs", "lines")

    uid, posted_at = secrets.token_hex(16), utcnow()
    tree = LinesTree()
    rows = _bulk_rows(lines_source, counter_account, uid, tree)
    postgres = session.get_bind().dialect.name == "postgresql"
    session.flush()
    if postgres:
        seq = int(session.scalar(text("SELECT nextval(pg_get_serial_sequence('journal_entries', 'seq'))")))
        _copy_bulk_lines(session, seq, rows)
    else:
        # An explicit seq: a writer taking it meanwhile makes the entry's insert below fail, and all of this with it.
        seq = int(session.scalar(select(func.coalesce(func.max(JournalEntry.seq), 0) + 1)))
        _insert_bulk_lines(session, seq, rows)
    _check_bulk_accounts(session, seq, tree.size, postgres)

    lines_root = tree.root().hex()
    content = entry_content(uid, posted_at, kind, memo, reference, [], lines_root=lines_root, line_count=tree.size)
    session.execute(
        insert(JournalEntry).values(
            seq=seq, uid=uid, posted_at=posted_at, posted_by=actor, kind=kind, memo=memo, reference=reference,
            line_count=tree.size, lines_root=lines_root, leaf_hash=merkle.leaf_hash(content).hex(),
        )
    )
    nodes = tree.stored_nodes()
    if nodes:
        session.execute(
            insert(LedgerLineNode),
            [{"entry_seq": seq, "level": level, "idx": idx, "hash": value.hex()} for level, idx, value in nodes],
        )
    enqueue_leaf(session, "entry", seq, content)
    record_audit(
        session, actor, "ledger.post_bulk_entry", "journal_entry", seq,
        {"kind": kind, "line_count": tree.size, "counter_account": counter_account},
    )
    return session.get(JournalEntry, seq)


def _check_entry_header(kind: str, memo: str, reference: str | None, actor: str) -> None:
    if kind not in ENTRY_KINDS:
        raise InvalidInput("kind must be one of {kinds}", "kind", values={"kinds": ", ".join(ENTRY_KINDS)})
    if not isinstance(memo, str) or len(memo) > _MAX_MEMO:
        raise InvalidInput("memo must be text of at most {max} characters", "memo", values={"max": _MAX_MEMO})
    if reference is not None and (not isinstance(reference, str) or len(reference) > _MAX_REFERENCE):
        raise InvalidInput(
            "reference must be text of at most {max} characters", "reference", values={"max": _MAX_REFERENCE}
        )
    if not isinstance(actor, str) or not 0 < len(actor) <= 100:
        raise InvalidInput("actor must be 1–100 characters", "actor")
    for field, value in (("memo", memo), ("reference", reference or "")):
        if redact_personal_digits(value) != value:
            raise InvalidInput("the public log must not carry ID, phone or card numbers", field)


def _bulk_rows(source: Iterable[Line], counter_account: str, uid: str, tree: LinesTree) -> Iterator[list[LineRow]]:
    """Validate the lines, feed their leaves to `tree` and yield them in chunks; the balancing line comes last."""
    chunk: list[LineRow] = []
    total = 0
    for line_no, line in enumerate(source):
        try:
            code, amount = line
        except (TypeError, ValueError):
            raise InvalidInput("each line must be an (account_code, amount_fen) pair", f"lines[{line_no}]") from None
        if type(amount) is not int or not (0 < amount <= MAX_FEN or -MAX_FEN <= amount < 0):
            check_fen(amount, f"lines[{line_no}].amount", allow_negative=True)
            raise InvalidInput("a line must not be zero", f"lines[{line_no}].amount")
        if type(code) is not str or len(code) > 64:
            raise InvalidInput("account code must be text of at most 64 characters", f"lines[{line_no}].account_code")
        total += amount
        chunk.append((code, amount, line_no))
        if len(chunk) == BULK_CHUNK:
            tree.extend(line_leaves(uid, chunk))
            yield chunk
            chunk = []
    count = tree.size + len(chunk)
    if count == 0:
        raise InvalidInput("a bulk entry needs at least one line besides the balancing line", "lines")
    if total == 0:
        raise InvalidInput("the lines sum to zero: there is nothing to balance", "lines")
    chunk.append((counter_account, -total, count))
    tree.extend(line_leaves(uid, chunk))
    yield chunk


def _copy_bulk_lines(session: Session, seq: int, rows: Iterator[list[LineRow]]) -> None:
    """PostgreSQL: COPY the lines into `ledger_bulk_lines` in the session's transaction, one block per chunk."""
    row_format = f"{seq}\t%s\t%d\t%d\n"
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(
        "COPY ledger_bulk_lines (entry_seq, account_code, amount, line_no) FROM STDIN"
    ) as copy:
        for chunk in rows:
            block = "".join([row_format % row for row in chunk])
            if "\\" in block or block.count("\t") != 3 * len(chunk) or block.count("\n") != len(chunk):
                # A code with a backslash, tab or line break: COPY's text format wants those escaped.
                block = "".join([row_format % (code.translate(_COPY_ESCAPES), a, n) for code, a, n in chunk])
            copy.write(block)


def _insert_bulk_lines(session: Session, seq: int, rows: Iterator[list[LineRow]]) -> None:
    """SQLite: executemany per chunk on the driver's cursor (no ORM object per line)."""
    statement = f"INSERT INTO ledger_bulk_lines (entry_seq, account_code, amount, line_no) VALUES ({seq:d}, ?, ?, ?)"
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        for chunk in rows:
            cursor.executemany(statement, chunk)
    finally:
        cursor.close()


def _check_bulk_accounts(session: Session, seq: int, count: int, postgres: bool) -> None:
    """Every line's account exists: one anti-join, naming the first line that has none."""
    unknown = (
        select(func.min(LedgerBulkLine.line_no))
        .where(LedgerBulkLine.entry_seq == seq)
        .where(~select(Account.id).where(Account.code == LedgerBulkLine.account_code).exists())
    )
    if postgres and count > _BULK_HASH_CHECK:
        # Just-copied rows have no statistics, and the planner would probe the index once per line.
        settings = text("SELECT set_config('enable_nestloop', :loop, true), set_config('work_mem', :memory, true)")
        before = session.execute(text("SELECT current_setting('enable_nestloop'), current_setting('work_mem')")).one()
        session.execute(settings, {"loop": "off", "memory": "256MB"})
        first = session.scalar(unknown)
        session.execute(settings, {"loop": before[0], "memory": before[1]})
    else:
        first = session.scalar(unknown)
    if first is not None:
        code = session.scalar(
            select(LedgerBulkLine.account_code).where(LedgerBulkLine.entry_seq == seq, LedgerBulkLine.line_no == first)
        )
        raise InvalidInput("unknown account {code}", f"lines[{first}].account_code", values={"code": repr(code)})


def stored_lines(session: Session, seq: int) -> Iterator[list[LineRow]]:
    """A bulk entry's lines (account_code, amount, line_no) in order, in chunks, through a server-side cursor."""
    session.flush()
    driver = session.connection().connection.driver_connection
    postgres = session.get_bind().dialect.name == "postgresql"
    cursor = driver.cursor(name=f"bulk_lines_{seq}") if postgres else driver.cursor()
    try:
        cursor.execute(
            "SELECT account_code, amount, line_no FROM ledger_bulk_lines WHERE entry_seq = "
            + ("%s" if postgres else "?") + " ORDER BY line_no",
            (seq,),
        )
        while chunk := cursor.fetchmany(BULK_CHUNK):
            yield chunk
    finally:
        cursor.close()


def bulk_entry_content(session: Session, entry) -> bytes:
    """A bulk entry's leaf data with its lines root and count recomputed from the stored lines (for verify_log).

    `entry` is its row (a JournalEntry, or a row with the same columns).
    """
    tree = LinesTree()
    for chunk in stored_lines(session, entry.seq):
        tree.extend(line_leaves(entry.uid, chunk))
    return entry_content(
        entry.uid, entry.posted_at, entry.kind, entry.memo, entry.reference, [],
        lines_root=tree.root().hex(), line_count=tree.size,
    )


def _stored_entry_content(entry: JournalEntry) -> bytes:
    """A bulk entry's leaf data from its row: the lines root as stored (each line's proof checks against it)."""
    return entry_content(
        entry.uid, entry.posted_at, entry.kind, entry.memo, entry.reference, [],
        lines_root=entry.lines_root, line_count=entry.line_count,
    )


def entry_view(session: Session, seq: int) -> bytes | None:
    """One entry's leaf data for showing: recomputed, but a bulk entry's lines root as stored (verify_log checks it)."""
    entry = session.get(JournalEntry, seq)
    if entry is None:
        return None
    if entry.lines_root is not None:
        return _stored_entry_content(entry)
    return entry_contents(session, [seq]).get(seq)


_LEAF_VIEWS["entry"] = entry_view


@dataclass(frozen=True)
class LineReceipt:
    """One line of a bulk entry proved twice: into the entry's lines root, and the entry's leaf into a checkpoint."""

    entry_seq: int
    line_no: int
    line_count: int
    line_content: bytes
    lines_root: bytes
    lines_proof: list[bytes]
    leaf_index: int
    entry_content: bytes
    entry_proof: list[bytes]
    checkpoint: LedgerCheckpoint


def line_inclusion_proof(session: Session, entry_seq: int, line_no: int) -> LineReceipt:
    """A member's proof of their own charge: the path from their line up to the entry's `lines_root`, and the
    path from the entry's leaf up to the latest signed checkpoint."""
    entry = session.get(JournalEntry, entry_seq)
    if entry is None or entry.lines_root is None:
        raise NotFound("no bulk entry {seq}", "seq", values={"seq": entry_seq})
    row = session.execute(
        select(LedgerBulkLine.account_code, LedgerBulkLine.amount).where(
            LedgerBulkLine.entry_seq == entry_seq, LedgerBulkLine.line_no == line_no
        )
    ).one_or_none()
    if row is None or line_no >= entry.line_count:
        raise NotFound("entry {seq} has no line {line}", "line_no", values={"seq": entry_seq, "line": line_no})
    found = leaf_of_entry(session, entry_seq)
    checkpoint = latest_checkpoint(session) if found is not None else None
    if found is None or checkpoint is None or found.leaf_index >= checkpoint.size:
        raise NotFound("this entry is not under a checkpoint yet; try again in a few seconds", "seq")
    return LineReceipt(
        entry_seq=entry_seq,
        line_no=line_no,
        line_count=entry.line_count,
        line_content=line_content(entry.uid, line_no, row.account_code, row.amount),
        lines_root=bytes.fromhex(entry.lines_root),
        lines_proof=merkle.inclusion_proof(line_no, entry.line_count, _line_full_node(session, entry)),
        leaf_index=found.leaf_index,
        entry_content=_stored_entry_content(entry),
        entry_proof=merkle.inclusion_proof(found.leaf_index, checkpoint.size, stored_full_node(session)),
        checkpoint=checkpoint,
    )


def _line_full_node(session: Session, entry: JournalEntry) -> merkle.FullNode:
    """Full nodes of a lines subtree: stored from level 8 up, recomputed below from the 256 lines of one tile."""
    tiles: dict[int, merkle.FullNode] = {}

    def in_tile(tile: int) -> merkle.FullNode:
        if tile not in tiles:
            first = tile * TILE
            rows = session.execute(
                select(LedgerBulkLine.account_code, LedgerBulkLine.amount, LedgerBulkLine.line_no)
                .where(LedgerBulkLine.entry_seq == entry.seq)
                .where(LedgerBulkLine.line_no >= first, LedgerBulkLine.line_no < first + TILE)
                .order_by(LedgerBulkLine.line_no)
            )
            tiles[tile] = tile_nodes(line_leaves(entry.uid, rows), first)
        return tiles[tile]

    def full_node(level: int, index: int) -> bytes:
        if level < TILE_LEVEL:
            return in_tile(index >> (TILE_LEVEL - level))(level, index)
        value = session.scalar(
            select(LedgerLineNode.hash).where(
                LedgerLineNode.entry_seq == entry.seq, LedgerLineNode.level == level, LedgerLineNode.idx == index
            )
        )
        if value is None:
            raise merkle.ProofError(f"line node ({level}, {index}) is not stored")
        return bytes.fromhex(value)

    return full_node


def _bulk_lines_of(code: str):
    """(entry_seq, amount) of an account's bulk lines, found one bulk entry at a time (index on entry, account)."""
    return (
        select(LedgerBulkLine.entry_seq.label("seq"), LedgerBulkLine.amount.label("amount"))
        .join(JournalEntry, JournalEntry.seq == LedgerBulkLine.entry_seq)
        .where(JournalEntry.lines_root.is_not(None), LedgerBulkLine.account_code == code)
    )


def _bulk_balance(session: Session, code: str) -> int:
    found = _bulk_lines_of(code).subquery()
    return int(session.scalar(select(func.coalesce(func.sum(found.c.amount), 0))))


# --- public accounts: what the transparency pages show ---------------------------------------


@dataclass(frozen=True)
class AccountMove:
    """One entry as it moved one account: its signed amount (debit positive) and the balance after it."""

    seq: int
    posted_at: dt.datetime
    kind: str
    memo: str
    reference: str | None
    amount: int
    balance: int
    leaf_index: int | None


@dataclass(frozen=True)
class AccountDay:
    """One day (China time) of an account: debits and credits in fen (both ≥ 0) and the balance at its end."""

    day: dt.date
    debits: int
    credits: int
    balance: int
    entries: int


def set_account_public(session: Session, code: str, public: bool, *, actor: str = "system") -> Account:
    """Show an account on the transparency pages (a campaign's funds, a plan's pool), or stop showing it."""
    account = session.scalars(select(Account).where(Account.code == code)).first()
    if account is None:
        raise NotFound("no account {code}", "account_code", values={"code": repr(code)})
    if account.public != public:
        account.public = public
        session.flush()
        record_audit(session, actor, "ledger.set_account_public", "account", account.id, {"public": public})
    return account


def public_account(session: Session, code: str) -> Account:
    """A public account by code; any other is "not found", so a member's account never shows it exists."""
    account = session.scalars(select(Account).where(Account.code == code, Account.public.is_(True))).first()
    if account is None:
        raise NotFound("no public account {code}", "code", values={"code": repr(code)})
    return account


def public_accounts(session: Session) -> list[tuple[Account, int]]:
    """Every public account with its signed balance, by code."""
    accounts = session.scalars(select(Account).where(Account.public.is_(True)).order_by(Account.code)).all()
    return [(account, account_balance(session, account.code)) for account in accounts]


def _moves(account: Account):
    """(seq, amount): the account's net amount in each entry that moved it, lines and bulk lines alike."""
    posted = select(Posting.entry_seq.label("seq"), Posting.amount.label("amount")).where(
        Posting.account_id == account.id
    )
    both = union_all(posted, _bulk_lines_of(account.code)).subquery()
    return select(both.c.seq, func.sum(both.c.amount).label("amount")).group_by(both.c.seq).subquery()


def _moves_query(moves):
    return (
        select(
            JournalEntry.seq, JournalEntry.posted_at, JournalEntry.kind, JournalEntry.memo, JournalEntry.reference,
            moves.c.amount, LedgerLeaf.leaf_index,
        )
        .join(moves, moves.c.seq == JournalEntry.seq)
        .outerjoin(LedgerLeaf, and_(LedgerLeaf.source == "entry", LedgerLeaf.source_id == JournalEntry.seq))
    )


def account_moves(
    session: Session, account: Account, *, before: int | None = None, limit: int = 50
) -> list[AccountMove]:
    """The entries that moved an account, newest first (those with seq < `before`), each with the balance after it."""
    moves = _moves(account)
    query = _moves_query(moves).order_by(JournalEntry.seq.desc()).limit(limit)
    if before is not None:
        query = query.where(JournalEntry.seq < before)
    rows = session.execute(query).all()
    if not rows:
        return []
    total, later = session.execute(
        select(
            func.coalesce(func.sum(moves.c.amount), 0),
            func.coalesce(func.sum(case((moves.c.seq > rows[0].seq, moves.c.amount), else_=0)), 0),
        )
    ).one()
    balance = int(total) - int(later)
    found = []
    for row in rows:
        found.append(AccountMove(row.seq, row.posted_at, row.kind, row.memo, row.reference, int(row.amount), balance,
                                 row.leaf_index))
        balance -= int(row.amount)
    return found


def account_history(session: Session, account: Account) -> Iterator[AccountMove]:
    """Every entry that moved an account, oldest first with the running balance, streamed (for CSV export)."""
    balance = 0
    query = _moves_query(_moves(account)).order_by(JournalEntry.seq).execution_options(yield_per=BULK_CHUNK)
    for row in session.execute(query):
        balance += int(row.amount)
        yield AccountMove(row.seq, row.posted_at, row.kind, row.memo, row.reference, int(row.amount), balance,
                          row.leaf_index)


def account_days(session: Session, account: Account) -> list[AccountDay]:
    """The account day by day in China time (UTC+8, no daylight saving), for its chart."""
    moves = _moves(account)
    if session.get_bind().dialect.name == "postgresql":
        day = func.date(func.timezone("Asia/Shanghai", JournalEntry.posted_at))
    else:
        day = func.date(JournalEntry.posted_at, "+8 hours")
    rows = session.execute(
        select(
            day.label("day"),
            func.sum(case((moves.c.amount > 0, moves.c.amount), else_=0)),
            func.sum(case((moves.c.amount < 0, -moves.c.amount), else_=0)),
            func.count(),
        )
        .join(moves, moves.c.seq == JournalEntry.seq)
        .group_by(day)
        .order_by(day)
    ).all()
    days, balance = [], 0
    for when, debits, credits, count in rows:
        balance += int(debits) - int(credits)
        day_value = when if isinstance(when, dt.date) else dt.date.fromisoformat(when)
        days.append(AccountDay(day_value, int(debits), int(credits), balance, int(count)))
    return days
