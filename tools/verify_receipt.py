#!/usr/bin/env python3
"""Check a receipt of the Gongji ledger (查验凭证) without trusting the Gongji server, or Gongji's code.

A receipt is what `GET /api/ledger/receipts/{i}` returns (save it as a file):

    {"leaf_index": 7,
     "content": "{\\"kind\\":\\"donation\\",…}",       the leaf's canonical JSON, exactly as logged
     "proof": ["3f…", …],                          RFC 9162 inclusion proof, hex, leaf to root
     "checkpoint": "gongji.local/ledger\\n12\\n…"}  the C2SP signed note it leads to

The log's verifier key is published at `GET /api/ledger/public-key`; keep your
own copy, from a source you trust, and pass it here — as the string
`name+keyid+base64` or as a file holding it (the string alone, or that JSON).

This script is independent on purpose: it uses only the standard library and
`cryptography` (for Ed25519), and re-implements each check from the public
specifications rather than importing the platform's package:

1. the content is canonical JSON (keys sorted, no spaces, UTF-8, no
   duplicate keys), so what is printed is exactly what was hashed;
2. leaf hash = SHA-256(0x00 || content)                 (RFC 9162 §2.1.1);
3. the inclusion proof leads from that leaf at `leaf_index` to a root
   (RFC 9162 §2.1.3.2; inner nodes hash as SHA-256(0x01 || left || right));
4. that root is the root in the checkpoint              (C2SP tlog-checkpoint);
5. the checkpoint carries a valid Ed25519 signature by the key
   (C2SP signed-note: key id = SHA-256(name || "\\n" || 0x01 || public key)[:4]).

It prints, in Chinese and English, what the receipt proves — kind, amount and
lines, memo, reference, time, leaf index, tree size — and each check, then
`有效 / valid` (exit status 0) or `无效 / invalid` with the reason (exit status 1).
`--amount` and `--reference` add a check that the receipt is the one you
expect (for example, the amount you donated).

    python tools/verify_receipt.py receipt.json 'gongji.local/ledger+1a2b3c4d+AV…'
    python tools/verify_receipt.py receipt.json key.txt --amount 100.00 --reference campaign:1
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = 0x01
EM_DASH = "\u2014 "
BEIJING = dt.timezone(dt.timedelta(hours=8))
#: A C2SP verifier key: a name without "+" or spaces, the 4-byte key id in hex, base64 of 0x01 || public key.
KEY_FORM = re.compile(r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*")
#: Journal-entry kinds in Chinese (the log stores the English words).
KIND_NAMES = {
    "donation": "捐款", "refund": "退款", "disbursement": "拨付", "apportionment": "分摊",
    "payout": "互助金给付", "grant": "救助金", "fee": "服务费", "contribution": "筹资", "adjustment": "调整",
    "payment": "支付",
}
LAYER_NAMES = {"basic": "基本医保", "critical_illness": "大病保险", "assistance": "医疗救助", "inclusive": "惠民保"}


class Refused(Exception):
    """The receipt does not prove what it claims; the message is Chinese / English."""


@dataclass
class Report:
    """Checks as they pass or fail, and what the content says."""

    facts: list[tuple[str, str]] = field(default_factory=list)
    steps: list[tuple[bool | None, str]] = field(default_factory=list)
    failure: str | None = None

    def passed(self, text: str) -> None:
        self.steps.append((True, text))

    def detail(self, text: str) -> None:
        self.steps.append((None, text))

    def failed(self, text: str) -> None:
        self.steps.append((False, text))
        self.failure = self.failure or text


# --- reading the inputs ----------------------------------------------------------------------


def read_receipt(path: str) -> dict:
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Refused(f"读不出凭证文件 cannot read the receipt file: {error}") from None
    try:
        receipt = json.loads(raw)
    except ValueError:
        raise Refused("凭证不是 JSON the receipt is not JSON") from None
    if not isinstance(receipt, dict):
        raise Refused("凭证应为 JSON 对象 the receipt must be a JSON object")
    index, content, proof, note = (receipt.get(k) for k in ("leaf_index", "content", "proof", "checkpoint"))
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise Refused("leaf_index 应为非负整数 leaf_index must be a whole number ≥ 0")
    if not isinstance(content, str) or not isinstance(note, str):
        raise Refused("content 与 checkpoint 应为文本 content and checkpoint must be text")
    if not isinstance(proof, list) or not all(isinstance(p, str) and re.fullmatch(r"[0-9a-f]{64}", p) for p in proof):
        raise Refused("proof 应为 64 位十六进制哈希的列表 proof must be a list of 64-digit hex hashes")
    return receipt


def read_key(text: str) -> str:
    """The verifier key itself, or the content of a file holding it (alone, or /api/ledger/public-key's JSON)."""
    if not KEY_FORM.fullmatch(text.strip()):
        try:
            text = Path(text).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise Refused(f"读不出公钥文件 cannot read the key file: {error}") from None
        if text.startswith("{"):
            try:
                text = json.loads(text)["verifier_key"]
            except (ValueError, KeyError, TypeError):
                raise Refused("公钥文件中没有 verifier_key the key file has no verifier_key") from None
    return text.strip()


def parse_verifier_key(text: str) -> tuple[str, bytes, bytes]:
    """`name+keyid+base64(0x01 || public key)` → (name, key id, raw Ed25519 public key)."""
    if not KEY_FORM.fullmatch(text):
        raise Refused("公钥格式应为 名称+密钥编号+base64 the key must be name+keyid+base64")
    name, hex_id, encoded = text.split("+", 2)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise Refused("公钥的 base64 部分有误 the key's base64 part is malformed") from None
    if len(raw) != 33 or raw[0] != ED25519:
        raise Refused("公钥不是 Ed25519 公钥 the key is not an Ed25519 key")
    key_id = hashlib.sha256(name.encode("utf-8") + b"\n" + raw).digest()[:4]
    if key_id.hex() != hex_id:
        raise Refused("公钥编号与公钥不符 the key id does not match the key")
    return name, key_id, raw[1:]


# --- the signed checkpoint (C2SP signed-note and tlog-checkpoint) ----------------------------


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The note's text (ending in a newline) and its signatures as (key name, key id || signature)."""
    if not note.endswith("\n") or "\n\n" not in note:
        raise Refused("检查点不是签名笔记（缺少空行或结尾换行） the checkpoint is not a signed note")
    cut = note.rindex("\n\n")
    text, signature_block = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in signature_block[:-1].split("\n") if signature_block else []:
        if not line.startswith(EM_DASH) or " " not in line[len(EM_DASH) :]:
            raise Refused("签名行格式有误 a signature line is malformed")
        name, _, encoded = line[len(EM_DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise Refused("签名不是 base64 a signature is not base64") from None
        if len(blob) < 5:
            raise Refused("签名过短 a signature is too short")
        signatures.append((name, blob))
    return text, signatures


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """origin, tree size and root hash; lines after the root are extensions and are ignored."""
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise Refused("检查点应有来源、树大小、根哈希三行 a checkpoint is origin, size and root, one a line")
    origin, size, root = lines[:3]
    if not origin or not re.fullmatch(r"0|[1-9][0-9]*", size):
        raise Refused("检查点的来源或树大小有误 the checkpoint's origin or size is malformed")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise Refused("检查点的根哈希不是 base64 the checkpoint's root is not base64") from None
    if len(root_hash) != 32:
        raise Refused("检查点的根哈希不是 32 字节 the checkpoint's root is not 32 bytes")
    return origin, int(size), root_hash


def check_signature(text: str, signatures: list[tuple[str, bytes]], key: tuple[str, bytes, bytes]) -> None:
    name, key_id, public = key
    for signer, blob in signatures:
        if signer == name and blob[:4] == key_id:
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode("utf-8"))
            except InvalidSignature:
                raise Refused("签名无效：检查点被改动过 the signature does not verify: the checkpoint was altered") from None
            return
    raise Refused(f"检查点没有该公钥的签名 the checkpoint carries no signature by this key ({name}+{key_id.hex()})")


# --- the Merkle tree (RFC 9162) --------------------------------------------------------------


def leaf_hash(content: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + content).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> tuple[bytes, list[str]]:
    """RFC 9162 §2.1.3.2: the root the proof leads to, and each step taken (for printing)."""
    if index >= size:
        raise Refused(f"叶子 {index} 不在大小为 {size} 的树中 leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    trace = []
    for p in proof:
        if sn == 0:
            raise Refused("包含证明过长 the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            trace.append(f"左 left  {p.hex()[:16]}… ‖ 当前 current → {r.hex()[:16]}…")
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
            trace.append(f"当前 current ‖ 右 right {p.hex()[:16]}… → {r.hex()[:16]}…")
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Refused("包含证明过短 the inclusion proof is too short for this leaf and tree size")
    return r, trace


# --- what the content says -------------------------------------------------------------------


def read_content(content: str) -> dict:
    """The leaf's JSON, refused unless canonical: then what is printed is exactly what was hashed."""

    def no_duplicates(pairs: list) -> dict:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise Refused("内容含重复的键 the content repeats a key")
        return dict(pairs)

    try:
        document = json.loads(content, object_pairs_hook=no_duplicates)
    except ValueError:
        raise Refused("内容不是 JSON the content is not JSON") from None
    if not isinstance(document, dict):
        raise Refused("内容应为 JSON 对象 the content must be a JSON object")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical != content:
        raise Refused("内容不是规范形式 the content is not in canonical form (sorted keys, no spaces)")
    return document


def yuan(fen: object) -> str:
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise Refused(f"金额应为整数（分） an amount must be a whole number of fen: {fen!r}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def when(text: object) -> str:
    try:
        instant = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if instant.tzinfo is None:
        return str(text)
    return f"{text}（北京时间 Beijing time {instant.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}）"


def describe(document: dict) -> tuple[list[tuple[str, str]], list[int]]:
    """Labelled facts for printing, and the amounts an `--amount` may match (total and each line)."""
    kind = document.get("type")
    facts: list[tuple[str, str]] = []
    amounts: list[int] = []
    if kind == "journal_entry":
        name = str(document.get("kind"))
        facts.append(("记录 Record", "记账凭证 journal entry"))
        facts.append(("种类 Kind", f"{KIND_NAMES.get(name, name)} {name}"))
        postings = document.get("postings")
        if isinstance(postings, list):
            lines = [(str(line[0]), line[1]) for line in postings if isinstance(line, list) and len(line) == 2]
            if len(lines) != len(postings) or not all(type(amount) is int for _, amount in lines):
                raise Refused("分录应为 [科目, 分] 对 each line must be an [account, fen] pair")
            debits = sum(amount for _, amount in lines if amount > 0)
            facts.append(("金额 Amount", yuan(debits)))
            for code, amount in lines:
                side = "借 debit " if amount > 0 else "贷 credit"
                facts.append(("  分录 Line", f"{side} {code} {yuan(abs(amount))}"))
            amounts = [debits] + [abs(amount) for _, amount in lines]
        else:
            facts.append(("分录 Lines", f"{document.get('line_count')} 行 lines, 子树根 subtree root "
                                        f"{document.get('lines_root')}"))
        facts.append(("摘要 Memo", str(document.get("memo"))))
        facts.append(("参考 Reference", "—" if document.get("reference") is None else str(document["reference"])))
        facts.append(("时间 Time", when(document.get("posted_at"))))
        facts.append(("编号 Entry uid", str(document.get("uid"))))
    elif kind == "coverage":
        name, layer = str(document.get("kind")), str(document.get("layer"))
        facts.append(("记录 Record", "保障支付记录 coverage record"))
        facts.append(("种类 Kind", f"{KIND_NAMES.get(name, name)} {name}"))
        facts.append(("保障层 Layer", f"{LAYER_NAMES.get(layer, layer)} {layer}"))
        facts.append(("项目 Program", str(document.get("program"))))
        facts.append(("金额 Amount", yuan(document.get("amount"))))
        facts.append(("就医记录 Episode", str(document.get("episode_id"))))
        facts.append(("时间 Time", when(document.get("recorded_at"))))
        amounts = [abs(document["amount"])]
    elif kind == "line":
        facts.append(("记录 Record", "批量凭证中的一行 one line of a bulk entry"))
        facts.append(("凭证 Entry", str(document.get("entry"))))
        facts.append(("行号 Line", str(document.get("line"))))
        facts.append(("科目 Account", str(document.get("account"))))
        facts.append(("金额 Amount", yuan(document.get("amount"))))
        amounts = [abs(document["amount"])]
    else:
        facts.extend((str(key), json.dumps(value, ensure_ascii=False)) for key, value in document.items())
    return facts, amounts


def parse_yuan(text: str) -> int:
    try:
        value = Decimal(text.replace(",", "").replace("¥", "").strip())
    except InvalidOperation:
        raise Refused(f"--amount 应为元，最多两位小数 --amount must be yuan with at most two decimals: {text}") from None
    if value != value.quantize(Decimal("0.01")):
        raise Refused(f"--amount 最多两位小数 --amount has more than two decimals: {text}")
    return int(value * 100)


# --- the whole check -------------------------------------------------------------------------


def verify(receipt: dict, key_text: str, expected_amount: str | None, expected_reference: str | None) -> Report:
    report = Report()
    index, content, note = receipt["leaf_index"], receipt["content"], receipt["checkpoint"]
    proof = [bytes.fromhex(p) for p in receipt["proof"]]

    try:
        document = read_content(content)
        facts, amounts = describe(document)
        report.facts.extend(facts)
        report.passed("内容为规范 JSON content is canonical JSON")
    except Refused as error:
        document, amounts = None, []
        report.failed(str(error))
    leaf = leaf_hash(content.encode("utf-8"))
    report.passed(f"叶子哈希 leaf hash SHA-256(0x00‖content) = {leaf.hex()}")

    try:
        text, signatures = split_note(note)
        origin, size, signed_root = parse_checkpoint(text)
    except Refused as error:
        report.failed(str(error))
        return report
    report.facts += [("叶子序号 Leaf index", str(index)), ("树大小 Tree size", str(size)), ("日志 Log", origin)]

    try:
        root, trace = root_from_proof(index, size, leaf, proof)
        report.passed(f"到根的路径 path to the root: {len(proof)} 步 steps → {root.hex()}")
        for step in trace:
            report.detail(step)
        if root == signed_root:
            report.passed(f"根哈希与检查点一致 root equals the checkpoint's root ({size} 叶 leaves)")
        else:
            report.failed(
                f"根哈希与检查点不符：内容、序号或证明被改动过 the root differs from the checkpoint's "
                f"{signed_root.hex()}: the content, index or proof was altered"
            )
    except Refused as error:
        report.failed(str(error))

    try:
        key = parse_verifier_key(key_text)
        check_signature(text, signatures, key)
        report.passed(f"签名有效 signature valid (Ed25519, {key[0]}+{key[1].hex()})")
    except Refused as error:
        report.failed(str(error))

    if expected_amount is not None:
        try:
            fen = parse_yuan(expected_amount)
            if fen in amounts:
                report.passed(f"金额相符 the amount is as expected: {yuan(fen)}")
            else:
                report.failed(f"凭证中没有金额 {yuan(fen)} the receipt shows no amount of {yuan(fen)}")
        except Refused as error:
            report.failed(str(error))
    if expected_reference is not None:
        actual = document.get("reference") if isinstance(document, dict) else None
        if actual == expected_reference:
            report.passed(f"参考相符 the reference is as expected: {expected_reference}")
        else:
            report.failed(f"参考不符 the reference is {actual!r}, not {expected_reference!r}")
    return report


def columns(text: str) -> int:
    """Terminal columns of a text: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="查验共济账本凭证 Check a receipt of the Gongji ledger against the log's public key."
    )
    parser.add_argument("receipt", help="凭证 JSON 文件（- 为标准输入） the receipt JSON file (- for stdin)")
    parser.add_argument("key", help="公钥 name+keyid+base64，或存有公钥的文件 the verifier key, or a file holding it")
    parser.add_argument("--amount", help="预期金额（元） the amount you expect, in yuan, e.g. 100.00")
    parser.add_argument("--reference", help="预期参考 the reference you expect, e.g. campaign:1")
    args = parser.parse_args(argv)
    try:
        receipt = read_receipt(args.receipt)
        report = verify(receipt, read_key(args.key), args.amount, args.reference)
    except Refused as error:
        print(f"无效 invalid: {error}")
        return 1
    print("凭证内容 What the receipt says:")
    width = max((columns(label) for label, _ in report.facts), default=0)
    for label, value in report.facts:
        print(f"  {label}{' ' * (width - columns(label))}  {value}")
    print("查验步骤 Checks:")
    for ok, text in report.steps:
        print(f"      {text}" if ok is None else f"  {'✓' if ok else '✗'} {text}")
    if report.failure:
        print(f"无效 invalid: {report.failure}")
        return 1
    print("有效 valid: 该记录在已签名的账本中 this record is in the signed log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
