"""Tests for crypto.merkle: CT/RFC 6962 vectors, exhaustive small trees, stored-subtree proofs."""

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samleng.crypto.errors import ConsistencyProofError, InclusionProofError, VerificationError
from samleng.crypto.merkle import (
    EMPTY_ROOT,
    CompactTree,
    MemoryTree,
    append_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_subtrees,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _h(hexes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


def reference_root(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, recursively, straight from the definition (independent of merkle.py)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


TREES = {n: MemoryTree(leaves(n)) for n in range(65)}


# --- published vectors ---------------------------------------------------------------------


def test_vector_leaf_and_node_hashes() -> None:
    tree = MemoryTree([leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]])
    for level, nodes in enumerate(VECTORS["nodes"]):
        for index, expected in enumerate(_h(nodes)):
            assert tree.subtree(level, index) == expected


@pytest.mark.parametrize("size", range(9))
def test_vector_roots(size: int) -> None:
    hashes = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"][:size]]
    expected = bytes.fromhex(VECTORS["roots"][size])
    assert root_hash(hashes) == expected
    assert MemoryTree(hashes).root() == expected
    assert MemoryTree([leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]]).root(size) == (
        expected
    )


def test_empty_root() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["roots"][0]
    assert root_hash([]) == EMPTY_ROOT
    assert root_from_subtrees(0, TREES[0].subtree) == EMPTY_ROOT


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-{c['size']}")
def test_vector_inclusion(case: dict[str, object]) -> None:
    tree = MemoryTree([leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]])
    index, size = case["index"], case["size"]
    assert isinstance(index, int) and isinstance(size, int)
    path = _h(case["path"])  # type: ignore[arg-type]
    assert tree.inclusion_proof(index, size) == path
    verify_inclusion(tree.subtree(0, index), index, size, path, tree.root(size))


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['old']}-{c['new']}")
def test_vector_consistency(case: dict[str, object]) -> None:
    tree = MemoryTree([leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]])
    old, new = case["old"], case["new"]
    assert isinstance(old, int) and isinstance(new, int)
    path = _h(case["path"])  # type: ignore[arg-type]
    assert tree.consistency_proof(old, new) == path
    verify_consistency(old, new, tree.root(old), tree.root(new), path)


# --- exhaustive small trees ------------------------------------------------------------------


def inclusion_tampers(
    index: int, size: int, path: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    cases: list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]] = [
        ("index-1", (leaf, index - 1, size, path, root)),
        ("index+1", (leaf, index + 1, size, path, root)),
        ("index^2", (leaf, index ^ 2, size, path, root)),
        ("size*2", (leaf, index, size * 2, path, root)),
        ("size/2", (leaf, index, size // 2, path, root)),
        ("wrong leaf", (SOME_HASH, index, size, path, root)),
        ("empty root", (leaf, index, size, path, EMPTY_ROOT)),
        ("trailing root", (leaf, index, size, [*path, root], root)),
        ("preceding root", (leaf, index, size, [root, *path], root)),
        (
            "short element",
            (leaf, index, size, [*path[:-1], path[-1][:31]] if path else [b""], root),
        ),
    ]
    if path:
        cases.append(("missing element", (leaf, index, size, path[:-1], root)))
        cases.append(
            ("inserted element", (leaf, index, size, [path[0], SOME_HASH, *path[1:]], root))
        )
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        cases.append((f"bit flip {i}", (leaf, index, size, flipped, root)))
    # The tamper may accidentally describe another valid statement (e.g. index^2 == index):
    # keep only cases that differ from the original.
    return [c for c in cases if c[1] != (leaf, index, size, path, root)]


@pytest.mark.parametrize("size", range(1, 65))
def test_every_inclusion_proof_verifies_and_tampering_fails(size: int) -> None:
    tree = TREES[size]
    root = root_hash(leaves(size))
    assert root == reference_root(leaves(size)) == tree.root() == TREES[64].root(size)
    for index in range(size):
        path = inclusion_proof(index, size, TREES[64].subtree)
        assert path == tree.inclusion_proof(index)
        leaf = tree.subtree(0, index)
        verify_inclusion(leaf, index, size, path, root)
        for name, args in inclusion_tampers(index, size, path, root, leaf):
            with pytest.raises(InclusionProofError):
                verify_inclusion(*args)
                pytest.fail(f"tamper {name} verified for index {index} size {size}")


def consistency_tampers(
    old: int, new: int, r1: bytes, r2: bytes, path: list[bytes]
) -> list[tuple[int, int, bytes, bytes, list[bytes]]]:
    cases = [
        (old - 1, new, r1, r2, path),
        (old + 1, new, r1, r2, path),
        (old ^ 2, new, r1, r2, path),
        (old, new * 2, r1, r2, path),
        (old, new // 2, r1, r2, path),
        (old, new, SOME_HASH, r2, path),
        (old, new, r1, SOME_HASH, path),
        (old, new, r2, r1, path),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*path, r1]),
        (old, new, r1, r2, [*path, r2]),
        (old, new, r1, r2, [r1, *path]),
        (old, new, r1, r2, [r2, *path]),
    ]
    if path:
        cases.append((old, new, r1, r2, [path[0], *path]))
        cases.append((old, new, r1, r2, path[:-1]))
        cases.append((old, new, r1, r2, path[1:]))
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        cases.append((old, new, r1, r2, flipped))
    original = (old, new, r1, r2, path)
    return [c for c in cases if c != original and not (c[0] == c[1] and c[2] == c[3] and not c[4])]


@pytest.mark.parametrize("new", range(1, 65))
def test_every_consistency_proof_verifies_and_tampering_fails(new: int) -> None:
    big = TREES[64]
    for old in range(0, new + 1):
        path = consistency_proof(old, new, big.subtree)
        assert path == TREES[new].consistency_proof(old)
        r1, r2 = big.root(old), big.root(new)
        verify_consistency(old, new, r1, r2, path)
        if old in (0, new):
            assert path == []
            continue
        for args in consistency_tampers(old, new, r1, r2, path):
            with pytest.raises(ConsistencyProofError):
                verify_consistency(*args)
                pytest.fail(f"tamper {args[:2]} verified for {old} -> {new}")


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, []),
        (0, 5, EMPTY_ROOT, SOME_HASH, []),
        (3, 3, SOME_HASH, SOME_HASH, []),
    ],
)
def test_consistency_trivial_cases(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]
) -> None:
    verify_consistency(old, new, r1, r2, proof)


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof"),
    [
        (0, 0, EMPTY_ROOT, SOME_HASH, []),  # size 0 has one root only
        (0, 3, SOME_HASH, SOME_HASH, []),
        (0, 3, EMPTY_ROOT, SOME_HASH, [SOME_HASH]),
        (3, 3, SOME_HASH, EMPTY_ROOT, []),
        (3, 3, SOME_HASH, SOME_HASH, [SOME_HASH]),
        (4, 3, SOME_HASH, SOME_HASH, []),  # time travel
        (-1, 3, SOME_HASH, SOME_HASH, []),
        (1, 2, SOME_HASH, SOME_HASH, []),
        (1, 2, SOME_HASH[:31], SOME_HASH, [SOME_HASH]),
        (1, 2, SOME_HASH, SOME_HASH, [SOME_HASH] * 64),
    ],
)
def test_consistency_bad_inputs(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]
) -> None:
    with pytest.raises(ConsistencyProofError):
        verify_consistency(old, new, r1, r2, proof)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (-1, 4), (0, 2**63)])
def test_inclusion_bad_positions(index: int, size: int) -> None:
    with pytest.raises(InclusionProofError):
        verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)


def test_inclusion_single_leaf_tree() -> None:
    verify_inclusion(SOME_HASH, 0, 1, [], SOME_HASH)
    with pytest.raises(InclusionProofError):
        verify_inclusion(SOME_HASH, 0, 1, [], EMPTY_ROOT)
    with pytest.raises(InclusionProofError):
        verify_inclusion(b"", 0, 1, [], b"")


def test_errors_are_verification_errors() -> None:
    assert issubclass(InclusionProofError, VerificationError)
    assert issubclass(ConsistencyProofError, VerificationError)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (3, 3), (-1, 3)])
def test_generation_refuses_impossible_inclusion(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        inclusion_proof(index, size, TREES[8].subtree)


def test_generation_refuses_impossible_consistency() -> None:
    with pytest.raises(ValueError):
        consistency_proof(5, 4, TREES[8].subtree)
    with pytest.raises(ValueError):
        TREES[8].consistency_proof(1, 9)


def test_memory_tree_refuses_missing_subtrees() -> None:
    with pytest.raises(ValueError):
        TREES[5].subtree(1, 2)  # leaves 4..5 are not both there
    with pytest.raises(ValueError):
        TREES[5].root(6)


# --- storage-backed generation and appends -------------------------------------------------


class Store:
    """A dict of perfect subtrees as the service would keep them, counting reads."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0
        self.reads = 0

    def subtree(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.nodes[(level, index)]

    def append(self, hashes: Sequence[bytes]) -> None:
        for level, index, node in append_nodes(self.size, hashes, self.subtree):
            assert (level, index) not in self.nodes
            self.nodes[(level, index)] = node
        self.size += len(hashes)


def batches(total: int, cuts: list[int]) -> list[tuple[int, int]]:
    points = sorted({0, total, *(c % (total + 1) for c in cuts)})
    return list(zip(points, points[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
    data=st.data(),
)
def test_random_trees_from_stored_subtrees(size: int, cuts: list[int], data: st.DataObject) -> None:
    hashes = leaves(size)
    store = Store()
    for lo, hi in batches(size, cuts):
        reads_before = store.reads
        store.append(hashes[lo:hi])
        # An append reads at most one stored node per level of the tree.
        assert store.reads - reads_before <= max(1, size.bit_length())
    whole = MemoryTree(hashes)
    assert store.nodes == {
        (level, index): whole.subtree(level, index)
        for level in range(size.bit_length())
        for index in range(size >> level)
    }
    root = root_hash(hashes)
    assert root_from_subtrees(size, store.subtree) == root == whole.root()
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    verify_inclusion(hashes[index], index, size, inclusion_proof(index, size, store.subtree), root)
    old = data.draw(st.integers(min_value=0, max_value=size))
    proof = consistency_proof(old, size, store.subtree)
    verify_consistency(old, size, root_hash(hashes[:old]), root, proof)
    if 0 < old < size:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, size, root_hash(hashes[: old - 1] + [SOME_HASH]), root, proof)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=2000),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_compact_tree_matches_root_hash_at_every_cut(size: int, cuts: list[int]) -> None:
    hashes = leaves(size)
    compact = CompactTree()
    assert compact.root() == EMPTY_ROOT
    for lo, hi in batches(size, cuts):
        compact.extend(hashes[lo:hi])
        assert compact.size == hi
        assert compact.root() == root_hash(hashes[:hi])


def test_compact_tree_one_leaf_at_a_time() -> None:
    compact = CompactTree()
    hashes = leaves(70)
    for n, h in enumerate(hashes, start=1):
        compact.extend([h])
        expected = TREES[64].root(n) if n <= 64 else root_hash(hashes[:n])
        assert compact.root() == expected


def test_root_hash_matches_reference_definition() -> None:
    for n in [*range(0, 70), 127, 128, 129, 1000]:
        assert root_hash(leaves(n)) == reference_root(leaves(n))


# --- cost ----------------------------------------------------------------------------------


def test_proofs_in_a_million_leaf_tree_read_logarithmically_many_subtrees() -> None:
    size = 1_000_000
    calls = 0

    def fake(level: int, index: int) -> bytes:
        nonlocal calls
        calls += 1
        assert 0 <= index and (index + 1) << level <= size, "asked for a subtree beyond the tree"
        return hashlib.sha256(f"{level}/{index}".encode()).digest()

    bound = 3 * math.log2(size)
    for index in [0, 1, 2, 499_999, 524_287, 524_288, 999_998, 999_999]:
        calls = 0
        inclusion_proof(index, size, fake)
        assert calls <= bound, (index, calls)
    for old in [1, 2, 3, 1000, 524_288, 524_289, 999_999, 1_000_000]:
        calls = 0
        consistency_proof(old, size, fake)
        assert calls <= bound, (old, calls)
    calls = 0
    root_from_subtrees(size, fake)
    assert calls <= math.log2(size) + 1
    calls = 0
    # 999_999 ends in six 1 bits, so its next leaf completes six perfect subtrees above it.
    assert len(append_nodes(size - 1, [SOME_HASH], fake)) == 1 + 6
    assert calls <= math.log2(size)


@settings(max_examples=50, deadline=None)
@given(size=st.integers(min_value=1, max_value=5000), data=st.data())
def test_a_root_and_an_append_read_only_the_edge_subtrees(size: int, data: st.DataObject) -> None:
    """The root and an append read no node but the perfect subtrees the tree splits into,
    one per 1 bit of its size: a service need keep no other to grow its log."""
    tree = MemoryTree(leaves(size))
    edge = [
        (level, (size >> level) - 1)
        for level in reversed(range(size.bit_length()))
        if size >> level & 1
    ]
    nodes = {(level, i): tree.subtree(level, i) for level, i in edge}

    def store(level: int, i: int) -> bytes:
        return nodes[(level, i)]

    assert root_from_subtrees(size, store) == tree.root()
    new = [SOME_HASH] * data.draw(st.integers(min_value=0, max_value=300))
    tree.extend(new)
    assert append_nodes(size, new, store) == [
        (level, i, tree.subtree(level, i))
        for level in range(tree.size.bit_length())
        for i in range(size >> level, tree.size >> level)
    ]
