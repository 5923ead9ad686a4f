"""Resident identity (居民身份证, GB 11643-1999): validation, masking, keyed hash, encryption.

The raw 18-digit number is validated at intake, encrypted at rest (AES-GCM),
shown masked, and matched across layers only by its keyed hash (HMAC-SHA256),
never by the raw number.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import os
import re
from functools import lru_cache
from importlib import resources

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gongji.core.errors import InvalidInput

CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
#: 81/82/83: residence permits of Hong Kong, Macao and Taiwan residents (港澳台居民居住证).
PERMIT_PREFIXES = ("81", "82", "83")


@lru_cache(maxsize=1)
def province_codes() -> dict[str, str]:
    """GB/T 2260 two-digit province codes with their Chinese names, from the bundled census table."""
    text = resources.files("gongji.data").joinpath("provinces.csv").read_text(encoding="utf-8")
    return {row["code"]: row["name_zh"] for row in csv.DictReader(text.splitlines())}


def known_prefixes() -> tuple[str, ...]:
    return tuple(province_codes()) + PERMIT_PREFIXES


def check_char(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, CHECK_WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def normalise_id_number(text: str, field: str = "id_number", *, today: dt.date | None = None) -> str:
    """Validate an 18-digit resident ID number and return it with an upper-case X."""
    number = str(text).strip().upper()
    if len(number) != 18 or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise InvalidInput("resident ID must be 17 digits followed by a digit or X", field)
    if number[:2] not in known_prefixes():
        raise InvalidInput("the resident ID starts with an unknown province code", field)
    try:
        birth = dt.datetime.strptime(number[6:14], "%Y%m%d").date()
    except ValueError:
        raise InvalidInput("the birth date inside the resident ID is not a real date", field) from None
    if birth.year < 1900 or birth > (today or dt.date.today()):
        raise InvalidInput("the birth date inside the resident ID is out of range", field)
    if check_char(number[:17]) != number[17]:
        raise InvalidInput("check digit does not match", field)
    return number


#: Runs of digits long enough to be an ID number (18), a phone number (11) or a bank card: never echoed back.
_PERSONAL_DIGITS_RE = re.compile(r"[0-9０-９]{11,}[0-9０-９XxＸｘ]?")


def redact_personal_digits(text: str) -> str:
    """Replace ID-, phone- or card-length digit runs in a message with a mask, so no error repeats them."""
    return _PERSONAL_DIGITS_RE.sub(lambda match: "*" * len(match.group()), text)


def birth_date(id_number: str) -> dt.date:
    return dt.datetime.strptime(id_number[6:14], "%Y%m%d").date()


def sex(id_number: str) -> str:
    """'M' or 'F' from the 17th digit (odd for men)."""
    return "M" if int(id_number[16]) % 2 else "F"


def mask_id_number(id_number: str) -> str:
    """Show only the first 3 and last 4 characters: 110***********123X."""
    return id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]


def mask_name(name: str) -> str:
    """张明 → 张*, 张小明 → 张*明, 欧阳小明 → 欧**明: first and last character kept."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


class IdentityVault:
    """Holds the two secrets: AES-GCM key for the raw number, HMAC secret for the person key."""

    def __init__(self, field_key: bytes, person_key_secret: bytes):
        if len(field_key) != 32:
            raise ValueError("field key must be 32 bytes")
        if len(person_key_secret) < 16:
            raise ValueError("person key secret must be at least 16 bytes")
        self._aead = AESGCM(field_key)
        self._secret = person_key_secret

    def person_key(self, id_number: str) -> str:
        """Keyed hash (HMAC-SHA256, hex) of a normalised ID: the cross-layer person key."""
        return hmac.new(self._secret, id_number.encode("ascii"), hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: str, context: str) -> str:
        """AES-GCM with a random nonce; `context` (the column name) is bound as associated data."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("ascii"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, context: str) -> str:
        blob = base64.b64decode(token)
        return self._aead.decrypt(blob[:12], blob[12:], context.encode("ascii")).decode("utf-8")
