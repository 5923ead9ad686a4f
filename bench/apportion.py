"""Benchmark apportionment on PostgreSQL: N protected members, a few noticed claims, one `apportion()`.

    uv run python bench/apportion.py --members N [--keep]

Creates a throw-away database `gongji_bench_<random>` at GONGJI_TEST_PG_URL
(see bench/ledger.py), migrates it, seeds N persons, memberships and member
ledger accounts set-based (INSERT … SELECT generate_series), then times
`apportion()` — the charges' INSERT … SELECT and the period's bulk ledger
entry — and checks the totals. The last line is the figure:

    apportion members=N seconds=S members_per_s=R peak_rss_mb=M exact=1
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).parent))
from ledger import bench_database  # noqa: E402  (the same throw-away database)

from gongji.core.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from gongji.ledger.models import LedgerBulkLine  # noqa: E402
from gongji.mutual_aid import apportionment  # noqa: E402
from gongji.mutual_aid.accounts import ensure_plan_accounts  # noqa: E402
from gongji.mutual_aid.models import Charge, Period  # noqa: E402
from gongji.mutual_aid.plans import sync_plans  # noqa: E402

PLAN = "online-icu"  # largest remainder, no caps: every member charged
CUTOFF = dt.datetime(2024, 3, 20, 16, 0, tzinfo=dt.UTC)


def seed(engine, members: int) -> None:
    statements = [
        f"""INSERT INTO persons (person_key, id_number_enc, name_enc, masked_id, masked_name, birth_year, sex, scheme,
                assistance_category, inclusive_enrolled, region, created_at)
            SELECT 'bench-' || g, '-', '-', '-', '-', 1960 + g % 40, 'M', 'resident', 'none', false, '330100', now()
            FROM generate_series(1, {members}) g""",
        f"""INSERT INTO ma_memberships (id, plan_code, person_id, tier, shares, status, joined_at, protected_from,
                status_changed_at, declaration, account_code)
            SELECT g, '{PLAN}', g, 'standard', 1, 'protected', '2023-06-01', '2023-07-01', '2023-07-01', '{{}}',
                'ma:m:' || g
            FROM generate_series(1, {members}) g""",
        f"""INSERT INTO accounts (code, name, kind, created_at, public)
            SELECT 'ma:m:' || g, '会员应收分摊', 'asset', now(), false FROM generate_series(1, {members}) g""",
        "SELECT setval(pg_get_serial_sequence('ma_memberships', 'id'), (SELECT max(id) FROM ma_memberships))",
        "ANALYZE",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()
    with bench_database(keep=args.keep) as url:
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            sync_plans(session)
            ensure_plan_accounts(session, PLAN, "ICU")
        started = time.perf_counter()
        seed(engine, args.members)
        with engine.begin() as connection:
            connection.execute(text(f"""
                INSERT INTO episodes (person_id, admission_date, discharge_date, hospital_level, icd10, class_a,
                    class_b, out_of_catalogue, created_at)
                SELECT g, '2024-01-05', '2024-01-20', 3, 'J96', 5000000, 0, 0, now() FROM generate_series(1, 5) g;
                INSERT INTO ma_claims (plan_code, plan_version, membership_id, episode_id, disease_group, status,
                    amount_assessed, amount_approved, reasons, filed_at, filed_by, notice_until)
                SELECT '{PLAN}', 1, g, g, 'icu', 'noticed', 10000000 + g * 7, 10000000 + g * 7, '[]', now(), 'bench',
                    '2024-03-10'
                FROM generate_series(1, 5) g"""))
        print(f"seeded {args.members:,} members in {time.perf_counter() - started:.1f} s", flush=True)

        with transaction(sessions) as session:
            period = apportionment.open_period(session, PLAN, cutoff_at=CUTOFF, charge_on=dt.date(2024, 3, 28),
                                               actor="bench")
        phases: dict[str, float] = {}
        started = time.perf_counter()

        def progress(phase: str, done: int, total: int) -> None:
            phases.setdefault(phase, time.perf_counter() - started)

        with transaction(sessions) as session:
            apportionment.apportion(session, period.id, actor="bench", progress=progress)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with sessions() as session:
            period = session.get(Period, period.id)
            charged = int(session.scalar(select(func.coalesce(func.sum(Charge.amount), 0))
                                         .where(Charge.period_id == period.id)))
            counter = session.scalar(select(LedgerBulkLine.amount).where(
                LedgerBulkLine.entry_seq == period.entry_seq, LedgerBulkLine.line_no == period.members))
        print(f"charges written after {phases.get('charges', 0):.1f} s; payouts {period.payouts:,} fen, fee "
              f"{period.fee:,}, amount {period.amount_to_collect:,}, charged {charged:,}, share {period.share}, "
              f"entry {period.entry_seq}")
        exact = charged == period.amount_to_collect + period.surplus_out == -(counter or 0) == period.charged
        engine.dispose()
        if args.keep:
            print(f"kept {url}")
    print(f"apportion members={args.members} seconds={seconds:.3f} members_per_s={args.members / seconds:.0f} "
          f"peak_rss_mb={peak:.0f} exact={int(exact)}")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
