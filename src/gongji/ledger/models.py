"""Ledger tables: accounts, the append-only journal and its lines, and the transparency log over them.

Writers insert an entry, its lines and a `ledger_pending` row (the leaf hash
waiting for a place in the tree) in their own transaction and take no shared
lock. The sequencer moves pending rows into `ledger_leaves` in batches,
stores the tree's full nodes and issues signed checkpoints. Everything but
`ledger_pending` is append-only (database triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gongji.core.db import Base
from gongji.core.persistence import UTCDateTime, utcnow

ACCOUNT_KINDS = ("asset", "liability", "income", "expense", "equity")
#: What a leaf of the log stands for: a journal entry, or a record of the coverage registry.
LEAF_SOURCES = ("entry", "coverage")


class Account(Base):
    """One account of the chart (科目), e.g. a campaign's fund, a hospital payable."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("code", name="uq_accounts_code"),
        CheckConstraint("kind IN ('asset', 'liability', 'income', 'expense', 'equity')", name="ck_accounts_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Shown on the public transparency pages (a campaign's funds, a plan's pool); members' accounts are not.
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class JournalEntry(Base):
    """One journal entry (记账凭证). `leaf_hash` is the RFC 9162 leaf hash of its canonical content.

    `uid` (random) makes the content unique before the database numbers it, so a
    writer computes its leaf hash without asking anyone. A bulk entry's lines are
    the leaves of their own subtree, whose root (`lines_root`) the entry commits to.
    """

    __tablename__ = "journal_entries"
    #: The few bulk entries among millions, so an account's bulk lines are found one bulk entry at a time.
    __table_args__ = (
        Index(
            "ix_journal_entries_bulk", "seq",
            postgresql_where=text("lines_root IS NOT NULL"), sqlite_where=text("lines_root IS NOT NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32))
    posted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    posted_by: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(200))
    line_count: Mapped[int] = mapped_column(Integer)
    lines_root: Mapped[str | None] = mapped_column(String(64))
    leaf_hash: Mapped[str] = mapped_column(String(64))

    postings: Mapped[list[Posting]] = relationship(order_by="Posting.line_no", lazy="selectin")


class Posting(Base):
    """One line of an entry: debit positive, credit negative, in fen; `line_no` orders the lines from 0."""

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="ck_postings_amount_nonzero"),
        UniqueConstraint("entry_seq", "line_no", name="uq_postings_entry_line"),
        Index("ix_postings_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_seq: Mapped[int] = mapped_column(ForeignKey("journal_entries.seq"))
    line_no: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)

    account: Mapped[Account] = relationship(lazy="joined")


class LedgerPending(Base):
    """A leaf hash committed with its source, waiting for the sequencer (the outbox of the log)."""

    __tablename__ = "ledger_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(BigInteger)
    leaf_hash: Mapped[str] = mapped_column(String(64))


class LedgerLeaf(Base):
    """Leaf `leaf_index` of the log: which entry or coverage record it is, and its hash."""

    __tablename__ = "ledger_leaves"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_ledger_leaves_source"),)

    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(BigInteger)
    leaf_hash: Mapped[str] = mapped_column(String(64))
    sequenced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerNode(Base):
    """A full inner node of the tree: level ≥ 1, covering leaves [idx·2^level, (idx+1)·2^level)."""

    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))


class LedgerCheckpoint(Base):
    """A signed checkpoint (C2SP signed note) of the tree at `size` leaves; every one is kept."""

    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerBulkLine(Base):
    """One line of a bulk entry (a member's apportionment charge, or the balancing line to the pool).

    Bulk lines are written set-based (COPY on PostgreSQL) and kept apart from
    `postings`: per-row foreign-key checks would cost more than the writing
    itself. The account is its permanent code (what the line's leaf carries);
    the posting checks every code against `accounts` in one query, and
    accounts can be neither deleted nor recoded (migration 0007).
    """

    __tablename__ = "ledger_bulk_lines"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="ck_ledger_bulk_lines_amount_nonzero"),
        # Each new entry's keys sort after all earlier ones: a period's millions of lines are appended to
        # the index, never scattered through it. An account's lines are found entry by bulk entry.
        Index("ix_ledger_bulk_lines_entry_account", "entry_seq", "account_code"),
    )

    entry_seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_code: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)


class LedgerLineNode(Base):
    """A full node of a bulk entry's lines subtree at level ≥ `lines.TILE_LEVEL` (tiles of 256 lines).

    Lower levels are recomputed from the tile's lines when a proof needs them.
    """

    __tablename__ = "ledger_line_nodes"

    entry_seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
