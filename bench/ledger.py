"""Benchmark the ledger's write path, sequencing and full verification on PostgreSQL.

    uv run python bench/ledger.py [--writers W] [--seconds D | --entries N] [--verify-leaves K] [--bulk-lines B]

Creates a throw-away database `gongji_bench_<random>` on the server at
GONGJI_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
migrates it, and starts W writer processes (each with its own engine) that
post balanced donation entries through `post_entry`, each timing its own
transactions from begin to commit (acknowledged = committed), while a
sequencer process runs `sequence` in a loop so the log keeps up. Afterwards it
sequences the rest, optionally seeds K more entries set-based (COPY; their
leaf hashes computed with the product's `entry_content`) to give verification
a bigger log, posts one bulk entry of B lines if `post_bulk_entry` exists,
then times `verify_log` over the whole log. Last come two baselines with the
same number of raw psycopg clients (a plain single-row INSERT, and the
ledger's own entry statement in autocommit), so the figure can be read against
what this machine does without our Python. The last line is the figure:

    ledger writers=W entries=N per_s=R p99_ms=P bulk_lines=B bulk_s=S verify_s=V
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import re
import secrets
import sys
import time
from contextlib import contextmanager

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, func, make_url, select, text

from gongji.core.db import make_engine, migrate, normalise_url, session_factory, transaction
from gongji.ledger import merkle
from gongji.ledger import service as ledger
from gongji.ledger.models import Account, JournalEntry, LedgerPending
from gongji.ledger.rules import entry_content
from gongji.ledger.signing import LedgerSigner

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CAMPAIGNS = 100
MEMBERS = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the writers post (unless --entries)")
    parser.add_argument("--entries", type=int, default=None, help="post this many entries in all instead")
    parser.add_argument("--verify-leaves", type=int, default=0, help="seed this many more entries before verifying")
    parser.add_argument("--bulk-lines", type=int, default=10_000_000)
    parser.add_argument("--baseline-seconds", type=float, default=4.0,
                        help="how long each raw-driver baseline runs (0: skip them)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()

    signer = LedgerSigner("gongji.bench/ledger", Ed25519PrivateKey.generate())
    with bench_database(keep=args.keep) as url:
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            ledger.open_account(session, "bank", "托管账户 custody bank", "asset")
            for number in range(CAMPAIGNS):
                ledger.open_account(session, f"campaign:{number}", f"筹款项目{number}", "liability")

        count, per_s, p99_ms, lag = write_burst(url, signer, args.writers, args.seconds, args.entries)
        started = time.perf_counter()
        rest = sequence_all(sessions, signer)
        print(f"sequencer lag at the end: {lag:,} pending; sequenced the rest ({rest:,}) in "
              f"{time.perf_counter() - started:.3f} s")

        if args.verify_leaves:
            seed_entries(engine, args.verify_leaves)
            started = time.perf_counter()
            seeded = sequence_all(sessions, signer)
            seconds = time.perf_counter() - started
            print(f"sequenced {seeded:,} seeded leaves in {seconds:.3f} s ({seeded / seconds:,.0f} leaves/s)")

        bulk_lines, bulk_s = bulk_entry(sessions, signer, args.bulk_lines)

        with sessions() as session:
            leaves = ledger.tree_size(session)
            started = time.perf_counter()
            report = ledger.verify_log(session, signer.verifier_key)
            verify_s = time.perf_counter() - started
        rate = report.leaves_checked / verify_s
        print(f"verify_log: {report.leaves_checked:,} of {leaves:,} leaves in {verify_s:.3f} s ({rate:,.0f} leaves/s)")
        if bulk_lines:
            print(f"  (that includes recomputing the bulk entry's subtree of {bulk_lines + 1:,} line leaves)")
        else:
            print(f"  (10,000,000 such leaves at this rate: {10_000_000 / rate:,.0f} s)")
        if not report.ok or report.leaves_checked != leaves:
            print(f"FAILED: verification: {report}", file=sys.stderr)
            return 1
        if args.baseline_seconds:  # last: its raw entries are not meant to verify
            baselines(url, args.writers, args.baseline_seconds, per_s)
        engine.dispose()
        if args.keep:
            print(f"kept {url}")
    print(
        f"ledger writers={args.writers} entries={count} per_s={per_s:.0f} p99_ms={p99_ms:.1f} "
        f"bulk_lines={bulk_lines} bulk_s={bulk_s:.3f} verify_s={verify_s:.3f}"
    )
    return 0


@contextmanager
def bench_database(*, keep: bool):
    """A new database for this run, dropped afterwards unless kept."""
    admin = create_engine(
        normalise_url(os.environ.get("GONGJI_TEST_PG_URL", DEFAULT_PG_URL)), isolation_level="AUTOCOMMIT"
    )
    name = f"gongji_bench_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = :name AND pid <> pg_backend_pid()"),
                    {"name": name},
                )
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


# --- writers and the sequencer ---------------------------------------------------------------


def write_burst(url: str, signer: LedgerSigner, writers: int, seconds: float, entries: int | None):
    """Run the writers beside a sequencer; (acknowledged entries, per second, p99 ms, pending left)."""
    context = mp.get_context("spawn")
    start = context.Barrier(writers + 1)
    stop = context.Event()
    results = context.Queue()
    quotas = [None] * writers if entries is None else [entries // writers + (k < entries % writers)
                                                       for k in range(writers)]
    sequencer = context.Process(target=sequencer_loop, args=(url, signer.key.private_bytes_raw(), stop))
    sequencer.start()
    processes = [
        context.Process(target=writer, args=(url, k, seconds, quotas[k], start, results)) for k in range(writers)
    ]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    latencies: list[float] = []
    client_cpu = server_cpu = 0.0
    for _ in processes:
        kind, payload = results.get()
        if kind == "error":
            raise RuntimeError(f"a writer failed: {payload}")
        latencies.extend(payload[0])
        client_cpu += payload[1][0]
        server_cpu += payload[1][1]
    elapsed = time.perf_counter() - began
    for process in processes:
        process.join()
    stop.set()
    sequencer.join()
    with session_factory(make_engine(url))() as session:
        lag = session.scalar(select(func.count()).select_from(LedgerPending))
        posted = session.scalar(select(func.count()).select_from(JournalEntry))
    if posted != len(latencies):
        raise RuntimeError(f"{len(latencies)} acknowledged but {posted} entries in the journal")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0.0
    rate = len(latencies) / elapsed
    print(f"{writers} writers: {len(latencies):,} entries in {elapsed:.3f} s = {rate:,.0f}/s; "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1000 if latencies else 0:.1f} ms")
    if latencies:
        client_ms, server_ms = client_cpu * 1000 / len(latencies), server_cpu * 1000 / len(latencies)
        print(f"CPU per entry: {client_ms:.3f} ms in the writers + {server_ms:.3f} ms in their PostgreSQL backends"
              f" (so {2000 / (client_ms + server_ms):,.0f}/s on 2 idle cores, if nothing else ran)")
    print(f"machine load average: {os.getloadavg()[0]:.1f} (other processes compete for the same 2 cores)")
    return len(latencies), rate, p99, lag


def writer(url: str, number: int, seconds: float, quota: int | None, start, results) -> None:
    """One writer process: post donations one transaction each and time each from begin to commit."""
    try:
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions() as session:  # connect before the clock starts
            backend = session.scalar(text("SELECT pg_backend_pid()"))
        latencies: list[float] = []
        start.wait()
        cpu = time.process_time(), backend_cpu(backend)
        deadline = time.perf_counter() + seconds
        k = 0
        while (quota is None and time.perf_counter() < deadline) or (quota is not None and k < quota):
            fen = 100 + (k * 37 + number) % 100_000
            campaign = f"campaign:{(number * 7 + k) % CAMPAIGNS}"
            began = time.perf_counter()
            with transaction(sessions) as session:
                ledger.post_entry(session, "donation", "捐款 donation", campaign, [("bank", fen), (campaign, -fen)])
            latencies.append(time.perf_counter() - began)
            k += 1
        cpu = time.process_time() - cpu[0], backend_cpu(backend) - cpu[1]
        engine.dispose()
        results.put(("ok", (latencies, cpu)))
    except BaseException as error:  # reported to the parent, which fails the run
        results.put(("error", repr(error)))
        raise


def baselines(url: str, writers: int, seconds: float, ledger_rate: float) -> None:
    """What this machine does without our Python: the same writer count sending raw statements, one round trip each.

    First a plain single-row INSERT (the database's ceiling), then the ledger's own entry statement in
    autocommit (its SQL without the session, the transaction's BEGIN/COMMIT round trips or the pool's ping).
    """
    with create_engine(normalise_url(url)).begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS bench_plain (id bigserial PRIMARY KEY, amount bigint)"))
    statement = re.sub(r"(?<!:):(\w+)", r"%(\1)s", str(ledger._POST_ENTRY_POSTGRES))
    for label, kind in (("plain single-row INSERT", "plain"), ("the ledger's entry statement, raw", "entry")):
        rate, p99 = raw_burst(url, writers, seconds, kind, statement)
        print(f"baseline: {label}, {writers} raw psycopg clients, autocommit: {rate:,.0f}/s, p99 {p99:.1f} ms"
              f" (the ledger's path reaches {ledger_rate / rate:.2f} of it)")


def raw_burst(url: str, writers: int, seconds: float, kind: str, statement: str) -> tuple[float, float]:
    context = mp.get_context("spawn")
    start = context.Barrier(writers + 1)
    results = context.Queue()
    processes = [context.Process(target=raw_writer, args=(url, k, seconds, kind, statement, start, results))
                 for k in range(writers)]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    latencies = sorted(sum((results.get() for _ in processes), []))
    elapsed = time.perf_counter() - began
    for process in processes:
        process.join()
    return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99)] * 1000


def raw_writer(url: str, number: int, seconds: float, kind: str, statement: str, start, results) -> None:
    driver_url = make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(driver_url, autocommit=True, prepare_threshold=0) as connection:
        latencies: list[float] = []
        start.wait()
        deadline = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            fen = 100 + (k * 37 + number) % 100_000
            if kind == "plain":
                connection.execute("INSERT INTO bench_plain (amount) VALUES (%s)", (fen,))
            else:
                campaign, uid = f"campaign:{(number * 7 + k) % CAMPAIGNS}", secrets.token_hex(16)
                connection.execute(statement, {
                    "uid": uid, "posted_at": dt.datetime.now(dt.UTC), "posted_by": "bench", "kind": "donation",
                    "memo": "捐款 baseline", "reference": campaign, "line_count": 2, "lines_root": None,
                    "leaf_hash": merkle.leaf_hash(uid.encode()).hex(), "codes": ["bank", campaign],
                    "amounts": [fen, -fen],
                }).fetchone()
            latencies.append(time.perf_counter() - began)
            k += 1
    results.put(latencies)


def backend_cpu(pid: int) -> float:
    """CPU seconds used so far by a local PostgreSQL backend (0 if the server is not on this machine)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequencer_loop(url: str, seed: bytes, stop) -> None:
    """The background sequencer as the server runs it, but with no pause while there is work."""
    signer = LedgerSigner("gongji.bench/ledger", Ed25519PrivateKey.from_private_bytes(seed))
    engine = make_engine(url)
    sessions = session_factory(engine)
    rounds = sequenced = 0
    while not stop.is_set():
        with transaction(sessions) as session:
            done = ledger.sequence(session, signer).sequenced
        rounds += 1
        sequenced += done
        if not done:
            time.sleep(0.05)
    engine.dispose()
    print(f"sequencer: {sequenced:,} leaves in {rounds:,} rounds during the burst")


def sequence_all(sessions, signer: LedgerSigner) -> int:
    total = 0
    while True:
        with transaction(sessions) as session:
            done = ledger.sequence(session, signer).sequenced
        if not done:
            return total
        total += done


# --- a bigger log for verification, and the bulk entry ---------------------------------------


def seed_entries(engine, count: int) -> None:
    """Append `count` donation entries with COPY, leaf hashes from the product's own `entry_content`."""
    started = time.perf_counter()
    with engine.connect() as connection:
        accounts = dict(connection.execute(select(Account.code, Account.id)).all())
        first = connection.execute(select(func.coalesce(func.max(JournalEntry.seq), 0))).scalar_one() + 1
    posted_at = dt.datetime.now(dt.UTC)
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        rows = []
        for k in range(count):
            seq = first + k
            fen = 100 + k % 100_000
            campaign = f"campaign:{k % CAMPAIGNS}"
            uid = secrets.token_hex(16)
            at = posted_at + dt.timedelta(microseconds=k)
            content = entry_content(uid, at, "donation", "捐款 seeded", campaign, [("bank", fen), (campaign, -fen)])
            rows.append((seq, uid, at, fen, campaign, merkle.leaf_hash(content).hex()))
        hashed = time.perf_counter()
        with driver.cursor() as cursor:
            with cursor.copy("COPY journal_entries (seq, uid, posted_at, posted_by, kind, memo, reference,"
                             " line_count, leaf_hash) FROM STDIN") as copy:
                for seq, uid, at, _fen, campaign, leaf in rows:
                    copy.write_row((seq, uid, at, "bench", "donation", "捐款 seeded", campaign, 2, leaf))
            with cursor.copy("COPY postings (entry_seq, line_no, account_id, amount) FROM STDIN") as copy:
                bank = accounts["bank"]
                for seq, _uid, _at, fen, campaign, _leaf in rows:
                    copy.write_row((seq, 0, bank, fen))
                    copy.write_row((seq, 1, accounts[campaign], -fen))
            with cursor.copy("COPY ledger_pending (source, source_id, leaf_hash) FROM STDIN") as copy:
                for seq, _uid, _at, _fen, _campaign, leaf in rows:
                    copy.write_row(("entry", seq, leaf))
            cursor.execute("SELECT setval(pg_get_serial_sequence('journal_entries', 'seq'), %s)",
                           (first + count - 1,))
        driver.commit()
    finally:
        raw.close()
    print(f"seeded {count:,} entries: hashed in {hashed - started:.3f} s, copied in "
          f"{time.perf_counter() - hashed:.3f} s")


def bulk_entry(sessions, signer: LedgerSigner, lines: int) -> tuple[int, float]:
    """One bulk entry of `lines` member charges through `post_bulk_entry` (if the service has it), timed to commit."""
    post_bulk_entry = getattr(ledger, "post_bulk_entry", None)
    if post_bulk_entry is None:
        print("bulk: post_bulk_entry does not exist yet, so bulk_lines=0 bulk_s=0")
        return 0, 0.0
    if lines <= 0:
        print("bulk: skipped (--bulk-lines 0)")
        return 0, 0.0
    with transaction(sessions) as session:
        ledger.open_account(session, "pool", "互助资金池 mutual-aid pool", "liability")
        for number in range(MEMBERS):
            ledger.open_account(session, f"member:{number}", f"会员{number}应收分摊", "asset")
    charges = ((f"member:{k % MEMBERS}", 100 + k % 50) for k in range(lines))
    started = time.perf_counter()
    with transaction(sessions) as session:
        entry = post_bulk_entry(session, "apportionment", "分摊 bench", "plan:1", charges, counter_account="pool")
    seconds = time.perf_counter() - started
    with sessions() as session:
        stored = session.get(JournalEntry, entry.seq).line_count
    print(f"bulk: one entry of {lines:,} lines (+1 balancing, {stored:,} stored) in {seconds:.3f} s "
          f"({lines / seconds:,.0f} lines/s)")
    sequence_all(sessions, signer)
    return lines, seconds


if __name__ == "__main__":
    sys.exit(main())
