"""The arithmetic of post-event sharing (后分摊), pure: fen in, fen out, no I/O.

One period: the approved payouts plus the management fee (管理费), less what
earlier periods carried in, is the amount to collect. The members protected at
the cut-off share it equally — largest remainder (the first `amount % n`
members in line order pay one fen more, so Σ is exact) or rounded up to the
fen (不足1分按1分; the excess is surplus for the next period) — each within the
plan's caps (per case × cases, per period, what is left of the annual cap).
What the caps leave uncollected is carried or taken off the payouts.
`apportionment.py` does the same in one SQL statement; `reference_charges`
here is the list version the tests hold it to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gongji.core.money import apply_rate, split_largest_remainder
from gongji.mutual_aid.plans import PostEventFunding

ROUNDINGS = ("largest_remainder", "round_up")


@dataclass(frozen=True)
class Amount:
    """What a period must collect: `amount = max(payouts + fee − carried_in, 0)`; a bigger carry stays a carry."""

    payouts: int
    fee: int
    carried_in: int
    amount: int
    #: Surplus brought in beyond this period's needs (only when amount is 0); it carries on.
    surplus_left: int


def amount_to_collect(payouts: int, fee_rate_bp: int, carried_in: int) -> Amount:
    """`carried_in` is signed: a surplus (positive) lowers the amount, an uncovered shortfall (negative) raises it."""
    if payouts < 0:
        raise ValueError("payouts must not be negative")
    fee = apply_rate(payouts, fee_rate_bp)
    gross = payouts + fee - carried_in
    return Amount(payouts, fee, carried_in, max(gross, 0), max(-gross, 0))


def period_cap(funding: PostEventFunding, cases: int) -> int | None:
    """The cap every member shares this period (per case × cases, per period), None when the plan has none."""
    caps = []
    if funding.per_case_cap is not None:
        caps.append(funding.per_case_cap * cases)
    if funding.per_period_cap is not None:
        caps.append(funding.per_period_cap)
    return min(caps) if caps else None


def member_cap(common_cap: int | None, annual_cap: int | None, charged_this_year: int) -> int | None:
    """One member's cap: the period's cap and what is left of the annual cap (never below 0)."""
    caps = [cap for cap in (common_cap,) if cap is not None]
    if annual_cap is not None:
        caps.append(max(annual_cap - charged_this_year, 0))
    return min(caps) if caps else None


@dataclass(frozen=True)
class EqualShare:
    """Each of `n` members owes `base`, and the first `extra` in line order one fen more."""

    base: int
    extra: int

    def of(self, position: int) -> int:
        """The share of the member at 0-based `position` in line order, before caps."""
        return self.base + (1 if position < self.extra else 0)


def equal_share(amount: int, members: int, rounding: str) -> EqualShare:
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}")
    if members <= 0 or amount <= 0:
        return EqualShare(0, 0)
    if rounding == "largest_remainder":
        return EqualShare(amount // members, amount % members)
    return EqualShare(-(-amount // members), 0)


@dataclass(frozen=True)
class Outcome:
    """The period's totals once charged: Σ charges, and what that leaves over or short of the amount."""

    charged: int
    #: The round-up excess of this period (Σ − amount when positive).
    excess: int
    #: What the caps left uncollected (amount − Σ when positive).
    uncovered: int


def outcome(amount: int, charged: int) -> Outcome:
    return Outcome(charged, max(charged - amount, 0), max(amount - charged, 0))


def carried_to_next(surplus_out: int, uncovered: int, uncovered_rule: str) -> int:
    """The signed carry into the next period: the surplus, less the shortfall when the plan carries it."""
    return surplus_out - (uncovered if uncovered_rule == "carry" else 0)


def reduce_payouts(payouts: Sequence[int], fee: int, uncovered: int) -> tuple[list[int], int]:
    """Take a shortfall off the period's payouts in proportion (largest remainder), then off the fee.

    Returns the reduced payouts (same order) and the reduced fee; their sum falls by exactly `uncovered`.
    """
    total = sum(payouts)
    from_payouts = min(uncovered, total)
    reduced = split_largest_remainder(total - from_payouts, list(payouts)) if total else list(payouts)
    return reduced, fee - (uncovered - from_payouts)


def reference_charges(
    amount: int, caps: Sequence[int | None], rounding: str
) -> tuple[EqualShare, list[int], Outcome]:
    """Charges of members in line order (0 where a cap leaves nothing), the list version of the SQL statement."""
    share = equal_share(amount, len(caps), rounding)
    charges = [share.of(k) if cap is None else min(share.of(k), cap) for k, cap in enumerate(caps)]
    return share, charges, outcome(amount, sum(charges))
