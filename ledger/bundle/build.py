"""Build a compliance bundle: selected sealed events with inclusion proofs under signed checkpoints, consistency
proofs between those checkpoints, and the verifier key, as an in-toto Statement in a DSSE envelope.

Upholds DESIGN guarantee 1 for exports: every event is proven against a checkpoint the ledger key signed, and the
builder checks each proof before it signs, so it never signs a bundle that does not verify. It only reads the
log. Output is deterministic for the same inputs. docs/bundle.md describes the format.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise
from typing import Any

import orjson
from pydantic import ValidationError

from ledger.bundle.dsse import sign_envelope
from ledger.bundle.format import (
    BUNDLE_FORMAT,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    BundledEvent,
    BundlePredicate,
    CheckpointEntry,
    ConsistencyEntry,
    EventKey,
    InclusionEntry,
    Statement,
    StreamSeqs,
    Subject,
    SubjectDigest,
    first_problem,
    shown,
)
from ledger.canonical import event_hash
from ledger.checkpoint import Checkpoint, open_checkpoint, origin_for
from ledger.errors import ConfigError, LedgerError, ProofError, UsageError, VerificationFailed
from ledger.keys import SignerKey, VerifierKey
from ledger.log.base import Checkpointed, LogBackend
from ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)


@dataclass(frozen=True)
class _Selected:
    key: EventKey
    event: dict[str, Any]


@dataclass(frozen=True)
class _SignedCheckpoint:
    stored: Checkpointed
    opened: Checkpoint  # the note opened with the signer's own verifier key


class _NodeSource:
    """The Merkle nodes of one partition for one build, each obtained once.

    A node over leaves that are all selected is hashed from the selected events' own hashes; any other node is
    fetched from the backend. A dense selection so costs almost no fetches. Nodes computed from the caller's
    events are safe to use because every proof is checked against the signed root before the bundle is signed.
    """

    def __init__(self, log: LogBackend, partition: int, members: list[_Selected]) -> None:
        self._log = log
        self._partition = partition
        self._nodes: dict[tuple[int, int], bytes] = {
            (0, item.key.log.index): leaf_hash(bytes.fromhex(item.key.digest_hex)) for item in members
        }
        self._selected = sorted(item.key.log.index for item in members)

    def get(self, level: int, index: int) -> bytes:
        node = self._nodes.get((level, index))
        if node is None:
            if level > 0 and self._all_selected(index << level, (index + 1) << level):
                node = node_hash(self.get(level - 1, 2 * index), self.get(level - 1, 2 * index + 1))
            else:
                node = self._log.get_node(self._partition, level, index)
            self._nodes[(level, index)] = node
        return node

    def _all_selected(self, lo: int, hi: int) -> bool:
        return bisect_left(self._selected, hi) - bisect_left(self._selected, lo) == hi - lo

    def stored_leaf(self, index: int) -> bytes:
        """The leaf the backend itself holds at `index` (to name an event that is not the log's)."""
        return self._log.get_node(self._partition, 0, index)


def build_bundle(
    log: LogBackend, events: Sequence[dict[str, Any]], signer: SignerKey, *, selection: dict[str, Any]
) -> bytes:
    """The JSON bytes of a DSSE envelope holding `events` (full sealed envelopes, any order) with their proofs.

    `selection` describes how the events were chosen (e.g. {"mission": "m-1"}); it is carried as `created_from`.
    Raises UsageError for input that is not sealed events of this log, ConfigError when an event is not yet
    covered by a signed checkpoint or a checkpoint is not signed by `signer`, and VerificationFailed when an
    event does not match what the log holds.
    """
    _check_selection(selection)
    selected = _sorted_events(log.log_id, events)
    verifier = signer.verifier()
    checkpoints: list[CheckpointEntry] = []
    consistency: list[ConsistencyEntry] = []
    bundled: dict[tuple[str, str, int], BundledEvent] = {}
    for partition, members in _by_partition(selected):
        chain = _choose_checkpoints(log, partition, members, verifier)
        nodes = _NodeSource(log, partition, members)
        checkpoints.extend(
            CheckpointEntry(partition=partition, tree_size=cp.stored.tree_size, note=cp.stored.note) for cp in chain
        )
        for item, proven in zip(members, _prove(partition, members, chain[-1], nodes), strict=True):
            bundled[item.key.order] = proven
        consistency.extend(_consistency_entries(partition, chain, nodes))
    statement = Statement(
        statement_type=STATEMENT_TYPE,
        subject=[_subject(item.key) for item in selected],
        predicate_type=PREDICATE_TYPE,
        predicate=BundlePredicate(
            format=BUNDLE_FORMAT,
            log_id=log.log_id,
            verifier_key=verifier.text(),
            created_from=selection,
            streams=_stream_seqs(selected),
            checkpoints=sorted(checkpoints, key=lambda entry: (entry.partition, entry.tree_size)),
            consistency=consistency,
            events=[bundled[item.key.order] for item in selected],
        ),
    )
    envelope = sign_envelope(PAYLOAD_TYPE, _json(statement.model_dump(mode="json", by_alias=True)), signer)
    return _json(envelope.model_dump(mode="json", by_alias=True))


def _subject(key: EventKey) -> Subject:
    return Subject(name=key.subject_name, digest=SubjectDigest(sha256=key.digest_hex))


def _json(value: dict[str, Any]) -> bytes:
    # Sorted keys make the bytes independent of the key order of the caller's event and selection dicts.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _check_selection(selection: dict[str, Any]) -> None:
    if not isinstance(selection, dict):
        raise UsageError("the selection must be a JSON object describing how the events were chosen")
    try:
        orjson.dumps(selection)
    except TypeError as error:
        raise UsageError(f"the selection is not JSON: {error}") from None


def _sorted_events(log_id: str, events: Sequence[dict[str, Any]]) -> list[_Selected]:
    """The events in bundle order (tenant, stream, seq), each once; refuse anything but sealed events of this log."""
    if not events:
        raise UsageError("nothing to bundle: the selection holds no events")
    selected: dict[tuple[str, str, int], _Selected] = {}
    for number, event in enumerate(events):
        try:
            key = EventKey.model_validate(event)
        except ValidationError as error:
            raise UsageError(f"event {number} is not a sealed envelope: {first_problem(error)}") from None
        if key.log.log_id != log_id:
            raise UsageError(f"event {shown(key.subject_name)} belongs to log {shown(key.log.log_id)}, not {log_id}")
        earlier = selected.get(key.order)
        if earlier is not None and earlier.key.hash != key.hash:
            raise UsageError(f"two different events are given as {shown(key.subject_name)}")
        selected[key.order] = _Selected(key, event)
    return [selected[order] for order in sorted(selected)]


def _by_partition(selected: list[_Selected]) -> Iterator[tuple[int, list[_Selected]]]:
    by_partition: dict[int, list[_Selected]] = {}
    for item in selected:
        by_partition.setdefault(item.key.log.partition, []).append(item)
    yield from sorted(by_partition.items())


def _choose_checkpoints(
    log: LogBackend, partition: int, members: list[_Selected], verifier: VerifierKey
) -> list[_SignedCheckpoint]:
    """The checkpoints a partition's events are proven under: the smallest covering its largest selected index,
    preceded by the earliest covering its smallest selected index when that is a different one."""
    stored = sorted({cp.tree_size: cp for cp in log.checkpoints(partition)}.values(), key=lambda cp: cp.tree_size)
    first = min(members, key=lambda item: item.key.log.index)
    last = max(members, key=lambda item: item.key.log.index)
    proven_under = next((cp for cp in stored if cp.tree_size > last.key.log.index), None)
    if proven_under is None:
        sealed = stored[-1].tree_size if stored else 0
        uncovered = min((item for item in members if item.key.log.index >= sealed), key=lambda item: item.key.log.index)
        where = f"partition {partition}, log index {uncovered.key.log.index}"
        raise ConfigError(
            f"event {shown(uncovered.key.subject_name)} ({where}) is not covered by a signed checkpoint yet (the "
            f"partition is sealed up to tree size {sealed}); seal the ledger first (Ledger.seal(), or wait for the "
            "sequencer's next checkpoint; `agent-ledger checkpoint` shows it)"
        )
    earliest = next(cp for cp in stored if cp.tree_size > first.key.log.index)
    chain = [proven_under] if earliest is proven_under else [earliest, proven_under]
    return [_open(log.log_id, partition, cp, verifier) for cp in chain]


def _open(log_id: str, partition: int, stored: Checkpointed, verifier: VerifierKey) -> _SignedCheckpoint:
    try:
        opened = open_checkpoint(stored.note, verifier, expected_origin=origin_for(log_id, partition))
    except LedgerError as error:
        raise ConfigError(
            f"the stored checkpoint of partition {partition} at tree size {stored.tree_size} does not open with the "
            f"signing key's verifier key {verifier.key_hash_text} ({error}); is this the ledger's key?"
        ) from None
    if opened.size != stored.tree_size:
        raise ConfigError(
            f"the stored checkpoint of partition {partition} at tree size {stored.tree_size} signs tree size "
            f"{opened.size}; run `agent-ledger verify`"
        )
    return _SignedCheckpoint(stored, opened)


def _consistency_entries(
    partition: int, chain: list[_SignedCheckpoint], nodes: _NodeSource
) -> Iterator[ConsistencyEntry]:
    for older, newer in pairwise(chain):
        old_size, new_size = older.stored.tree_size, newer.stored.tree_size
        proof = consistency_proof(old_size, new_size, nodes.get)
        try:
            verify_consistency(old_size, new_size, older.opened.root_hash, newer.opened.root_hash, proof)
        except ProofError as error:
            raise VerificationFailed(
                f"partition {partition}: the signed checkpoints of tree size {old_size} and {new_size} are not "
                f"consistent with the log's Merkle nodes ({error}); run `agent-ledger verify`"
            ) from None
        yield ConsistencyEntry(partition=partition, old_size=old_size, new_size=new_size, proof=proof)


def _prove(
    partition: int, members: list[_Selected], under: _SignedCheckpoint, nodes: _NodeSource
) -> list[BundledEvent]:
    """The partition's events with their inclusion proofs, each checked against the signed root so that a bundle is
    never signed around an event the log does not hold."""
    size, root = under.stored.tree_size, under.opened.root_hash
    for item in members:
        if event_hash(item.event) != item.key.hash:
            raise VerificationFailed(f"event {shown(item.key.subject_name)}: its hash does not match its content")
    bundled = []
    for item in members:
        index = item.key.log.index
        path = inclusion_proof(index, size, nodes.get)
        try:
            verify_inclusion(leaf_hash(bytes.fromhex(item.key.digest_hex)), index, size, path, root)
        except ProofError as error:
            raise _not_in_log(partition, members, nodes, size, error) from None
        proof = InclusionEntry(partition=partition, index=index, tree_size=size, path=path)
        bundled.append(BundledEvent(event=item.event, proof=proof))
    return bundled


def _not_in_log(
    partition: int, members: list[_Selected], nodes: _NodeSource, size: int, error: ProofError
) -> VerificationFailed:
    """Name the given event that is not the log's own (a proof may fail on a neighbour's computed node)."""
    for item in members:
        if nodes.stored_leaf(item.key.log.index) != leaf_hash(bytes.fromhex(item.key.digest_hex)):
            return VerificationFailed(
                f"event {shown(item.key.subject_name)} is not the event the log holds at partition {partition} log "
                f"index {item.key.log.index}"
            )
    return VerificationFailed(
        f"partition {partition}: the log's Merkle nodes do not lead to the signed root of tree size {size} ({error});"
        " run `agent-ledger verify`"
    )


def _stream_seqs(selected: list[_Selected]) -> list[StreamSeqs]:
    """Each stream's selected seqs as maximal runs [first, last]; `selected` is in bundle order."""
    streams = []
    for (tenant, stream), items in groupby(selected, key=lambda item: (item.key.tenant, item.key.stream)):
        runs: list[tuple[int, int]] = []
        for item in items:
            seq = item.key.seq
            if runs and runs[-1][1] == seq - 1:
                runs[-1] = (runs[-1][0], seq)
            else:
                runs.append((seq, seq))
        streams.append(StreamSeqs(tenant=tenant, stream=stream, seqs=runs))
    return streams
