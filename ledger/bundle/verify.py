"""Verify a compliance bundle offline against a pinned verifier key, naming the first bad item precisely.

This is `agent-ledger verify-bundle` (DESIGN.md, "Audit and compliance"; guarantee 1): it needs no ledger and
imports nothing from the log backends. Checks run in the fixed order of docs/bundle.md ("Verification"), from
the envelope signature down to every inclusion proof, so a tampered bundle always fails with the same reason.
It never repairs, skips or trusts an unsigned part: any failure raises VerificationFailed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby, pairwise
from typing import Any

import orjson
from pydantic import ValidationError

from ledger.bundle.dsse import open_envelope
from ledger.bundle.format import (
    PAYLOAD_TYPE,
    BundledEvent,
    BundlePredicate,
    ConsistencyEntry,
    DsseEnvelope,
    EventKey,
    Statement,
    StreamSeqs,
    Subject,
    first_problem,
    shown,
)
from ledger.canonical import event_hash
from ledger.checkpoint import Checkpoint, open_checkpoint, origin_for
from ledger.errors import LedgerError, ProofError, UsageError, VerificationFailed
from ledger.keys import VerifierKey
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from schemas.envelope import ZERO_HASH

Roots = dict[tuple[int, int], bytes]
"""(partition, tree size) -> root hash of every checkpoint in the bundle, once its signature verified."""


@dataclass(frozen=True)
class BundleReport:
    """What a verified bundle proves: counts, the log, the checkpoints and the selection it was made from."""

    events: int
    streams: int
    partitions: int
    checkpoints: int
    selection: dict[str, Any]
    log_id: str
    signed_by: str  # key hash text `<name>+<8 hex key id>` of the pinned key
    tree_sizes: dict[int, list[int]] = field(default_factory=dict)  # partition -> checkpoint sizes, increasing
    stream_seqs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # "tenant/stream" -> [first, last]

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": True,
            "events": self.events,
            "streams": self.streams,
            "partitions": self.partitions,
            "checkpoints": self.checkpoints,
            "log_id": self.log_id,
            "signed_by": self.signed_by,
            "tree_sizes": {str(partition): sizes for partition, sizes in self.tree_sizes.items()},
            "stream_seqs": {name: [list(run) for run in runs] for name, runs in self.stream_seqs.items()},
            "selection": self.selection,
        }


def verify_bundle(data: bytes, pinned: VerifierKey, *, known_checkpoints: Sequence[str] = ()) -> BundleReport:
    """Check a bundle end to end; raise VerificationFailed with a one-line reason at the first bad item.

    `known_checkpoints` are signed notes the caller saw before (e.g. from `agent-ledger checkpoint`): a bundle
    whose latest checkpoint of a partition is older than one of them is "rolled back", and one that disagrees
    with one of the same size is a "split view". Notes of other logs are ignored; a note that does not verify
    with the pinned key is the caller's mistake (UsageError).
    """
    envelope = _parse_envelope(data)
    statement = _parse_statement(open_envelope(envelope, pinned))
    predicate = statement.predicate
    if predicate.verifier_key != pinned.text():
        raise VerificationFailed(
            f"the bundle names verifier key {shown(predicate.verifier_key)}, not the pinned {pinned.key_hash_text}"
        )
    roots = _verify_checkpoints(predicate, pinned)
    _check_known(predicate.log_id, roots, known_checkpoints, pinned)
    _verify_consistency(predicate, roots)
    keys = _verify_event_hashes(predicate)
    _verify_subjects(statement.subject, keys)
    _verify_order(keys)
    _verify_stream_seqs(predicate.streams, keys)
    _verify_chain_links(keys)
    _verify_inclusion(predicate.events, keys, roots)
    return _report(predicate, keys, roots, pinned)


def _name(number: int, key: EventKey) -> str:
    return f"event {number} ({shown(key.subject_name)}, log index {key.log.index})"


def _parse_envelope(data: bytes) -> DsseEnvelope:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise VerificationFailed(f"bundle is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise VerificationFailed("bundle is not a DSSE envelope: expected a JSON object")
    try:
        envelope = DsseEnvelope.model_validate(value)
    except ValidationError as error:
        raise VerificationFailed(f"malformed DSSE envelope: {first_problem(error)}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise VerificationFailed(f"DSSE payloadType is {shown(envelope.payload_type)!r}, expected {PAYLOAD_TYPE!r}")
    return envelope


def _parse_statement(payload: bytes) -> Statement:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise VerificationFailed(f"the signed payload is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise VerificationFailed("the signed payload is not an in-toto Statement: expected a JSON object")
    try:
        return Statement.model_validate(value)
    except ValidationError as error:
        raise VerificationFailed(f"malformed statement: {first_problem(error)}") from None


def _verify_checkpoints(predicate: BundlePredicate, pinned: VerifierKey) -> Roots:
    """Open every checkpoint with the pinned key under its origin; refuse duplicates, split views and disorder."""
    roots: Roots = {}
    order: list[tuple[int, int]] = []
    for number, entry in enumerate(predicate.checkpoints):
        where = f"checkpoint {number} (partition {entry.partition}, tree size {entry.tree_size})"
        checkpoint = _open_checkpoint(where, entry.note, predicate.log_id, entry.partition, pinned)
        if checkpoint.size != entry.tree_size:
            raise VerificationFailed(f"{where}: its signed note is for tree size {checkpoint.size}")
        place = (entry.partition, entry.tree_size)
        seen = roots.get(place)
        if seen is not None and seen != checkpoint.root_hash:
            raise VerificationFailed(
                f"partition {entry.partition}: two signed checkpoints of tree size {entry.tree_size} with different "
                "roots (split view)"
            )
        if seen is not None:
            raise VerificationFailed(f"{where}: the same checkpoint appears twice")
        roots[place] = checkpoint.root_hash
        order.append(place)
    for number, (before, after) in enumerate(pairwise(order), start=1):
        if after < before:
            raise VerificationFailed(
                f"checkpoint {number} (partition {after[0]}, tree size {after[1]}) comes after partition {before[0]} "
                f"tree size {before[1]}: checkpoints must be in increasing (partition, tree size) order"
            )
    return roots


def _open_checkpoint(where: str, note: str, log_id: str, partition: int, pinned: VerifierKey) -> Checkpoint:
    try:
        return open_checkpoint(note, pinned, expected_origin=origin_for(log_id, partition))
    except LedgerError as error:
        raise VerificationFailed(f"{where}: {error}") from None


def _check_known(log_id: str, roots: Roots, known_checkpoints: Sequence[str], pinned: VerifierKey) -> None:
    """Hold the bundle to checkpoints the caller already trusts: never older (rolled back), never different."""
    latest: dict[int, int] = {}
    for partition, size in roots:
        latest[partition] = max(size, latest.get(partition, 0))
    for number, note in enumerate(known_checkpoints):
        try:
            known = open_checkpoint(note, pinned)
        except LedgerError as error:
            raise UsageError(f"known checkpoint {number}: {error}") from None
        known_log, _, partition_text = known.origin.rpartition("/")
        if known_log != log_id or not partition_text.isdecimal() or int(partition_text) not in latest:
            continue  # a checkpoint of another log or partition says nothing about this bundle
        partition = int(partition_text)
        if known.size > latest[partition]:
            raise VerificationFailed(
                f"partition {partition}: the bundle's latest checkpoint (tree size {latest[partition]}) is older than "
                f"a known checkpoint of tree size {known.size} (rolled back)"
            )
        root = roots.get((partition, known.size))
        if root is not None and root != known.root_hash:
            raise VerificationFailed(
                f"partition {partition}: the bundle's checkpoint of tree size {known.size} has another root than a "
                "known checkpoint of that size (split view)"
            )


def _verify_consistency(predicate: BundlePredicate, roots: Roots) -> None:
    """Every two consecutive checkpoints of a partition are joined by exactly one valid consistency proof."""
    expected = {
        (partition, old, new)
        for (partition, old), (next_partition, new) in zip(sorted(roots), sorted(roots)[1:], strict=False)
        if partition == next_partition
    }
    given: dict[tuple[int, int, int], ConsistencyEntry] = {}
    for number, entry in enumerate(predicate.consistency):
        joint = (entry.partition, entry.old_size, entry.new_size)
        where = (
            f"consistency proof {number} (partition {entry.partition}, tree size {entry.old_size} to {entry.new_size})"
        )
        if joint not in expected:
            raise VerificationFailed(f"{where} does not join two consecutive checkpoints of the bundle")
        if joint in given:
            raise VerificationFailed(f"{where} appears twice")
        given[joint] = entry
    for partition, old, new in sorted(expected):
        found = given.get((partition, old, new))
        if found is None:
            raise VerificationFailed(f"partition {partition}: no consistency proof from tree size {old} to {new}")
        try:
            verify_consistency(old, new, roots[(partition, old)], roots[(partition, new)], found.proof)
        except ProofError as error:
            raise VerificationFailed(
                f"partition {partition}: consistency proof from tree size {old} to {new}: {error}"
            ) from None


def _verify_event_hashes(predicate: BundlePredicate) -> list[EventKey]:
    """Recompute every event's hash with the one implementation of the contract (ledger.canonical)."""
    keys = []
    for number, item in enumerate(predicate.events):
        try:
            key = EventKey.model_validate(item.event)
        except ValidationError as error:
            raise VerificationFailed(f"event {number}: not a sealed envelope: {first_problem(error)}") from None
        try:
            recomputed = event_hash(item.event)
        except LedgerError as error:
            raise VerificationFailed(f"{_name(number, key)}: cannot be canonicalised: {error}") from None
        if recomputed != key.hash:
            raise VerificationFailed(f"{_name(number, key)}: hash does not match its content (changed after sealing)")
        if key.log.log_id != predicate.log_id:
            raise VerificationFailed(
                f"{_name(number, key)}: sealed in log {shown(key.log.log_id)}, not in the bundle's log"
            )
        keys.append(key)
    return keys


def _verify_subjects(subjects: list[Subject], keys: list[EventKey]) -> None:
    """The statement's subjects are exactly the bundle's events: `<tenant>/<stream>#<seq>` and the hash hex."""
    wanted = {(key.subject_name, key.digest_hex) for key in keys}
    seen: set[tuple[str, str]] = set()
    for number, subject in enumerate(subjects):
        pair = (subject.name, subject.digest.sha256)
        if pair in seen:
            raise VerificationFailed(f"subject {number} ({shown(subject.name)}) appears twice")
        if pair not in wanted:
            raise VerificationFailed(
                f"subject {number} ({shown(subject.name)}, sha256 {subject.digest.sha256[:16]}…) is not an event of "
                "the bundle"
            )
        seen.add(pair)
    for number, key in enumerate(keys):
        if (key.subject_name, key.digest_hex) not in seen:
            raise VerificationFailed(f"{_name(number, key)}: not among the statement's subjects")


def _verify_order(keys: list[EventKey]) -> None:
    for number in range(1, len(keys)):
        before, key = keys[number - 1], keys[number]
        if key.order == before.order:
            raise VerificationFailed(f"{_name(number, key)}: appears twice")
        if key.order < before.order:
            raise VerificationFailed(
                f"{_name(number, key)}: comes after {shown(before.subject_name)} (reordered; the bundle order is "
                "tenant, stream, seq)"
            )


def _verify_stream_seqs(streams: list[StreamSeqs], keys: list[EventKey]) -> None:
    """Each declared stream holds every seq of its declared ranges and nothing else (catches dropped events)."""
    declared: dict[tuple[str, str], list[tuple[int, int]]] = {}
    previous_key: tuple[str, str] | None = None
    for number, entry in enumerate(streams):
        stream_key = (entry.tenant, entry.stream)
        where = f"streams entry {number} ({shown(entry.tenant)}/{shown(entry.stream)})"
        if previous_key is not None and stream_key <= previous_key:
            raise VerificationFailed(f"{where}: streams must be in increasing (tenant, stream) order, each once")
        previous_last = 0
        for first, last in entry.seqs:
            if not previous_last < first <= last:
                raise VerificationFailed(f"{where}: seq ranges must be increasing, non-overlapping [first, last] pairs")
            previous_last = last
        declared[stream_key] = entry.seqs
        previous_key = stream_key
    present: set[tuple[str, str]] = set()
    for stream_key, group in groupby(enumerate(keys), key=lambda pair: (pair[1].tenant, pair[1].stream)):
        members = list(group)
        ranges = declared.get(stream_key)
        if ranges is None:
            number, key = members[0]
            raise VerificationFailed(f"{_name(number, key)}: its stream is not declared in the bundle's streams")
        _check_runs(stream_key, ranges, members)
        present.add(stream_key)
    for (tenant, stream), ranges in declared.items():
        if (tenant, stream) not in present:
            raise VerificationFailed(
                f"{shown(tenant)}/{shown(stream)}#{ranges[0][0]} is declared in the bundle's seq ranges but missing "
                "(dropped)"
            )


def _check_runs(
    stream_key: tuple[str, str], ranges: list[tuple[int, int]], members: list[tuple[int, EventKey]]
) -> None:
    """Walk the stream's events (in seq order) against its declared ranges; linear in the events, whatever the
    ranges claim."""
    position = 0
    for first, last in ranges:
        if position < len(members) and members[position][1].seq < first:
            number, key = members[position]
            raise VerificationFailed(f"{_name(number, key)}: outside the seq ranges declared for its stream")
        expected = first
        while position < len(members) and expected <= last and members[position][1].seq == expected:
            position, expected = position + 1, expected + 1
        if expected <= last:
            tenant, stream = stream_key
            raise VerificationFailed(
                f"{shown(tenant)}/{shown(stream)}#{expected} is declared in the bundle's seq ranges but missing "
                "(dropped)"
            )
    if position < len(members):
        number, key = members[position]
        raise VerificationFailed(f"{_name(number, key)}: outside the seq ranges declared for its stream")


def _verify_chain_links(keys: list[EventKey]) -> None:
    """Where two consecutive seqs of a stream are both present, the later one names the earlier one's hash."""
    for number, key in enumerate(keys):
        before = keys[number - 1] if number else None
        if key.seq == 1 and key.prev_hash != ZERO_HASH:
            raise VerificationFailed(f"{_name(number, key)}: seq 1 but prev_hash is not the zero hash")
        linked = before is not None and before.order == (key.tenant, key.stream, key.seq - 1)
        if linked and before is not None and key.prev_hash != before.hash:
            raise VerificationFailed(
                f"{_name(number, key)}: prev_hash is not the hash of {shown(before.subject_name)} (the chain is broken)"
            )


def _verify_inclusion(events: list[BundledEvent], keys: list[EventKey], roots: Roots) -> None:
    """Each event's leaf is in the tree of the checkpoint its proof names, at its own partition and log index."""
    for number, (item, key) in enumerate(zip(events, keys, strict=True)):
        proof = item.proof
        if (proof.partition, proof.index) != (key.log.partition, key.log.index):
            raise VerificationFailed(
                f"{_name(number, key)}: its proof is for partition {proof.partition} log index {proof.index}, but "
                f"the event was sealed at partition {key.log.partition} log index {key.log.index}"
            )
        root = roots.get((proof.partition, proof.tree_size))
        if root is None:
            raise VerificationFailed(
                f"{_name(number, key)}: its proof names tree size {proof.tree_size}, which is not a checkpoint of "
                f"partition {proof.partition} in the bundle"
            )
        try:
            verify_inclusion(leaf_hash(bytes.fromhex(key.digest_hex)), proof.index, proof.tree_size, proof.path, root)
        except ProofError as error:
            raise VerificationFailed(f"{_name(number, key)}: inclusion proof: {error}") from None


def _report(predicate: BundlePredicate, keys: list[EventKey], roots: Roots, pinned: VerifierKey) -> BundleReport:
    tree_sizes: dict[int, list[int]] = {}
    for partition, size in sorted(roots):
        tree_sizes.setdefault(partition, []).append(size)
    return BundleReport(
        events=len(keys),
        streams=len(predicate.streams),
        partitions=len({key.log.partition for key in keys}),
        checkpoints=len(roots),
        selection=predicate.created_from,
        log_id=predicate.log_id,
        signed_by=pinned.key_hash_text,
        tree_sizes=tree_sizes,
        stream_seqs={f"{entry.tenant}/{entry.stream}": list(entry.seqs) for entry in predicate.streams},
    )
