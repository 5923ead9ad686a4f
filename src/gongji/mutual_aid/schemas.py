"""Request and response types of mutual aid (医疗互助).

Money follows `rules.schemas`: yuan strings in, `{fen, yuan}` out. Raw ID numbers and names go in once, when a
member joins, and never come back: memberships, claims and notices carry the masked name only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gongji.episodes.schemas import EpisodeCreate
from gongji.mutual_aid.models import Claim, ClaimStep, JuryCase, Membership
from gongji.mutual_aid.plans import PlanSpec
from gongji.rules.schemas import Money, RegionCode, Scheme, YuanText


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanOut(BaseModel):
    code: str
    version: int
    operator: str
    effective_from: dt.date
    name_zh: str
    name_en: str
    type: str
    members_protected: int
    spec: dict[str, Any] = Field(description="The whole plan version as validated (amounts in fen, rates in bp).")

    @classmethod
    def of(cls, version: int, spec: PlanSpec, members_protected: int) -> PlanOut:
        return cls(
            code=spec.code, version=version, operator=spec.operator, effective_from=spec.effective_from,
            name_zh=spec.name.zh, name_en=spec.name.en, type=spec.type, members_protected=members_protected,
            spec=spec.model_dump(mode="json"),
        )


class JoinRequest(_Body):
    """Real-name join (实名加入) for oneself or a family member."""

    id_number: str = Field(max_length=32, description="18-digit resident ID (GB 11643); stored encrypted.")
    name: str = Field(max_length=100, examples=["张小明"])
    relationship: Literal["self", "spouse", "parent", "child", "sibling", "other"]
    tier: Literal["standard", "entry"] = "standard"
    shares: int = Field(1, ge=1, le=5, description="Union plans sell up to 5 shares (份).")
    declaration: dict[str, bool] = Field(
        default_factory=dict, max_length=50, description="Health declaration (健康告知): question id → yes/no."
    )
    scheme: Scheme = "resident"
    region: RegionCode = "330100"


class MembershipOut(BaseModel):
    id: int
    plan_code: str
    person_id: int
    masked_name: str
    tier: str
    shares: int
    status: str
    joined_at: dt.datetime
    protected_from: dt.date
    left_at: dt.datetime | None
    account_code: str

    @classmethod
    def of(cls, membership: Membership, masked_name: str) -> MembershipOut:
        return cls(
            id=membership.id, plan_code=membership.plan_code, person_id=membership.person_id,
            masked_name=masked_name, tier=membership.tier, shares=membership.shares, status=membership.status,
            joined_at=membership.joined_at, protected_from=membership.protected_from, left_at=membership.left_at,
            account_code=membership.account_code,
        )


class ClaimCreate(_Body):
    """报案: against a recorded episode, or with the hospital bill, which is recorded and settled first."""

    membership_id: int = Field(ge=1, le=2**31 - 1)
    episode_id: int | None = Field(None, ge=1, le=2**31 - 1)
    bill: EpisodeCreate | None = None


class ReasonOut(BaseModel):
    code: str
    reason: str


class StepOut(BaseModel):
    step: str
    outcome: str
    note: str
    actor: str
    at: dt.datetime

    @classmethod
    def of(cls, step: ClaimStep) -> StepOut:
        return cls(step=step.step, outcome=step.outcome, note=step.note, actor=step.actor, at=step.at)


class ClaimOut(BaseModel):
    id: int
    plan_code: str
    plan_version: int
    membership_id: int
    episode_id: int
    disease_group: str | None
    status: str
    amount_assessed: Money
    amount_approved: Money | None
    reasons: list[ReasonOut] = Field(description="Numbered findings (R1 not yet protected, R2 not covered …).")
    investigation_summary: str | None
    filed_at: dt.datetime
    decided_at: dt.datetime | None
    notice_until: dt.date | None
    period_id: int | None
    payout_entry_seq: int | None
    steps: list[StepOut]

    @classmethod
    def of(cls, claim: Claim, steps: list[ClaimStep], render) -> ClaimOut:
        return cls(
            id=claim.id, plan_code=claim.plan_code, plan_version=claim.plan_version,
            membership_id=claim.membership_id, episode_id=claim.episode_id, disease_group=claim.disease_group,
            status=claim.status, amount_assessed=Money.of(claim.amount_assessed),
            amount_approved=None if claim.amount_approved is None else Money.of(claim.amount_approved),
            reasons=[ReasonOut(code=reason["code"], reason=render(reason)) for reason in claim.reasons or []],
            investigation_summary=(claim.investigation or {}).get("summary"),
            filed_at=claim.filed_at, decided_at=claim.decided_at, notice_until=claim.notice_until,
            period_id=claim.period_id, payout_entry_seq=claim.payout_entry_seq,
            steps=[StepOut.of(step) for step in steps],
        )


class ReviewRequest(_Body):
    """初审 or 复审: approve, or reject with a note (marked fraud where the investigation found it)."""

    approve: bool
    note: str = Field("", max_length=2000)
    fraud: bool = False
    amount: YuanText | None = Field(None, description="Re-review only: a lower amount than assessed, with a note.")


class InvestigationRequest(_Body):
    """公估调查: the summary is published with the notice, so it must not name anyone."""

    summary: str = Field(max_length=2000)
    findings: str = Field("", max_length=8000)


class DisputeRequest(_Body):
    reason: str = Field(max_length=2000)


class JurorRequest(_Body):
    answers: dict[str, int] = Field(max_length=50, description="Quiz question id → chosen answer (0-based).")


class JurorOut(BaseModel):
    id: int
    plan_code: str
    qualified_at: dt.datetime
    quiz_score: int


class VoteRequest(_Body):
    supports: bool


class JuryCaseOut(BaseModel):
    id: int
    claim_id: int
    plan_code: str
    brief: dict[str, Any]
    quorum: int
    opened_at: dt.datetime
    closes_at: dt.datetime
    outcome: str | None

    @classmethod
    def of(cls, case: JuryCase) -> JuryCaseOut:
        return cls(id=case.id, claim_id=case.claim_id, plan_code=case.plan_code, brief=case.brief,
                   quorum=case.quorum, opened_at=case.opened_at, closes_at=case.closes_at, outcome=case.outcome)


class JuryResultOut(BaseModel):
    case_id: int
    votes: int
    supports: int
    quorum: int
    outcome: str | None = Field(description="approved, rejected, or null: below the quorum nothing is decided.")
    closes_at: dt.datetime


class PeriodOpen(_Body):
    """A period's cut-off instant and charge day; both default to the plan's calendar (next announcement day)."""

    cutoff_at: dt.datetime | None = None
    charge_on: dt.date | None = None


class PeriodOut(BaseModel):
    id: int
    plan_code: str
    plan_version: int
    number: int
    cutoff_at: dt.datetime
    charge_on: dt.date
    status: str
    cases: int
    payouts: Money
    fee: Money
    surplus_in: Money
    amount_to_collect: Money
    members: int
    share: Money = Field(description="The equal share per member before caps.")
    charged: Money
    surplus_out: Money
    uncovered: Money
    entry_seq: int | None


class SharePoint(BaseModel):
    number: int
    cutoff: dt.date
    share: Money
    members: int


class BillOut(BaseModel):
    period_id: int
    number: int
    line_no: int
    amount: Money
    status: str
    entry_seq: int
    receipt_url: str = Field(description="The line's receipt: check it at /ledger/verify or with the verifier.")


class NoticeOut(BaseModel):
    claim_id: int
    plan_code: str
    masked_name: str
    age_band: str
    disease: str | None
    amount: Money
    summary: str
    notice_until: dt.date
