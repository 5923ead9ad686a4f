"""The transparency pages and their API over HTTP, on SQLite and PostgreSQL: public accounts only, no login."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from gongji.api.app import create_app
from gongji.core.settings import Settings
from gongji.ledger import merkle
from gongji.ledger.checkpoint import open_note
from gongji.ledger.models import Account, JournalEntry
from gongji.ledger.service import open_account, post_bulk_entry, post_entry, sequence, set_account_public
from gongji.rules.schemas import CHINA_TIME
from gongji.web.i18n import gettext_for

MEMBERS = 600


@pytest.fixture
def app(db_url, tmp_path):
    app = create_app(Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None))
    with app.state.gongji.transaction() as session:
        open_account(session, "bank", "托管账户", "asset")
        open_account(session, "campaign:1", "张*明的筹款项目", "liability", public=True)
        open_account(session, "plan:1/pool", "互助计划1 资金池", "liability")
        set_account_public(session, "plan:1/pool", True, actor="test")
        session.execute(
            insert(Account), [{"code": f"member:{i}", "name": "会员", "kind": "asset"} for i in range(MEMBERS)]
        )
    return app


@pytest.fixture
def client(app) -> TestClient:
    return TestClient(app)


def donate(app, fen: int, memo: str = "捐款") -> int:
    with app.state.gongji.transaction() as session:
        return post_entry(session, "donation", memo, "campaign:1", [("bank", fen), ("campaign:1", -fen)]).seq


def refund(app, fen: int, reason: str) -> int:
    with app.state.gongji.transaction() as session:
        return post_entry(session, "refund", reason, "campaign:1", [("bank", -fen), ("campaign:1", fen)]).seq


def sequenced(app) -> None:
    with app.state.gongji.transaction() as session:
        sequence(session, app.state.gongji.signer)


def apportion(app) -> int:
    with app.state.gongji.transaction() as session:
        lines = ((f"member:{i}", 200 + i % 3) for i in range(MEMBERS))
        return post_bulk_entry(session, "apportionment", "第1期分摊", "plan:1", lines,
                               counter_account="plan:1/pool", actor="test").seq


def test_only_public_accounts_are_listed_with_their_balances_on_the_normal_side(app, client):
    donate(app, 10_000)
    donate(app, 2_550)
    apportion(app)
    listed = client.get("/api/ledger/accounts").json()
    pool = sum(200 + i % 3 for i in range(MEMBERS))
    assert listed == [
        {"code": "campaign:1", "name": "张*明的筹款项目", "kind": "liability",
         "balance": {"fen": 12_550, "yuan": "125.50"}},
        {"code": "plan:1/pool", "name": "互助计划1 资金池", "kind": "liability",
         "balance": {"fen": pool, "yuan": f"{pool // 100:,}.{pool % 100:02d}"}},
    ]
    assert client.get("/api/ledger/accounts/plan:1/pool").json()["balance"]["fen"] == pool
    for hidden in ("bank", "member:3", "nobody"):
        answer = client.get(f"/api/ledger/accounts/{hidden}/entries")
        assert answer.status_code == 404 and answer.json()["field"] == "code"
        assert client.get(f"/api/ledger/accounts/{hidden}").status_code == 404
        assert client.get(f"/api/ledger/accounts/{hidden}/entries.csv").status_code == 404
        assert client.get(f"/ledger/accounts/{hidden}").status_code == 404


def test_an_accounts_entries_come_newest_first_with_balances_and_pages(app, client):
    seqs = [donate(app, fen) for fen in (1_000, 2_000, 3_000, 4_000)]
    back = refund(app, 1_500, "重复捐款，原路退回")
    sequenced(app)
    first = client.get("/api/ledger/accounts/campaign:1/entries", params={"limit": 3}).json()
    assert [e["seq"] for e in first["entries"]] == [back, seqs[3], seqs[2]]
    assert [e["change"]["fen"] for e in first["entries"]] == [-1_500, 4_000, 3_000]
    assert [e["balance"]["fen"] for e in first["entries"]] == [8_500, 10_000, 6_000]
    assert first["entries"][0]["refund_reason"] == "重复捐款，原路退回" and first["entries"][1]["refund_reason"] is None
    assert all(e["leaf_index"] is not None for e in first["entries"])
    rest = client.get("/api/ledger/accounts/campaign:1/entries",
                      params={"limit": 3, "before": first["next_before"]}).json()
    assert [e["seq"] for e in rest["entries"]] == seqs[1::-1] and rest["next_before"] is None
    assert [e["balance"]["fen"] for e in rest["entries"]] == [3_000, 1_000]
    assert client.get("/api/ledger/accounts/campaign:1/entries", params={"limit": 0}).status_code == 422


def test_csv_export_lists_every_entry_oldest_first_with_refund_reasons(app, client):
    donate(app, 5_000, memo="=HYPERLINK(\"x\") 捐款")
    refund(app, 1_200, "患者已出院，余款退回")
    answer = client.get("/api/ledger/accounts/campaign:1/entries.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="campaign-1-entries.csv"'
    assert answer.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [(r["kind"], r["change_fen"], r["change_yuan"], r["balance_fen"]) for r in rows] == [
        ("donation", "5000", "50.00", "5000"), ("refund", "-1200", "-12.00", "3800"),
    ]
    assert rows[1]["refund_reason"] == rows[1]["memo"] == "患者已出院，余款退回" and rows[0]["refund_reason"] == ""
    assert rows[0]["memo"] == "'=HYPERLINK(\"x\") 捐款"  # never a formula in a spreadsheet
    assert rows[0]["leaf_index"] == ""  # not sequenced yet


def test_csv_export_streams_every_entry_of_a_long_history(app, client):
    with app.state.gongji.transaction() as session:
        for fen in range(1, 1_004):
            post_entry(session, "donation", "捐款", None, [("bank", fen), ("campaign:1", -fen)])
    rows = list(csv.reader(io.StringIO(client.get("/api/ledger/accounts/campaign:1/entries.csv").text)))
    assert len(rows) == 1 + 1_003 and rows[0][0] == "\ufeffentry_seq"
    assert [int(row[0]) for row in rows[1:]] == list(range(1, 1_004))
    assert rows[-1][6] == str(sum(range(1, 1_004)))


def test_days_follow_china_time_and_end_with_the_balance(app, client):
    seq = donate(app, 8_000)
    refund(app, 3_000, "退回")
    with app.state.gongji.transaction() as session:
        posted = session.get(JournalEntry, seq).posted_at
    days = client.get("/api/ledger/accounts/campaign:1/days").json()
    assert days == [{
        "day": posted.astimezone(CHINA_TIME).date().isoformat(), "money_in": {"fen": 8_000, "yuan": "80.00"},
        "money_out": {"fen": 3_000, "yuan": "30.00"}, "balance": {"fen": 5_000, "yuan": "50.00"}, "entries": 2,
    }]


def test_a_members_charge_has_a_receipt_that_checks_out_against_the_public_key(app, client):
    donate(app, 100)
    seq = apportion(app)
    assert client.get(f"/api/ledger/entries/{seq}/lines/7/receipt").status_code == 404  # not sequenced yet
    sequenced(app)
    key = client.get("/api/ledger/public-key").json()["verifier_key"]
    for line_no in (0, 7, 256, MEMBERS):
        receipt = client.get(f"/api/ledger/entries/{seq}/lines/{line_no}/receipt").json()
        line, entry = receipt["line"], receipt["entry"]
        merkle.verify_inclusion(
            merkle.leaf_hash(line["content"].encode()), line_no, line["line_count"],
            [bytes.fromhex(p) for p in line["proof"]], bytes.fromhex(line["lines_root"]),
        )
        assert json.loads(entry["content"])["lines_root"] == line["lines_root"]
        checkpoint = open_note(entry["checkpoint"], key)
        merkle.verify_inclusion(
            merkle.leaf_hash(entry["content"].encode()), entry["leaf_index"], checkpoint.size,
            [bytes.fromhex(p) for p in entry["proof"]], checkpoint.root,
        )
    assert json.loads(line["content"])["account"] == "plan:1/pool"
    # The entry's part is an ordinary receipt: the same as /api/ledger/receipts/{leaf_index} gives.
    assert client.get(f"/api/ledger/receipts/{entry['leaf_index']}").json() == entry
    assert client.get(f"/api/ledger/entries/{seq}/lines/{MEMBERS + 1}/receipt").status_code == 404
    assert client.get("/api/ledger/entries/1/lines/0/receipt").status_code == 404  # an ordinary entry
    assert client.get(f"/api/ledger/entries/{seq}/lines/-1/receipt").status_code == 422
    pool = client.get("/api/ledger/accounts/plan:1/pool/entries").json()["entries"]
    assert [(e["seq"], e["kind"], e["change"]["fen"]) for e in pool] == [
        (seq, "apportionment", sum(200 + i % 3 for i in range(MEMBERS)))
    ]


def test_pages_are_chinese_first_and_english_on_request(app, client):
    donate(app, 6_600)
    refund(app, 600, "重复捐款")
    sequenced(app)
    zh = gettext_for("zh")
    listing = client.get("/ledger/accounts")
    assert listing.status_code == 200 and f"<h1>{zh('Public accounts')}</h1>" in listing.text
    assert 'href="/ledger/accounts/campaign%3A1"' in listing.text and "¥60.00" in listing.text
    assert "托管账户" not in listing.text and "bank" not in listing.text

    page = client.get("/ledger/accounts/campaign:1")
    assert page.status_code == 200 and "张*明的筹款项目" in page.text
    chart = json.loads(page.text.split('id="account-chart-data">')[1].split("</script>")[0])
    assert chart["money_in"] == [66.0] and chart["money_out"] == [-6.0] and chart["balance"] == [60.0]
    assert chart["labels"]["balance"] == zh("Balance")
    assert 'href="/api/ledger/accounts/campaign:1/entries.csv"' in page.text
    assert "重复捐款" in page.text and zh("Reason") in page.text and "/ledger/verify?leaf=1" in page.text
    assert 'href="/ledger/accounts/campaign:1?lang=en"' in page.text

    english = client.get("/ledger/accounts/campaign:1", params={"lang": "en"})
    assert "Day by day" in english.text and "Download all entries (CSV)" in english.text
    assert english.cookies.get("gongji_lang") == "en"
    assert "Checkpoints" in client.get("/ledger/checkpoints").text  # the choice is remembered

    missing = client.get("/ledger/accounts/bank", params={"lang": "zh"})
    assert missing.status_code == 404 and zh("There is no public account with this code.") in missing.text


def test_the_checkpoint_history_page_lists_every_checkpoint_newest_first(app, client):
    donate(app, 100)
    sequenced(app)
    donate(app, 200)
    donate(app, 300)
    sequenced(app)
    page = client.get("/ledger/checkpoints")
    assert page.status_code == 200
    assert page.text.index('data-size="3"') < page.text.index('data-size="1"')
    assert app.state.gongji.signer.verifier_key in page.text
    notes = [c["note"] for c in client.get("/api/ledger/checkpoints").json()]
    assert all(note.split("\n")[2] in page.text for note in notes)
    older = client.get("/ledger/checkpoints", params={"below": 3})
    assert 'data-size="1"' in older.text and 'data-size="3"' not in older.text
