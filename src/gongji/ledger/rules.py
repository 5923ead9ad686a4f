"""Pure ledger rules: balance checks and the canonical content of every leaf of the log (no I/O).

A leaf's data is canonical JSON — keys sorted, no spaces, UTF-8, amounts as
integers in fen, timestamps in UTC with microseconds — and its leaf hash is
RFC 9162's SHA-256(0x00 || data). Anyone holding the content can recompute
the hash; `docs/ledger.md` documents each kind.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from gongji.core.errors import InvalidInput

#: What a movement of money is: donation (捐款), refund (退款), disbursement to a
#: hospital or payee (拨付), mutual-aid apportionment charge (分摊), its collection
#: from the member (分摊扣款), mutual-aid payout (互助金给付), charity grant (救助金), platform fee (服务费), a member's or
#: collective's contribution (筹资), and correcting adjustment (调整).
ENTRY_KINDS = (
    "donation",
    "refund",
    "disbursement",
    "apportionment",
    "collection",
    "payout",
    "grant",
    "fee",
    "contribution",
    "adjustment",
)

Line = tuple[str, int]


def iso_utc(instant: dt.datetime) -> str:
    """The one textual form of a timestamp inside a leaf: UTC, microseconds, explicit offset."""
    return instant.astimezone(dt.UTC).isoformat(timespec="microseconds")


#: One encoder for every leaf (json.dumps with options would build a new one per call — dear over millions).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(document: dict) -> bytes:
    return _CANONICAL.encode(document).encode("utf-8")


def entry_content(
    uid: str,
    posted_at: dt.datetime,
    kind: str,
    memo: str,
    reference: str | None,
    postings: Sequence[Line],
    *,
    lines_root: str | None = None,
    line_count: int | None = None,
) -> bytes:
    """A journal entry as a leaf. Its lines are listed in order — or, for a bulk entry, committed to by
    the root and count of their own subtree (each line a leaf there: `line_content`)."""
    document = {
        "type": "journal_entry",
        "uid": uid,
        "posted_at": iso_utc(posted_at),
        "kind": kind,
        "memo": memo,
        "reference": reference,
    }
    if lines_root is None:
        document["postings"] = [[code, amount] for code, amount in postings]
    else:
        document["lines_root"] = lines_root
        document["line_count"] = line_count
    return canonical(document)


def line_content(uid: str, line_no: int, code: str, amount: int) -> bytes:
    """One line of a bulk entry as a leaf of the entry's own subtree (a member's charge, say)."""
    return canonical({"type": "line", "entry": uid, "line": line_no, "account": code, "amount": amount})


def check_balanced(postings: Sequence[Line]) -> None:
    """Double entry (借贷平衡): at least two lines, none zero, summing to zero."""
    if len(postings) < 2:
        raise InvalidInput("an entry needs at least two lines", "lines")
    for index, (_code, amount) in enumerate(postings):
        if amount == 0:
            raise InvalidInput("a line must not be zero", f"lines[{index}].amount")
    total = sum(amount for _code, amount in postings)
    if total != 0:
        raise InvalidInput(f"lines do not balance: debits and credits differ by {total} fen", "lines")
