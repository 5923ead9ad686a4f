"""Merkle tree hashing and proofs of RFC 9162 (Certificate Transparency 2.0), pure functions.

The tree over leaves d[0:n] is the RFC's MTH: a leaf hashes as
SHA-256(0x00 || data), an inner node as SHA-256(0x01 || left || right), and
a range of n > 1 leaves splits at k, the largest power of two below n. Such
a tree is left-balanced, so every *full* node — a power-of-two range aligned
on its own size — never changes once its leaves exist. Storage keeps only
those (level L, index i covering leaves [i·2^L, (i+1)·2^L)); any range's hash,
and so every root and proof, is composed from O(log n) of them. Functions
take `full_node(level, index) -> bytes` to read them from wherever they live.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

FullNode = Callable[[int, int], bytes]
HASH_SIZE = 32


class ProofError(ValueError):
    """A proof that does not verify, or asks about sizes or indexes that do not exist."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    """MTH of the empty list: the hash of the empty string."""
    return hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(start: int, end: int, full_node: FullNode) -> bytes:
    """MTH of leaves [start, end), composed from full nodes (start is aligned as the RFC's recursion keeps it)."""
    size = end - start
    if size <= 0:
        raise ProofError("an empty range has no hash")
    if size & (size - 1) == 0 and start % size == 0:
        return full_node(size.bit_length() - 1, start // size)
    k = _split(size)
    return node_hash(range_hash(start, start + k, full_node), range_hash(start + k, end, full_node))


def root(size: int, full_node: FullNode) -> bytes:
    return empty_root() if size == 0 else range_hash(0, size, full_node)


def inclusion_proof(index: int, size: int, full_node: FullNode) -> list[bytes]:
    """PATH(m, D[0:n]) of RFC 9162 §2.1.3.1: the sibling hashes from the leaf up to the root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(range_hash(start + k, end, full_node))
            end = start + k
        else:
            proof.append(range_hash(start, start + k, full_node))
            start += k
    proof.reverse()
    return proof


def consistency_proof(old_size: int, new_size: int, full_node: FullNode) -> list[bytes]:
    """PROOF(m, D[0:n]) of RFC 9162 §2.1.4.1: that the tree of `new_size` extends the tree of `old_size`."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                proof.append(range_hash(start, end, full_node))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            proof.append(range_hash(start + k, end, full_node))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(range_hash(start, start + k, full_node))

    if old_size < new_size:
        subproof(old_size, 0, new_size, True)
    return proof


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError unless `leaf` is at `index` of the tree with `expected_root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != expected_root:
        raise ProofError("the inclusion proof does not lead to the checkpoint's root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless the new tree extends the old one."""
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    if not 0 < old_size < new_size:
        raise ProofError(f"no consistency between sizes {old_size} and {new_size}")
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofError("the new tree does not extend the old checkpoint")


def full_nodes_in_memory(leaves: Sequence[bytes]) -> FullNode:
    """Full nodes of a tree held in memory (tests, the bulk-entry subtree, the standalone check)."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    def full_node(level: int, index: int) -> bytes:
        return levels[level][index]

    return full_node
