"""Mutual-aid demo data: rosters with a realistic age mix, claims in every state, and closed periods.

Everything goes through the services the API uses (rosters through `enroll_roster`, claims through the
review steps, periods through `apportion`), with `now` set in the past where history is being made, so the
demo shows what the platform would have recorded. Reproducible from `seed`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gongji.api.auth import Principal
from gongji.core.identity import IdentityVault, check_char
from gongji.core.persistence import CHINA_TIME, china_day, utcnow
from gongji.episodes.service import coverage_of, create_episode, record_coverage, settle_statutory
from gongji.mutual_aid import apportionment, claims, jury, membership, payments
from gongji.mutual_aid.models import Claim, Membership
from gongji.rules.params import ParameterBook

#: (plan, members, youngest, oldest, weights of ten-year age bands from the youngest) of each demo roster, ages
#: today; members joined up to 600 days ago and were within the entry ages then. Online plans skew young (their
#: members joined on their phones); the elderly plan is 62–70.
ROSTERS = (
    ("online-comprehensive", 20_000, 2, 59, (12, 16, 30, 24, 12, 6)),
    ("online-icu", 5_000, 2, 59, (10, 18, 32, 22, 12, 6)),
    ("online-elderly-cancer", 2_000, 62, 70, (70, 30)),
    ("union-hospital", 1_500, 22, 60, (20, 30, 28, 22)),
    ("village-aid", 800, 2, 85, (12, 10, 12, 14, 16, 14, 12, 10)),
)
#: Districts the synthetic members live in (杭州 and 成都).
DISTRICTS = ("330102", "330105", "330106", "330108", "510104", "510105", "510106", "510107")
ACTOR = "demo"
QUIZ_ANSWERS = {"j1": 1, "j2": 1, "j3": 1}
#: The demo loader acting for the platform (it files the synthetic members' claims).
SYSTEM = Principal(0, ACTOR, "admin", "演示数据", ("000000",), None)
NO = {"q-cancer": False, "q-hospital": False}


@dataclass(frozen=True)
class MutualAidDemo:
    members: int
    claims: int
    periods: int


def load_mutual_aid_demo(
    session: Session, vault: IdentityVault, book: ParameterBook, name_for: Callable[[int], str],
    accounts: dict[str, Principal], *, seed: int = 2024, now: dt.datetime | None = None, scale: float = 1.0,
) -> MutualAidDemo:
    """Fill an empty mutual-aid database; `accounts` are the demo users by username (member, juror, ma.*).

    `scale` shrinks the rosters (tests load a few hundred members instead of tens of thousands).
    """
    if session.scalar(select(func.count()).select_from(Membership)):
        return MutualAidDemo(0, 0, 0)
    now = now or utcnow()
    rng = np.random.default_rng(seed)
    used: set[str] = set()
    enrolled = 0
    ids_by_plan: dict[str, list[int]] = {}
    for plan, full, youngest, oldest, weights in ROSTERS:
        count = max(100, round(full * scale))
        roster = [
            membership.RosterMember(
                _id_number(rng, used, china_day(now), youngest, oldest, weights), name_for(enrolled + k),
                scheme="resident" if rng.random() < 0.6 else "employee",
                region=f"{DISTRICTS[k % len(DISTRICTS)][:4]}00",
                tier="entry" if plan == "online-comprehensive" and rng.random() < 0.15 else "standard",
                shares=int(rng.integers(1, 6)) if plan == "union-hospital" else 1,
                joined_at=now - dt.timedelta(days=int(rng.integers(5, 600)), minutes=int(rng.integers(0, 1440))),
            )
            for k in range(count)
        ]
        ids_by_plan[plan] = membership.enroll_roster(session, vault, None, plan, roster, now=now)
        enrolled += count
        for leaving in ids_by_plan[plan][7::97]:  # about 1% left: charges that failed past the retry window
            membership.remove(session, leaving, reason="扣款失败超过重试期", actor=ACTOR,
                              now=now - dt.timedelta(days=int(rng.integers(1, 60))))
    story = _Story(session, vault, book, accounts, rng, now, name_for, used)
    story.accounts_join()
    periods = story.history(ids_by_plan) + story.today(ids_by_plan)
    return MutualAidDemo(enrolled + story.joined, session.scalar(select(func.count()).select_from(Claim)), periods)


def _id_number(rng, used: set[str], today: dt.date, youngest: int, oldest: int, weights: tuple[int, ...]) -> str:
    """A valid, unused resident ID of someone aged `youngest`–`oldest`, the age drawn by ten-year band."""
    shares = np.array(weights, dtype=float) / sum(weights)
    while True:
        band = int(rng.choice(len(weights), p=shares))
        age = min(oldest, youngest + band * 10 + int(rng.integers(0, 10)))
        birth = today - dt.timedelta(days=int(age * 365.25 + rng.integers(30, 330)))
        first17 = f"{DISTRICTS[int(rng.integers(0, len(DISTRICTS)))]}{birth:%Y%m%d}{int(rng.integers(0, 1000)):03d}"
        number = first17 + check_char(first17)
        if number not in used:
            used.add(number)
            return number


class _Story:
    """The claims and periods of the demo, told in date order through the services."""

    def __init__(self, session, vault, book, accounts, rng, now, name_for, used):
        self.session, self.vault, self.book, self.accounts, self.rng, self.now = session, vault, book, accounts, rng, now
        self.name_for, self.used = name_for, used
        self.reviewer, self.assessor = accounts["ma.reviewer"], accounts["ma.assessor"]
        self.channel = payments.SandboxChannel(seed=int(rng.integers(0, 2**31)), latency=(5.0, 600.0),
                                               failure_rate=0.02, duplicate_rate=0.01)
        self.joined = 0
        self.members: list[Membership] = []

    def _bill(self, person_id: int, admitted: dt.date, icd10: str, fen: int) -> int:
        episode = create_episode(self.session, person_id, admitted, admitted + dt.timedelta(days=12), 3, icd10,
                                 fen * 6 // 10, fen * 3 // 10, fen - fen * 9 // 10, book=self.book, actor=ACTOR)
        settle_statutory(self.session, self.book, episode.id, ACTOR)
        return episode.id

    def _file(self, membership_id: int, icd10: str, admitted: dt.date, fen: int, at: dt.datetime) -> Claim:
        member = self.session.get(Membership, membership_id)
        episode_id = self._bill(member.person_id, admitted, icd10, fen)
        return claims.file_claim(self.session, self.vault, SYSTEM, membership_id, episode_id, now=at)

    def _approve(self, claim: Claim, at: dt.datetime, summary: str) -> None:
        claims.first_review(self.session, self.reviewer, claim.id, approve=True, note="材料齐全", now=at)
        claims.record_investigation(self.session, self.assessor, claim.id, summary=summary,
                                    findings="病历、病理报告与医院核实一致", now=at + dt.timedelta(days=2))
        claims.re_review(self.session, self.vault, self.reviewer, claim.id, approve=True, note="同意给付",
                         now=at + dt.timedelta(days=3))

    def _member_of(self, ids: list[int], protected_by: dt.date | None = None) -> int:
        """A member of the roster at random; with `protected_by`, one already protected (and still in) by then."""
        if protected_by is not None:
            ids = list(self.session.scalars(select(Membership.id).where(
                Membership.id.in_(ids), Membership.status == "protected", Membership.protected_from < protected_by,
            ).order_by(Membership.id)))
        return ids[int(self.rng.integers(0, len(ids)))]

    def history(self, ids_by_plan: dict[str, list[int]]) -> int:
        """Six closed periods of each post-event plan: cases approved, noticed, shared and paid."""
        periods = 0
        for plan, icd10s in (("online-comprehensive", ("C34.1", "C50.9", "I21.0", "C16.2", "N18.5")),
                             ("online-icu", ("A41.9", "J96.0", "S06.5"))):
            for step in range(6, 0, -1):
                cutoff_day = china_day(self.now) - dt.timedelta(days=14 * step + 5)
                cutoff = dt.datetime.combine(cutoff_day, dt.time(0, 0), CHINA_TIME)
                for case in range(1 + int(self.rng.integers(0, 3))):
                    at = cutoff - dt.timedelta(days=20 + case)
                    claim = self._file(self._member_of(ids_by_plan[plan]), icd10s[(step + case) % len(icd10s)],
                                       china_day(at) - dt.timedelta(days=30), int(self.rng.integers(8, 40)) * 1_000_000,
                                       at)
                    if claim.reasons:  # e.g. R1: the event fell in the member's waiting period
                        claims.first_review(self.session, self.reviewer, claim.id, approve=False,
                                            note=f"不符合给付条件（{claim.reasons[0]['code']}）", now=at)
                        continue
                    self._approve(claim, at, "经第三方公估核实，诊断与住院经过属实")
                period = apportionment.open_period(self.session, plan, cutoff_at=cutoff,
                                                   charge_on=cutoff_day + dt.timedelta(days=7), actor=ACTOR)
                apportionment.apportion(self.session, period.id, actor=ACTOR)
                self._collect(period, cutoff + dt.timedelta(days=7))
                periods += 1
        return periods

    def _collect(self, period, charge_at: dt.datetime) -> None:
        """扣款 through the sandbox channel: most succeed, a few fail and are retried on the next days."""
        for day in range(3):
            at = charge_at + dt.timedelta(days=day)
            payments.collect_period(self.session, period.id, self.channel, now=at)
            payments.handle_notifications(self.session, self.channel.poll(at + dt.timedelta(hours=1)),
                                          now=at + dt.timedelta(hours=1), actor=ACTOR)
        # Members still failing after the retry window are removed, their charges written off (移出).
        payments.retry_failed(self.session, period.plan_code, charge_at + dt.timedelta(days=7), actor=ACTOR)

    def accounts_join(self) -> None:
        """The demo member joins itself, its child and its spouse, and the demo juror itself, 200 days ago —
        before the closed periods, so their bills are in the member's home."""
        at = self.now - dt.timedelta(days=200)
        people = (("member", "张小明", "self", 35), ("member", "张小红", "child", 8), ("member", "王丽", "spouse", 37),
                  ("juror", "李评审", "self", 42))
        self.members = [
            membership.join_plan(self.session, self.vault, self.accounts[account], "online-comprehensive",
                                 id_number=_id_number(self.rng, self.used, china_day(at), age, age, (1,)), name=name,
                                 relationship=relationship, declaration=NO, now=at)
            for account, name, relationship, age in people
        ]
        self.joined = len(people)
        membership.advance_memberships(self.session, "online-comprehensive", self.now, vault=self.vault)

    def today(self, ids_by_plan: dict[str, list[int]]) -> int:
        """The demo accounts' own story, and one claim in each state of review."""
        member, juror = self.accounts["member"], self.accounts["juror"]
        own, child, spouse, _ = self.members
        jury.qualify_juror(self.session, self.vault, juror, "online-comprehensive", QUIZ_ANSWERS, now=self.now)
        recent = self.now - dt.timedelta(days=6)
        admitted = china_day(recent) - dt.timedelta(days=20)
        pool = ids_by_plan["online-comprehensive"]
        # One claim in each state, in review order.
        self._file(child.id, "C91.0", admitted, 25_000_000, recent)  # filed: waiting for first review
        investigating = self._file(self._member_of(pool, admitted), "C34.1", admitted, 18_000_000, recent)
        claims.first_review(self.session, self.reviewer, investigating.id, approve=True, note="材料齐全", now=recent)
        re_review = self._file(self._member_of(pool, admitted), "I21.0", admitted, 12_000_000, recent)
        claims.first_review(self.session, self.reviewer, re_review.id, approve=True, note="材料齐全", now=recent)
        claims.record_investigation(self.session, self.assessor, re_review.id, summary="住院经过与病历一致",
                                    findings="", now=recent)
        rejected = self._file(self._member_of(pool), "J18.9", admitted, 3_000_000, recent)  # R2: not covered
        claims.first_review(self.session, self.reviewer, rejected.id, approve=False, note="肺炎不在保障范围（R2）",
                            now=recent)
        disputed = self._file(own.id, "C50.9", admitted, 20_000_000, recent)
        claims.first_review(self.session, self.reviewer, disputed.id, approve=False, note="病理报告缺失", now=recent)
        claims.dispute(self.session, member, disputed.id, reason="病理报告已补交，请评审团复核", now=recent)
        to_jury = self._file(spouse.id, "C16.2", admitted, 16_000_000, recent)
        claims.first_review(self.session, self.reviewer, to_jury.id, approve=False, note="既往症存疑", now=recent)
        claims.dispute(self.session, member, to_jury.id, reason="确诊在等待期之后", now=recent)
        jury.open_case(self.session, to_jury.id, actor=ACTOR, now=self.now - dt.timedelta(hours=2))
        noticed = self._file(self._member_of(pool, admitted), "C22.0", admitted, 22_000_000, recent)
        self._approve(noticed, recent, "经公估核实，肝癌诊断属实")
        # 关闭: an ICU case approved, then fully paid by another layer before the period; it closes unpaid.
        icu = self._file(self._member_of(ids_by_plan["online-icu"], admitted), "J96.0", admitted, 9_000_000, recent)
        self._approve(icu, recent, "重症监护记录属实")
        record_coverage(self.session, icu.episode_id, "charity", "示例慈善救助项目",
                        coverage_of(self.session, icu.episode_id).residual, {"demo": True}, ACTOR)
        self.session.execute(update(Claim).where(Claim.id == icu.id).values(
            notice_until=china_day(self.now) - dt.timedelta(days=1)))
        cutoff = dt.datetime.combine(china_day(self.now), dt.time(0, 0), CHINA_TIME)
        period = apportionment.open_period(self.session, "online-icu", cutoff_at=cutoff,
                                           charge_on=china_day(self.now) + dt.timedelta(days=7), actor=ACTOR)
        apportionment.apportion(self.session, period.id, actor=ACTOR)
        return 1
