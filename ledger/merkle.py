"""RFC 9162 §2.1 Merkle tree hashing, compact ranges and proofs for one log partition.

Upholds DESIGN guarantee 1 (tamper evidence): a leaf changed, removed, reordered or inserted changes the root,
and inclusion and consistency proofs let anyone check a checkpoint without the log. Generic over leaf bytes.
Never does I/O: nodes come from a caller's `NodeSource`, so storage backends stay out of this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ledger.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

NodeSource = Callable[[int, int], bytes]
"""get_node(level, index): hash of the perfect subtree over leaves [index << level, (index + 1) << level)."""


def leaf_hash(leaf_input: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf_input).digest()


def event_leaf(event_hash: str) -> bytes:
    """The leaf hash of an event: its leaf input is the 32 raw bytes of its `sha256:<hex>` hash (DESIGN)."""
    return leaf_hash(bytes.fromhex(event_hash[7:]))


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (> 1): where RFC 9162 splits a range."""
    return 1 << ((size - 1).bit_length() - 1)


def subtree_root(lo: int, hi: int, get_node: NodeSource) -> bytes:
    """MTH of leaves [lo, hi), fetching only perfect subtrees that lie inside the range."""
    if not 0 <= lo < hi:
        raise ValueError(f"subtree range [{lo}, {hi}) is empty or negative")
    size = hi - lo
    level = size.bit_length() - 1
    if size == 1 << level and lo % size == 0:
        return get_node(level, lo >> level)
    k = _split(size)
    return node_hash(subtree_root(lo, lo + k, get_node), subtree_root(lo + k, hi, get_node))


def root(size: int, get_node: NodeSource) -> bytes:
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return EMPTY_ROOT if size == 0 else subtree_root(0, size, get_node)


def inclusion_proof(index: int, size: int, get_node: NodeSource) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), nearest sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    # Walking down from the root meets the siblings farthest from the leaf first, hence the reverse below.
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            proof.append(subtree_root(mid, hi, get_node))
            hi = mid
        else:
            proof.append(subtree_root(lo, mid, get_node))
            lo = mid
    proof.reverse()
    return proof


def consistency_proof(old_size: int, new_size: int, get_node: NodeSource) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]); empty when either tree is trivially consistent."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot prove consistency from tree size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    lo, hi = 0, new_size
    # `known` is SUBPROOF's b flag: the verifier already holds the old root when the old tree is this subtree.
    known = True
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            proof.append(subtree_root(mid, hi, get_node))
            hi = mid
        else:
            proof.append(subtree_root(lo, mid, get_node))
            lo, known = mid, False
    if not known:
        proof.append(subtree_root(lo, hi, get_node))
    proof.reverse()
    return proof


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof_nodes(kind: str, proof: Sequence[bytes], expected: int, where: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{kind} proof has {len(proof)} nodes, expected {expected} for {where}")
    for position, node in enumerate(proof):
        _check_hash(f"{kind} proof node {position}", node)


def _inclusion_proof_length(index: int, size: int) -> int:
    # Below the level where the paths to `index` and to the last leaf part, every level holds a sibling;
    # above it, only the levels where `index` sits in a right child do (the rest are lone right-edge nodes).
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise ProofError unless `proof` puts leaf `index` of `size` leaves under `root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    _check_proof_nodes("inclusion", proof, _inclusion_proof_length(index, size), f"index {index} in tree size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A left child on the right edge has no sibling: climb past the levels where it is alone.
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    # The proof is the old tree's last perfect subtree (unless the old tree is itself perfect) plus the
    # inclusion path of that subtree's root in the new tree.
    shift = (old_size & -old_size).bit_length() - 1
    seed = 0 if old_size == 1 << shift else 1
    return seed + _inclusion_proof_length((old_size - 1) >> shift, ((new_size - 1) >> shift) + 1)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless the `old_size` tree is a prefix of the `new_size` tree."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"tree size {old_size} cannot be a prefix of tree size {new_size}")
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    if old_size == 0 or old_size == new_size:
        _check_proof_nodes("consistency", proof, 0, f"tree sizes {old_size} and {new_size}")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError("old root of an empty tree is not the empty-tree hash")
        if old_size == new_size and old_root != new_root:
            raise ProofError(f"roots differ for the same tree size {old_size}")
        return
    where = f"tree sizes {old_size} and {new_size}"
    _check_proof_nodes("consistency", proof, _consistency_proof_length(old_size, new_size), where)
    path = list(proof)
    # A perfect old tree is a node of the new tree, so the proof leaves out the hash the verifier holds.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")


class CompactRange:
    """The right edge of a tree: one perfect-subtree root per set bit of `size`, largest (leftmost) first.

    It is all a sequencer needs in memory to append and compute roots; `from_nodes` resumes it from storage.
    """

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    @classmethod
    def from_nodes(cls, size: int, get_node: NodeSource) -> CompactRange:
        if size < 0:
            raise ValueError(f"tree size {size} is negative")
        compact_range = cls()
        compact_range._hashes = [get_node(level, index) for level, index in _right_edge_ids(size)]
        compact_range._size = size
        return compact_range

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return every perfect node it completes as (level, index, hash), the leaf first."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf_hash)} bytes, expected {HASH_SIZE}")
        level, index, current = 0, self._size, leaf_hash
        completed = [(level, index, current)]
        # Each trailing 1 bit of the old size is a left sibling waiting for exactly this right neighbour.
        while (self._size >> level) & 1:
            current = node_hash(self._hashes.pop(), current)
            level, index = level + 1, index >> 1
            completed.append((level, index, current))
        self._hashes.append(current)
        self._size += 1
        return completed

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        current = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            current = node_hash(left, current)
        return current

    def right_edge(self) -> list[tuple[int, int, bytes]]:
        ids = _right_edge_ids(self._size)
        return [(level, index, node) for (level, index), node in zip(ids, self._hashes, strict=True)]


def _right_edge_ids(size: int) -> list[tuple[int, int]]:
    ids: list[tuple[int, int]] = []
    start = 0
    for level in reversed(range(size.bit_length())):
        if (size >> level) & 1:
            ids.append((level, start >> level))
            start += 1 << level
    return ids


class MemoryNodes:
    """An in-memory node store for tests and offline tools: every perfect node, keyed by (level, index)."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._range = CompactRange()

    @property
    def size(self) -> int:
        return self._range.size

    def append(self, leaf_hash: bytes) -> int:
        """Store a leaf hash and the nodes it completes; return its leaf index."""
        index = self._range.size
        for level, node_index, node in self._range.append(leaf_hash):
            self._nodes[(level, node_index)] = node
        return index

    def get_node(self, level: int, index: int) -> bytes:
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise KeyError(f"no perfect node at level {level}, index {index} in a tree of size {self.size}") from None

    def root(self) -> bytes:
        return self._range.root()
