"""Ledger tables: accounts, the append-only journal with its postings, and the chain head."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gongji.core.db import Base
from gongji.core.persistence import UTCDateTime, utcnow

ACCOUNT_KINDS = ("asset", "liability", "income", "expense", "equity")


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


class JournalEntry(Base):
    """One journal entry (记账凭证); `hash` covers its content and its predecessor's hash.

    Rows are never updated or deleted: database triggers refuse it.
    """

    __tablename__ = "journal_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    posted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(200))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    postings: Mapped[list[Posting]] = relationship(order_by="Posting.id", lazy="selectin")


class Posting(Base):
    """One line of an entry: debit positive, credit negative, in fen."""

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="ck_postings_amount_nonzero"),
        Index("ix_postings_entry_seq", "entry_seq"),
        Index("ix_postings_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_seq: Mapped[int] = mapped_column(ForeignKey("journal_entries.seq"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)

    account: Mapped[Account] = relationship(lazy="joined")


class LedgerHead(Base):
    """The single row naming the last entry; locked to serialise appends to the chain."""

    __tablename__ = "ledger_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_ledger_head_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
