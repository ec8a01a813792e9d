"""RFC 6962 / RFC 9162 Merkle trees: hashing, proofs from stored subtrees, and verification.

Leaf hash ``H(0x00 || leaf)``, node hash ``H(0x01 || left || right)``, empty tree ``H("")``.

Proof *generation* never walks leaves: it asks a :data:`SubtreeHashes` callable for the hashes
of perfect subtrees ``(level, index)`` (covering leaves ``[index * 2**level, (index + 1) *
2**level)``), so a service that stores those nodes reads O(log n) of them per proof.
:func:`append_nodes` returns exactly the nodes an append creates, for the service to store.

Proof *verification* follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 literally, and
raises :class:`~crypto.errors.InclusionProofError` / :class:`~crypto.errors.ConsistencyProofError`.
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence
from itertools import chain

from samleng.crypto.errors import ConsistencyProofError, InclusionProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# No tree beyond 2**63 leaves can exist (sizes are int64 in every format we speak), so no valid
# proof is longer than 63 hashes; the bound stops absurd inputs before any hashing.
MAX_TREE_SIZE = 2**63 - 1
MAX_PROOF_LENGTH = 63

SubtreeHashes = Callable[[int, int], bytes]
"""``(level, index) -> hash`` of the perfect subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 is a leaf hash."""

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    """Return the RFC 6962 hash of one leaf: ``SHA-256(0x00 || leaf)``."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (root) of a tree with these leaf hashes."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha256 = _sha256  # bound locally: this loop runs millions of times for an auditor
    # Pairing neighbours level by level and lifting a lone last node unchanged gives the same
    # root as RFC 6962's recursive split at the largest power of two (tlog/CT use this too),
    # and costs one C-level comprehension per level instead of Python work per node.
    while len(level) > 1:
        pairs = iter(level)
        upper = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def _split(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int) -> None:
    """Refuse a tree size outside ``[0, MAX_TREE_SIZE]`` (ValueError: a caller's bug)."""
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ValueError(f"tree size {size} out of range")


def _range_hash(lo: int, hi: int, subtree: SubtreeHashes) -> bytes:
    """Return the Merkle tree hash of leaves ``[lo, hi)`` from perfect subtree hashes.

    Every range the RFC recursion needs starts at a multiple of a power of two at least as
    large as the range, so it splits into perfect subtrees of decreasing size; their hashes
    folded from the right are the range's tree hash.
    """
    parts: list[bytes] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo & ((1 << level) - 1):
            raise ValueError(f"range [{lo}, {hi}) is not aligned to its subtrees")
        parts.append(subtree(level, lo >> level))
        lo += 1 << level
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = node_hash(part, result)
    return result


def root_from_subtrees(size: int, subtree: SubtreeHashes) -> bytes:
    """Return the root of the tree of ``size`` leaves, reading at most log2(size) subtrees."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, subtree)


def inclusion_proof(index: int, size: int, subtree: SubtreeHashes) -> list[bytes]:
    """Return the RFC 9162 inclusion proof (audit path) of leaf ``index`` in a tree of ``size``.

    The path runs from the leaf's sibling up to a child of the root.
    """
    _check_size(size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; the sibling of each step is either a perfect left subtree or
    # the (possibly imperfect) right remainder, which _range_hash assembles.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_range_hash(lo + k, hi, subtree))
            hi = lo + k
        else:
            path.append(subtree(k.bit_length() - 1, lo // k))
            lo += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, subtree: SubtreeHashes) -> list[bytes]:
    """Return the RFC 9162 consistency proof that the first ``old_size`` leaves are a prefix.

    Empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove).
    """
    _check_size(new_size)
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot prove size {old_size} against size {new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    lo, hi = 0, new_size
    old_is_whole_subtree = True  # RFC 9162 SUBPROOF's flag b
    while old_size < hi:
        k = _split(hi - lo)
        if old_size <= lo + k:
            path.append(_range_hash(lo + k, hi, subtree))
            hi = lo + k
        else:
            path.append(subtree(k.bit_length() - 1, lo // k))
            lo += k
            old_is_whole_subtree = False
    if not old_is_whole_subtree:
        path.append(_range_hash(lo, hi, subtree))
    path.reverse()
    return path


def _grow(
    size_before: int, new_leaf_hashes: Sequence[bytes], subtree: SubtreeHashes
) -> list[tuple[int, list[bytes]]]:
    """Return, per level from 0 up, ``(first_index, hashes)`` of the nodes an append creates.

    At each level at most one left child predates the append, so ``subtree`` is called at
    most once per level.
    """
    _check_size(size_before)
    size_after = size_before + len(new_leaf_hashes)
    _check_size(size_after)
    levels: list[tuple[int, list[bytes]]] = [(size_before, list(new_leaf_hashes))]
    sha256 = _sha256
    level = 0
    while True:
        first_child, children = levels[-1]
        first = size_before >> (level + 1)
        if first == size_after >> (level + 1):
            return levels
        pairs: Iterable[bytes] = children
        if 2 * first < first_child:  # the left child of the first new node is stored already
            pairs = chain((subtree(level, 2 * first),), children)
        it = iter(pairs)
        # zip drops a trailing unpaired child: that node is not complete yet.
        nodes = [sha256(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        levels.append((first, nodes))
        level += 1


def append_nodes(
    size_before: int, new_leaf_hashes: Sequence[bytes], subtree: SubtreeHashes
) -> list[tuple[int, int, bytes]]:
    """Return every perfect-subtree node ``(level, index, hash)`` created by appending leaves.

    Level 0 (the new leaf hashes themselves) is included; ``subtree`` serves the existing
    tree of ``size_before`` leaves and is called at most once per level.
    """
    return [
        (level, first + offset, node)
        for level, (first, nodes) in enumerate(_grow(size_before, new_leaf_hashes, subtree))
        for offset, node in enumerate(nodes)
    ]


class MemoryTree:
    """A whole tree in memory, one list of perfect-subtree hashes per level.

    For tests and offline tools; :meth:`subtree` is a :data:`SubtreeHashes` callable.
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        """Build the tree over ``leaf_hashes``."""
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Return the number of leaves."""
        return len(self._levels[0])

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Append leaf hashes, computing the new perfect subtrees."""
        for level, (first, nodes) in enumerate(_grow(self.size, leaf_hashes, self.subtree)):
            if level == len(self._levels):
                self._levels.append([])
            if len(self._levels[level]) != first:  # _grow continues each level where it ended
                raise AssertionError(f"level {level} does not continue at node {first}")
            self._levels[level].extend(nodes)

    def subtree(self, level: int, index: int) -> bytes:
        """Return the hash of perfect subtree ``(level, index)``; ValueError if it isn't full."""
        if 0 <= level < len(self._levels) and 0 <= index < len(self._levels[level]):
            return self._levels[level][index]
        raise ValueError(f"no complete subtree at level {level}, index {index}")

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first ``size`` leaves (default: all of them)."""
        size = self.size if size is None else size
        if size > self.size:
            raise ValueError(f"tree has {self.size} leaves, not {size}")
        return root_from_subtrees(size, self.subtree)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of leaf ``index`` in the first ``size`` leaves."""
        size = self.size if size is None else size
        if size > self.size:
            raise ValueError(f"tree has {self.size} leaves, not {size}")
        return inclusion_proof(index, size, self.subtree)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof from ``old_size`` to ``new_size`` (default: all)."""
        new_size = self.size if new_size is None else new_size
        if new_size > self.size:
            raise ValueError(f"tree has {self.size} leaves, not {new_size}")
        return consistency_proof(old_size, new_size, self.subtree)


class CompactTree:
    """The right edge of a tree: only the perfect subtrees that its size decomposes into.

    Computes roots of a stream of leaves in O(log n) memory, e.g. an auditor checking every
    historical checkpoint while reading a million leaves once. Feed it in batches: each batch
    is hashed level by level like :func:`root_hash`.
    """

    def __init__(self) -> None:
        """Start with the empty tree."""
        self._size = 0
        self._edge: dict[int, bytes] = {}  # level -> hash, one per set bit of the size

    @property
    def size(self) -> int:
        """Return the number of leaves appended so far."""
        return self._size

    def _edge_node(self, level: int, index: int) -> bytes:
        """Serve :func:`_grow` the one stored node it may ask for per level."""
        if (self._size >> level) - 1 != index or level not in self._edge:
            raise ValueError(f"subtree ({level}, {index}) is not on the right edge")
        return self._edge[level]

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Append a batch of leaf hashes."""
        levels = _grow(self._size, leaf_hashes, self._edge_node)
        size = self._size + len(leaf_hashes)
        edge: dict[int, bytes] = {}
        for level in range(size.bit_length()):
            if not size >> level & 1:
                continue
            index = (size >> level) - 1
            if level < len(levels) and index >= levels[level][0]:
                edge[level] = levels[level][1][index - levels[level][0]]
            else:  # untouched by this batch: same node as before
                edge[level] = self._edge[level]
        self._size, self._edge = size, edge

    def root(self) -> bytes:
        """Return the root of the leaves appended so far."""
        if self._size == 0:
            return EMPTY_ROOT
        nodes = [self._edge[level] for level in sorted(self._edge)]
        result = nodes[0]
        for node in nodes[1:]:  # from the smallest (rightmost) subtree leftwards
            result = node_hash(node, result)
        return result


def _check_hashes(error: type[Exception], **hashes: bytes) -> None:
    """Raise ``error`` naming any argument that is not a 32-byte hash."""
    for name, value in hashes.items():
        if len(value) != HASH_SIZE:
            raise error(f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def _check_path(error: type[Exception], proof: Sequence[bytes]) -> None:
    """Raise ``error`` if a proof is absurdly long or holds something that is not a hash."""
    if len(proof) > MAX_PROOF_LENGTH:
        raise error(f"proof has {len(proof)} hashes, more than any tree needs")
    for i, element in enumerate(proof):
        if len(element) != HASH_SIZE:
            raise error(f"proof element {i} is {len(element)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2; raises InclusionProofError on any failure.
    """
    _check_hashes(InclusionProofError, leaf_hash=leaf_hash, root=root)
    _check_path(InclusionProofError, proof)
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise InclusionProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node is a lone last node lifted without hashing.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise InclusionProofError("inclusion proof does not lead to the checkpoint's root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``.

    RFC 9162 §2.1.4.2; raises ConsistencyProofError on any failure.
    """
    _check_hashes(ConsistencyProofError, old_root=old_root, new_root=new_root)
    _check_path(ConsistencyProofError, proof)
    if not 0 <= old_size <= new_size <= MAX_TREE_SIZE:
        raise ConsistencyProofError(f"size {new_size} cannot extend size {old_size}")
    if old_size == 0:
        # The RFC leaves this case out; the empty tree is a prefix of every tree, but only
        # with its one possible root (stricter than some libraries, which accept any root).
        if proof:
            raise ConsistencyProofError("proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT or (new_size == 0 and new_root != EMPTY_ROOT):
            raise ConsistencyProofError("a tree of size 0 must have the empty-tree root")
        return
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError("proof between equal sizes must be empty")
        if old_root != new_root:
            raise ConsistencyProofError("two different roots for the same tree size")
        return
    if not proof:
        raise ConsistencyProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # the old tree is a whole subtree: its root starts
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofError("consistency proof is shorter than needed")
    if fr != old_root:
        raise ConsistencyProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ConsistencyProofError("consistency proof does not lead to the new root")
