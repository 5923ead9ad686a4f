"""Signed checkpoints (C2SP signed note + tlog-checkpoint, Ed25519): sign, open, and refuse any alteration."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gongji.ledger.checkpoint import Checkpoint, CheckpointError, open_note, parse_checkpoint, sign, verifier_key

ORIGIN = "gongji.example/ledger"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def test_round_trip_and_format(key):
    checkpoint = Checkpoint(ORIGIN, 1234, bytes(range(32)))
    note = sign(checkpoint, ORIGIN, key)
    lines = note.split("\n")
    assert lines[:3] == [ORIGIN, "1234", base64.b64encode(bytes(range(32))).decode()]
    assert lines[3] == "" and lines[4].startswith("\u2014 " + ORIGIN + " ")
    assert open_note(note, verifier_key(ORIGIN, key.public_key())) == checkpoint


@pytest.mark.parametrize(
    "edit",
    [
        lambda note: note.replace("\n1234\n", "\n1235\n"),
        lambda note: note.replace(ORIGIN + "\n", "evil.example/ledger\n", 1),
        lambda note: note.split("\n\n")[0] + "\n",
    ],
    ids=["size", "origin", "no-signature"],
)
def test_an_altered_note_is_refused(key, edit):
    note = sign(Checkpoint(ORIGIN, 1234, bytes(32)), ORIGIN, key)
    with pytest.raises(CheckpointError):
        open_note(edit(note), verifier_key(ORIGIN, key.public_key()))


def test_another_key_is_refused(key):
    note = sign(Checkpoint(ORIGIN, 5, bytes(32)), ORIGIN, key)
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(CheckpointError):
        open_note(note, verifier_key(ORIGIN, other))


@pytest.mark.parametrize("body", ["o\n01\nAAAA\n", "o\n5\n" + base64.b64encode(bytes(31)).decode() + "\n", "o\n5\n"])
def test_malformed_checkpoints(body):
    with pytest.raises(CheckpointError):
        parse_checkpoint(body)
