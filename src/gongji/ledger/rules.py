"""Pure ledger rules: balance checks and the hash chain (no I/O).

Each entry's hash is SHA-256 over a canonical JSON of its content plus the
previous entry's hash, so changing any past entry breaks every link after it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence

from gongji.core.errors import InvalidInput

#: The prev_hash of entry 1 (创世).
GENESIS_HASH = "0" * 64

#: What a movement of money is: donation (捐款), refund (退款), disbursement to a
#: hospital or payee (拨付), mutual-aid apportionment charge (分摊), mutual-aid
#: payout (互助金给付), charity grant (救助金), platform fee (服务费), a member's or
#: collective's contribution (筹资), and correcting adjustment (调整).
ENTRY_KINDS = (
    "donation",
    "refund",
    "disbursement",
    "apportionment",
    "payout",
    "grant",
    "fee",
    "contribution",
    "adjustment",
)

Line = tuple[str, int]


def iso_utc(instant: dt.datetime) -> str:
    """The one textual form of a timestamp inside a hash: UTC, microseconds, explicit offset."""
    return instant.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_entry(
    seq: int,
    posted_at: dt.datetime,
    kind: str,
    memo: str,
    reference: str | None,
    postings: Sequence[Line],
    prev_hash: str,
) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8) of an entry; postings sorted as [code, amount]."""
    document = {
        "seq": seq,
        "posted_at": iso_utc(posted_at),
        "kind": kind,
        "memo": memo,
        "reference": reference,
        "postings": sorted([code, amount] for code, amount in postings),
        "prev_hash": prev_hash,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(
    seq: int,
    posted_at: dt.datetime,
    kind: str,
    memo: str,
    reference: str | None,
    postings: Sequence[Line],
    prev_hash: str,
) -> str:
    """SHA-256 hex of the canonical JSON."""
    return hashlib.sha256(canonical_entry(seq, posted_at, kind, memo, reference, postings, prev_hash)).hexdigest()


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
