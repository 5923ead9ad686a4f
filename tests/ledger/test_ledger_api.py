"""The public ledger routes through HTTP: receipts check out against the published key, offline."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

import gongji.api.app as app_module
from gongji.api.app import create_app
from gongji.core.settings import Settings
from gongji.ledger import merkle
from gongji.ledger.checkpoint import open_note
from gongji.ledger.service import open_account, post_entry, sequence


@pytest.fixture
def app(db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "SEQUENCE_EVERY_SECONDS", 0.05)
    return create_app(Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None))


def post_donations(app, amounts) -> list[int]:
    with app.state.gongji.transaction() as session:
        if not session.execute(text("SELECT 1 FROM accounts WHERE code = 'bank'")).first():
            open_account(session, "bank", "托管账户", "asset")
            open_account(session, "campaign:1", "项目资金", "liability")
        return [
            post_entry(session, "donation", "捐款", "campaign:1", [("bank", fen), ("campaign:1", -fen)]).seq
            for fen in amounts
        ]


def test_receipts_and_proofs_check_out_against_the_public_key(app):
    post_donations(app, [100, 250, 999])
    with app.state.gongji.transaction() as session:
        sequence(session, app.state.gongji.signer)
    post_donations(app, [5, 6])
    with app.state.gongji.transaction() as session:
        sequence(session, app.state.gongji.signer)
    client = TestClient(app)
    key = client.get("/api/ledger/public-key").json()["verifier_key"]
    receipt = client.get("/api/ledger/receipts/1").json()
    checkpoint = open_note(receipt["checkpoint"], key)
    assert checkpoint.size == 5
    leaf = merkle.leaf_hash(receipt["content"].encode("utf-8"))
    merkle.verify_inclusion(leaf, 1, 5, [bytes.fromhex(p) for p in receipt["proof"]], checkpoint.root)
    assert '"memo":"捐款"' in receipt["content"] and "bank" in receipt["content"]

    assert client.get("/api/ledger/checkpoint").text == receipt["checkpoint"]
    history = client.get("/api/ledger/checkpoints").json()
    assert [c["size"] for c in history] == [5, 3]
    old = open_note(history[1]["note"], key)
    consistency = client.get("/api/ledger/proofs/consistency", params={"old": 3, "new": 5}).json()
    merkle.verify_consistency(3, 5, old.root, checkpoint.root, [bytes.fromhex(p) for p in consistency["proof"]])
    inclusion = client.get("/api/ledger/proofs/inclusion", params={"leaf_index": 4, "size": 5}).json()
    assert len(inclusion["proof"]) == 1
    assert client.get("/api/ledger/leaves/4").json()["source"] == "entry"
    assert client.get("/api/ledger/leaves/99").status_code == 404
    assert client.get("/api/ledger/proofs/inclusion", params={"leaf_index": 0, "size": 4}).status_code == 404


def test_the_server_sequences_in_the_background(app):
    with TestClient(app) as client:
        post_donations(app, [100, 200])
        deadline = time.monotonic() + 10
        while client.get("/api/ledger/checkpoint").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/api/ledger/checkpoint").text.splitlines()[1] == "2"
