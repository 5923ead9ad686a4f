"""The standalone verifier (tools/verify_receipt.py) accepts a genuine receipt and refuses any changed one.

It runs as a subprocess with the project's Python but with `gongji` shadowed by
a package that fails to import, so it is shown to check receipts with its own
code only (standard library and `cryptography`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from gongji.api.app import create_app
from gongji.core.settings import Settings
from gongji.ledger.checkpoint import open_note, parse_checkpoint, sign, verifier_key
from gongji.ledger.service import open_account, post_entry, sequence

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "verify_receipt.py"


@pytest.fixture
def app(db_url, tmp_path):
    return create_app(Settings(database_url=db_url, var_dir=tmp_path / "var", params_dir=None))


@pytest.fixture
def no_gongji(tmp_path) -> Path:
    """A directory whose `gongji` package refuses to import; put first on PYTHONPATH it hides the real one."""
    shadow = tmp_path / "shadow" / "gongji"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("the standalone verifier must not use gongji")\n')
    return shadow.parent


@pytest.fixture
def published(app) -> tuple[dict, str]:
    """A receipt for the second of five donations (¥2.50), and the log's verifier key, both from the API."""
    with app.state.gongji.transaction() as session:
        open_account(session, "bank", "托管账户", "asset")
        open_account(session, "campaign:1", "项目资金", "liability")
        for fen in (100, 250, 999, 5, 6):
            post_entry(session, "donation", "为王某筹集手术费", "campaign:1", [("bank", fen), ("campaign:1", -fen)])
    with app.state.gongji.transaction() as session:
        sequence(session, app.state.gongji.signer)
    client = TestClient(app)
    return client.get("/api/ledger/receipts/1").json(), client.get("/api/ledger/public-key").json()["verifier_key"]


def run_verifier(no_gongji: Path, tmp_path: Path, receipt: dict, key: str, *options: str):
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt, ensure_ascii=False), encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(no_gongji), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path), key, *options],
        capture_output=True, text=True, encoding="utf-8", env=environment, timeout=60, check=False,
    )


def test_a_genuine_receipt_is_valid_and_says_what_it_proves(published, no_gongji, tmp_path):
    receipt, key = published
    result = run_verifier(no_gongji, tmp_path, receipt, key)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.rstrip().splitlines()[-1].startswith("有效 valid")
    for shown in ("捐款 donation", "¥2.50", "借 debit  bank", "贷 credit campaign:1", "为王某筹集手术费",
                  "参考 Reference", "campaign:1", "北京时间 Beijing time", "叶子序号 Leaf index", "树大小 Tree size"):
        assert shown in out, shown
    assert [line.split()[-1] for line in out.splitlines() if "Leaf index" in line] == ["1"]
    assert [line.split()[-1] for line in out.splitlines() if "Tree size" in line] == ["5"]
    assert sum(line.startswith("  ✓") for line in out.splitlines()) == 5 and "✗" not in out

    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    assert run_verifier(no_gongji, tmp_path, receipt, str(key_file)).returncode == 0
    key_file.write_text(json.dumps({"origin": "x", "verifier_key": key}))
    assert run_verifier(no_gongji, tmp_path, receipt, str(key_file)).returncode == 0

    expected = run_verifier(no_gongji, tmp_path, receipt, key, "--amount", "2.50", "--reference", "campaign:1")
    assert expected.returncode == 0 and "金额相符" in expected.stdout and "参考相符" in expected.stdout
    other = run_verifier(no_gongji, tmp_path, receipt, key, "--amount", "25.00")
    assert other.returncode == 1 and "无效 invalid: 凭证中没有金额 ¥25.00" in other.stdout


def another_key(receipt: dict) -> dict:
    """The same checkpoint, signed under the log's name by a key that is not the log's."""
    body = receipt["checkpoint"].split("\n\n")[0] + "\n"
    forged = sign(parse_checkpoint(body), body.split("\n")[0], Ed25519PrivateKey.generate())
    return {**receipt, "checkpoint": forged}


def test_a_changed_receipt_is_refused_with_the_reason(published, no_gongji, tmp_path):
    receipt, key = published
    assert '["bank",250]' in receipt["content"]
    content = receipt["content"].replace('["bank",250]', '["bank",2500]').replace(
        '["campaign:1",-250]', '["campaign:1",-2500]'
    )
    first, *rest = receipt["proof"]
    changed_hash = ("0" if first[0] != "0" else "1") + first[1:]
    size = receipt["checkpoint"].split("\n")[1]
    altered_note = receipt["checkpoint"].replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1)
    cases = {
        "amount": ({**receipt, "content": content}, "根哈希与检查点不符"),
        "proof hash": ({**receipt, "proof": [changed_hash, *rest]}, "根哈希与检查点不符"),
        "another key": (another_key(receipt), "检查点没有该公钥的签名"),
        "leaf index": ({**receipt, "leaf_index": 2}, "根哈希与检查点不符"),
        "signed text": ({**receipt, "checkpoint": altered_note}, "签名无效"),
        "short proof": ({**receipt, "proof": rest}, "包含证明过短"),
        "index beyond the tree": ({**receipt, "leaf_index": 5}, "不在大小为 5 的树中"),
    }
    for name, (changed, reason) in cases.items():
        result = run_verifier(no_gongji, tmp_path, changed, key)
        assert result.returncode == 1, name
        verdict = result.stdout.rstrip().splitlines()[-1]
        assert verdict.startswith("无效 invalid: ") and reason in verdict, (name, result.stdout)
    refused = run_verifier(no_gongji, tmp_path, {**receipt, "content": content}, key).stdout
    assert "¥25.00" in refused  # what the changed receipt claims is shown, and refused

    other_key = verifier_key("gongji.local/ledger", Ed25519PrivateKey.generate().public_key())
    assert run_verifier(no_gongji, tmp_path, receipt, other_key).returncode == 1
    assert open_note(receipt["checkpoint"], key).size == 5  # the genuine note still opens with our own code


def test_malformed_input_is_refused_not_a_traceback(published, no_gongji, tmp_path):
    receipt, key = published
    for changed, reason in (
        ({**receipt, "proof": ["xyz"]}, "proof 应为"),
        ({**receipt, "leaf_index": -1}, "leaf_index 应为"),
        ({**receipt, "content": receipt["content"].replace(",", ", ", 1)}, "规范形式"),
    ):
        result = run_verifier(no_gongji, tmp_path, changed, key)
        assert result.returncode == 1 and reason in result.stdout and not result.stderr, result.stdout
    bad_key = run_verifier(no_gongji, tmp_path, receipt, key[:-4] + "AAA=")
    assert bad_key.returncode == 1 and "无效" in bad_key.stdout and not bad_key.stderr

