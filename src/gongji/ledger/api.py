"""Public routes of the transparency log: checkpoints, leaves, proofs and receipts. No login, no personal data.

A receipt carries everything needed to check one money movement offline:
the leaf's canonical content, its index, the inclusion proof and the signed
checkpoint it leads to; `tools/verify_receipt.py` (standard library and
`cryptography` only) or the 查验凭证 page checks it against the published key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi import Path as FastApiPath
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from gongji.api.auth import PUBLIC, access
from gongji.api.deps import AppContext, get_context
from gongji.api.problems import problem_responses
from gongji.core.errors import NotFound
from gongji.ledger import service

router = APIRouter(prefix="/api/ledger", tags=["ledger"], responses=problem_responses(404, 422))
Context = Annotated[AppContext, Depends(get_context)]
LeafIndex = Annotated[int, Query(ge=0, le=2**62, description="Position of the leaf in the log, from 0.")]
LeafPath = Annotated[int, FastApiPath(ge=0, le=2**62, description="Position of the leaf in the log, from 0.")]
TreeSize = Annotated[int, Query(ge=1, le=2**62, description="Size of a checkpoint (number of leaves).")]


class PublicKeyOut(BaseModel):
    origin: str
    verifier_key: str = Field(description="C2SP verifier key: name+keyid+base64(0x01 || Ed25519 public key)")


class CheckpointOut(BaseModel):
    size: int
    root: str = Field(description="Root hash, hex")
    note: str = Field(description="The signed checkpoint (C2SP signed note)")
    issued_at: str


class LeafOut(BaseModel):
    leaf_index: int
    leaf_hash: str
    source: str = Field(description="entry (a journal entry) or coverage (a coverage-registry record)")
    content: str = Field(description="The canonical content; SHA-256(0x00 || content) is the leaf hash")


class InclusionOut(BaseModel):
    leaf_index: int
    size: int
    proof: list[str]


class ConsistencyOut(BaseModel):
    old: int
    new: int
    proof: list[str]


class ReceiptOut(BaseModel):
    """Everything needed to check one leaf offline against the log's public key."""

    leaf_index: int
    content: str
    proof: list[str]
    checkpoint: str


def _checkpoint_out(checkpoint) -> CheckpointOut:
    return CheckpointOut(
        size=checkpoint.size, root=checkpoint.root, note=checkpoint.note, issued_at=checkpoint.issued_at.isoformat()
    )


@router.get("/public-key", response_model=PublicKeyOut, **access(PUBLIC))
def public_key(context: Context) -> PublicKeyOut:
    """The key every checkpoint is signed with; keep it to check checkpoints without trusting this server."""
    return PublicKeyOut(origin=context.signer.origin, verifier_key=context.signer.verifier_key)


@router.get("/checkpoint", response_class=PlainTextResponse, **access(PUBLIC))
def latest(context: Context) -> PlainTextResponse:
    """The latest signed checkpoint, as text (keep it: later checkpoints must extend it)."""
    with context.transaction() as session:
        return PlainTextResponse(service.latest_checkpoint(session).note)


@router.get("/checkpoints", response_model=list[CheckpointOut], **access(PUBLIC))
def history(
    context: Context,
    below: Annotated[int | None, Query(ge=1, le=2**62, description="Only checkpoints smaller than this size")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CheckpointOut]:
    """Every checkpoint ever issued, newest first."""
    with context.transaction() as session:
        return [_checkpoint_out(c) for c in service.checkpoints(session, below=below, limit=limit)]


@router.get("/leaves/{leaf_index}", response_model=LeafOut, **access(PUBLIC))
def leaf(leaf_index: LeafPath, context: Context) -> LeafOut:
    """One leaf with its canonical content (money movements and coverage records carry no personal data)."""
    with context.transaction() as session:
        found, content = service.leaf_with_content(session, leaf_index)
        return LeafOut(leaf_index=leaf_index, leaf_hash=found.leaf_hash, source=found.source,
                       content=content.decode("utf-8"))


@router.get("/proofs/inclusion", response_model=InclusionOut, **access(PUBLIC))
def inclusion(leaf_index: LeafIndex, size: TreeSize, context: Context) -> InclusionOut:
    """The audit path from a leaf to the root of the checkpoint of `size` leaves (RFC 9162 §2.1.3)."""
    with context.transaction() as session:
        proof = service.inclusion_proof(session, leaf_index, size)
        return InclusionOut(leaf_index=leaf_index, size=size, proof=[p.hex() for p in proof])


@router.get("/proofs/consistency", response_model=ConsistencyOut, **access(PUBLIC))
def consistency(
    old: Annotated[int, Query(ge=1, le=2**62)], new: Annotated[int, Query(ge=1, le=2**62)], context: Context
) -> ConsistencyOut:
    """That the checkpoint of `new` leaves extends the one of `old` leaves (RFC 9162 §2.1.4)."""
    with context.transaction() as session:
        proof = service.consistency_proof(session, old, new)
        return ConsistencyOut(old=old, new=new, proof=[p.hex() for p in proof])


@router.get("/receipts/{leaf_index}", response_model=ReceiptOut, **access(PUBLIC))
def receipt(leaf_index: LeafPath, context: Context) -> ReceiptOut:
    """A receipt for one leaf against the latest checkpoint: check it with tools/verify_receipt.py or 查验凭证."""
    with context.transaction() as session:
        checkpoint = service.latest_checkpoint(session)
        _found, content = service.leaf_with_content(session, leaf_index)
        if leaf_index >= checkpoint.size:
            raise NotFound("this leaf is not under a checkpoint yet; try again in a few seconds", "leaf_index")
        proof = service.inclusion_proof(session, leaf_index, checkpoint.size)
        return ReceiptOut(leaf_index=leaf_index, content=content.decode("utf-8"), proof=[p.hex() for p in proof],
                          checkpoint=checkpoint.note)
