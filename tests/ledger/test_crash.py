"""kill -9 while posting and while sequencing: every acknowledged entry ends up in the tree, and the tree verifies.

Real processes, really killed (SIGKILL), on SQLite and PostgreSQL. A child
posts donations in a loop and prints each entry's seq once its transaction
has committed — those are the acknowledged ones. Another child sequences
many pending leaves in small rounds. After both are killed mid-flight,
"restarting" is simply sequencing whatever is pending.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from gongji.core.db import transaction
from gongji.ledger.models import JournalEntry, LedgerLeaf, LedgerPending
from gongji.ledger.service import latest_checkpoint, open_account, post_entry, sequence, tree_size, verify_log
from gongji.ledger.signing import LedgerSigner

SIGNER = LedgerSigner("gongji.test/ledger", Ed25519PrivateKey.from_private_bytes(bytes(32)))
VERIFIER = SIGNER.verifier_key

CHILD = """
import sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gongji.core.db import make_engine, session_factory, transaction
from gongji.ledger.service import post_entry, sequence
from gongji.ledger.signing import LedgerSigner

mode, url = sys.argv[1], sys.argv[2]
sessions = session_factory(make_engine(url))
signer = LedgerSigner("gongji.test/ledger", Ed25519PrivateKey.from_private_bytes(bytes(32)))
print("ready", flush=True)
k = 0
while True:
    k += 1
    with transaction(sessions) as session:
        if mode == "post":
            seq = post_entry(session, "donation", "捐款", "campaign:1", [("bank", k), ("campaign:1", -k)]).seq
        else:
            seq = sequence(session, signer, batch=50).size
    print(seq, flush=True)  # only after the commit: acknowledged
"""


@pytest.fixture
def ledger(sessions):
    with transaction(sessions) as session:
        open_account(session, "bank", "托管账户", "asset")
        open_account(session, "campaign:1", "项目资金", "liability")
    return sessions


def start(mode: str, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def kill_after(child: subprocess.Popen, lines: int, timeout: float = 20) -> list[int]:
    """Read the child's acknowledgements, SIGKILL it after `lines` of them; every complete line it printed."""
    deadline = time.monotonic() + timeout
    assert child.stdout.readline() == "ready\n", child.stderr.read()
    acknowledged: list[int] = []
    while len(acknowledged) < lines:
        line = child.stdout.readline()
        assert line and time.monotonic() < deadline, f"the child stopped early: {child.stderr.read()}"
        acknowledged.append(int(line))
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    acknowledged.extend(int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n"))
    return acknowledged


def counts(ledger) -> tuple[int, int, int]:
    with ledger() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (JournalEntry, LedgerPending, LedgerLeaf)
        )


def test_kill_9_while_posting_and_while_sequencing_loses_no_acknowledged_entry(ledger, db_url):
    acknowledged = kill_after(start("post", db_url), 150)
    entries, pending, leaves = counts(ledger)
    # Committed means complete: an entry with its outbox row, or nothing (never half an entry).
    assert entries >= len(acknowledged) and (pending, leaves) == (entries, 0)

    with transaction(ledger) as session:  # plenty more to sequence
        for fen in range(1, 2_001):
            post_entry(session, "donation", "捐款", "campaign:1", [("bank", fen), ("campaign:1", -fen)])
    sizes = kill_after(start("sequence", db_url), 5)
    entries, pending, leaves = counts(ledger)
    assert sizes == sorted(sizes) and 0 < sizes[-1] <= leaves < entries
    assert pending + leaves == entries  # the killed round left its pending rows pending, nothing half-moved
    with ledger() as session:
        assert latest_checkpoint(session).size == leaves == tree_size(session)
        assert verify_log(session, VERIFIER).ok

    with transaction(ledger) as session:  # the restart: sequence whatever is pending
        post_entry(session, "donation", "重启后", "campaign:1", [("bank", 1), ("campaign:1", -1)])
    while True:
        with transaction(ledger) as session:
            if not sequence(session, SIGNER).sequenced:
                break
    with ledger() as session:
        size = tree_size(session)
        logged = dict(session.execute(
            select(LedgerLeaf.source_id, LedgerLeaf.leaf_index).where(LedgerLeaf.source == "entry")
        ).all())
        assert set(acknowledged) <= set(logged)
        assert len(logged) == size == entries + 1
        assert session.scalar(select(func.count()).select_from(LedgerPending)) == 0
        assert latest_checkpoint(session).size == size
        report = verify_log(session, VERIFIER)
    assert (report.ok, report.leaves_checked) == (True, size)
