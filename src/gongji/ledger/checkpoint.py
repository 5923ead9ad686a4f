"""Signed checkpoints in the C2SP formats: tlog-checkpoint inside a signed note, signed with Ed25519.

A checkpoint is three lines — the log's origin, the tree size in decimal, the
root hash in standard base64 — each ending in a newline. The signed note
adds a blank line and one signature line per signer:

    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>

The key id is the first four bytes of SHA-256(key name || "\\n" || 0x01 ||
public key); the signature covers the checkpoint text exactly. A verifier key
is published as `<name>+<key id hex>+<base64(0x01 || public key)>`, the
form the Go checksum database uses, so tools other than ours can check it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "


class CheckpointError(ValueError):
    """A note that is malformed, signed by another key, or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def verifier_key(name: str, key: Ed25519PublicKey) -> str:
    raw = _public_bytes(key)
    return f"{name}+{key_id(name, raw).hex()}+{base64.b64encode(bytes([ED25519]) + raw).decode('ascii')}"


def sign(checkpoint: Checkpoint, key_name: str, key: Ed25519PrivateKey) -> str:
    """The signed note of a checkpoint."""
    body = checkpoint.text()
    signature = key.sign(body.encode("utf-8"))
    blob = key_id(key_name, _public_bytes(key.public_key())) + signature
    return f"{body}\n{SIGNATURE_PREFIX}{key_name} {base64.b64encode(blob).decode('ascii')}\n"


def parse_verifier_key(text: str) -> tuple[str, bytes, Ed25519PublicKey]:
    try:
        name, hex_id, encoded = text.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as error:
        raise CheckpointError("not a verifier key of the form name+keyid+base64") from error
    if len(raw) != 33 or raw[0] != ED25519 or bytes.fromhex(hex_id) != key_id(name, raw[1:]):
        raise CheckpointError("the verifier key is not a well-formed Ed25519 key")
    return name, bytes.fromhex(hex_id), Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note: str, verifier: str) -> Checkpoint:
    """Verify a signed checkpoint note against a verifier key and return the checkpoint it signs."""
    name, expected_id, public_key = parse_verifier_key(verifier)
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise CheckpointError("a signed note needs a blank line before its signatures")
    body += "\n"
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("a signature line starts with an em dash and a space")
        signer, _, encoded = line[len(SIGNATURE_PREFIX):].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise CheckpointError("a signature is not base64") from None
        if signer != name or blob[:4] != expected_id:
            continue
        try:
            public_key.verify(blob[4:], body.encode("utf-8"))
        except InvalidSignature:
            raise CheckpointError("the signature does not verify: the checkpoint was altered") from None
        return parse_checkpoint(body)
    raise CheckpointError(f"the note carries no signature by {name}")


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("a checkpoint is origin, size and root hash, each on its own line")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin or not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise CheckpointError("the checkpoint's origin or size is malformed")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise CheckpointError("the checkpoint's root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root)
