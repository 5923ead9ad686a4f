"""The ledger accounts of mutual aid, named one way everywhere.

Per plan: its pool (互助资金池, a liability to members: charges and contributions credit it, payouts debit it)
and its operator's fee income (管理费). Per membership: a receivable (应收分摊) that each period's charge debits
and each collection credits, so a member's bill and its proof are lines of their own account. Money in and out
of the platform passes through the custody account (托管账户) `bank`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gongji.ledger.models import Account
from gongji.ledger.service import open_account

BANK = "bank"
MEMBER_ACCOUNT_PREFIX = "ma:m:"


def pool_account(plan_code: str) -> str:
    return f"ma:{plan_code}:pool"


def fee_account(plan_code: str) -> str:
    return f"ma:{plan_code}:fee"


def member_account(membership_id: int) -> str:
    return f"{MEMBER_ACCOUNT_PREFIX}{membership_id}"


def ensure_plan_accounts(session: Session, plan_code: str, plan_name: str, *, actor: str = "system") -> None:
    """Open the custody account, the plan's pool (public on the transparency pages) and its fee account if missing."""
    wanted = [
        (BANK, "托管账户 custody bank", "asset", False),
        (pool_account(plan_code), f"{plan_name} 互助资金池", "liability", True),
        (fee_account(plan_code), f"{plan_name} 管理费", "income", True),
    ]
    existing = set(session.scalars(select(Account.code).where(Account.code.in_([code for code, *_ in wanted]))))
    for code, name, kind, public in wanted:
        if code not in existing:
            open_account(session, code, name, kind, public=public, actor=actor)
