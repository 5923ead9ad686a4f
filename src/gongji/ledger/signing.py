"""The log's Ed25519 signing key: from the environment in production, generated under var/ (0600) otherwise.

`GONGJI_LEDGER_KEY` holds the base64 of a 32-byte Ed25519 seed and
`GONGJI_LEDGER_ORIGIN` the log's origin line (its name in every checkpoint);
the public verifier key is published so anyone can check checkpoints.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gongji.core.settings import Settings
from gongji.ledger.checkpoint import Checkpoint, sign, verifier_key

DEFAULT_ORIGIN = "gongji.local/ledger"


@dataclass(frozen=True)
class LedgerSigner:
    origin: str
    key: Ed25519PrivateKey

    def sign(self, checkpoint: Checkpoint) -> str:
        return sign(checkpoint, self.origin, self.key)

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.origin, self.key.public_key())


def load_signer(settings: Settings) -> LedgerSigner:
    """The signer from GONGJI_LEDGER_KEY, else a key generated once into var/ledger-key.json (owner-only)."""
    origin = os.environ.get("GONGJI_LEDGER_ORIGIN") or DEFAULT_ORIGIN
    seed = os.environ.get("GONGJI_LEDGER_KEY")
    if not seed:
        key_file = settings.var_dir / "ledger-key.json"
        if key_file.exists():
            seed = json.loads(key_file.read_text())["ed25519_seed"]
        else:
            settings.var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            seed = base64.b64encode(secrets.token_bytes(32)).decode()
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"ed25519_seed": seed}, handle)
    return LedgerSigner(origin, Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed)))
