"""RFC 9162 roots and proofs, checked against an independent implementation (pymerkle) and by tampering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pymerkle_consistency
from pymerkle import verify_inclusion as pymerkle_inclusion

from gongji.ledger.merkle import (
    ProofError,
    consistency_proof,
    empty_root,
    full_nodes_in_memory,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

entries = st.lists(st.binary(min_size=0, max_size=24), min_size=1, max_size=70)


def tree_of(data: list[bytes]):
    return full_nodes_in_memory([leaf_hash(d) for d in data])


def pymerkle_tree(data: list[bytes]) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")
    for item in data:
        tree.append_entry(item)
    return tree


def test_empty_tree_root_is_the_hash_of_nothing():
    assert root(0, tree_of([b"x"])) == empty_root()


@settings(max_examples=150)
@given(data=entries, pick=st.data())
def test_roots_and_proofs_agree_with_pymerkle(data, pick):
    ours, theirs = tree_of(data), pymerkle_tree(data)
    size = len(data)
    for n in {1, size, pick.draw(st.integers(1, size))}:
        assert root(n, ours) == theirs.get_root(n)
    index = pick.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, ours)
    assert [p.hex() for p in proof] == theirs.prove_inclusion(index + 1, size).serialize()["path"][1:]
    pymerkle_inclusion(theirs.get_leaf(index + 1), theirs.get_root(size), theirs.prove_inclusion(index + 1, size))
    verify_inclusion(leaf_hash(data[index]), index, size, proof, root(size, ours))
    old = pick.draw(st.integers(1, size))
    consistency = consistency_proof(old, size, ours)
    verify_consistency(old, size, root(old, ours), root(size, ours), consistency)
    pymerkle_consistency(theirs.get_root(old), theirs.get_root(size), theirs.prove_consistency(old, size))


@settings(max_examples=150)
@given(data=entries, pick=st.data())
def test_a_changed_removed_or_reordered_leaf_is_detected(data, pick):
    size = len(data)
    checkpoint = root(size, tree_of(data))
    index = pick.draw(st.integers(0, size - 1))
    changed = list(data)
    changed[index] = data[index] + b"!"
    tampered = [changed]
    if size > 1:
        tampered.append(data[:index] + data[index + 1:])
        other = pick.draw(st.integers(0, size - 1).filter(lambda i: data[i] != data[index]) if len(set(data)) > 1
                          else st.just(index))
        swapped = list(data)
        swapped[index], swapped[other] = swapped[other], swapped[index]
        if swapped != data:
            tampered.append(swapped)
    for variant in tampered:
        assert root(len(variant), tree_of(variant)) != checkpoint
    proof = inclusion_proof(index, size, tree_of(changed))
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(changed[index]), index, size, proof, checkpoint)


@settings(max_examples=100)
@given(data=entries, pick=st.data())
def test_truncation_or_rewrite_is_detected_against_an_older_checkpoint(data, pick):
    size = len(data)
    old = pick.draw(st.integers(1, size))
    old_root = root(old, tree_of(data))
    # A rewritten history: one leaf before the old size changed, then grown again.
    index = pick.draw(st.integers(0, old - 1))
    rewritten = list(data) + [b"later"]
    rewritten[index] = data[index] + b"?"
    new = tree_of(rewritten)
    with pytest.raises(ProofError):
        verify_consistency(old, len(rewritten), old_root, root(len(rewritten), new),
                           consistency_proof(old, len(rewritten), new))
    if old > 1:  # truncated below the old size: no consistency proof can exist
        with pytest.raises(ProofError):
            verify_consistency(old, old - 1, old_root, root(old - 1, tree_of(data)), [])


def test_out_of_range_requests_are_refused():
    nodes = tree_of([b"a", b"b", b"c"])
    with pytest.raises(ProofError):
        inclusion_proof(3, 3, nodes)
    with pytest.raises(ProofError):
        consistency_proof(0, 3, nodes)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"a"), 0, 3, [], root(3, nodes))
