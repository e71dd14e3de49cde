"""Verify a whole log: every hash, every chain link, index continuity, Merkle roots and checkpoint signatures.

Works on any `LogBackend` (guarantee 1 and 2): it streams each partition in log-index order, recomputes each
event hash with `ledger.canonical` (the one implementation), replays the Merkle tree and compares its root with
every signed checkpoint, verified against a pinned verifier key. The first failure is reported precisely, naming
the event and why. It only reads; it never repairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ledger.canonical import event_hash
from ledger.checkpoint import Checkpoint, open_checkpoint, origin_for
from ledger.errors import LedgerError, VerificationFailed
from ledger.keys import VerifierKey
from ledger.log.base import LogBackend, LogRecord, StreamHead
from ledger.merkle import CompactRange, event_leaf
from schemas.envelope import SPEC, ZERO_HASH


@dataclass
class VerifyReport:
    events: int = 0
    streams: int = 0
    checkpoints: int = 0
    sealed: dict[int, int] = field(default_factory=dict)  # partition -> size covered by its latest checkpoint
    unsealed: int = 0  # events after the latest checkpoint (only with allow_unsealed)


def _name(envelope: dict[str, object], index: int) -> str:
    return (
        f"log index {index} ({envelope.get('tenant')}/{envelope.get('stream')} seq {envelope.get('seq')}, "
        f"event_id {envelope.get('event_id')})"
    )


def _signed_checkpoints(log: LogBackend, partition: int, verifier: VerifierKey) -> dict[int, Checkpoint]:
    signed: dict[int, Checkpoint] = {}
    origin = origin_for(log.log_id, partition)
    for stored in log.checkpoints(partition):
        try:
            checkpoint = open_checkpoint(stored.note, verifier)
        except LedgerError as exc:
            raise VerificationFailed(f"checkpoint of tree size {stored.tree_size}: {exc}") from None
        if checkpoint.origin != origin:
            raise VerificationFailed(
                f"checkpoint of tree size {stored.tree_size} is for log '{checkpoint.origin}', not '{origin}'"
            )
        if checkpoint.size != stored.tree_size:
            raise VerificationFailed(
                f"checkpoint stored as tree size {stored.tree_size} signs tree size {checkpoint.size}"
            )
        signed[checkpoint.size] = checkpoint
    return signed


def _verify_event(
    log_id: str, partition: int, record: LogRecord, index: int, heads: dict[tuple[str, str], StreamHead]
) -> str:
    """Check one event against its own hash, its position and its stream's chain; return its hash."""
    try:
        envelope = orjson.loads(record.envelope_bytes)
    except orjson.JSONDecodeError:
        raise VerificationFailed(f"log index {index}: the stored event is not valid JSON") from None
    if not isinstance(envelope, dict) or envelope.get("spec") != SPEC:
        raise VerificationFailed(f"log index {index}: the stored event is not an {SPEC} envelope")
    name = _name(envelope, index)
    stored_hash = envelope.get("hash")
    try:
        recomputed = event_hash(envelope)
    except LedgerError as exc:
        raise VerificationFailed(f"{name}: cannot be canonicalised: {exc}") from None
    if recomputed != stored_hash:
        raise VerificationFailed(f"{name}: stored hash does not match its content (changed after sealing)")
    position = envelope.get("log")
    if position != {"log_id": log_id, "partition": partition, "index": index}:
        raise VerificationFailed(
            f"{name}: found at log index {index} but sealed at {position} (an event was removed, inserted or reordered)"
        )
    key = (envelope["tenant"], envelope["stream"])
    head = heads.get(key) or StreamHead(0, ZERO_HASH)
    if envelope["seq"] != head.seq + 1:
        raise VerificationFailed(f"{name}: seq follows {head.seq} in its stream (a gap or a fork)")
    if envelope["prev_hash"] != head.hash:
        raise VerificationFailed(f"{name}: prev_hash is not the hash of seq {head.seq} of its stream")
    heads[key] = StreamHead(envelope["seq"], recomputed)
    return recomputed


def verify_log(
    log: LogBackend,
    verifier: VerifierKey,
    *,
    allow_unsealed: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Raise `VerificationFailed` at the first bad event or checkpoint; return counts when all is well."""
    report = VerifyReport()
    heads: dict[tuple[str, str], StreamHead] = {}
    for partition in range(log.partition_count):
        signed = _signed_checkpoints(log, partition, verifier)
        report.checkpoints += len(signed)
        tree = CompactRange()
        for record in log.read(partition):
            sealed_hash = _verify_event(log.log_id, partition, record, tree.size, heads)
            tree.append(event_leaf(sealed_hash))
            checkpoint = signed.get(tree.size)
            if checkpoint is not None and checkpoint.root_hash != tree.root():
                raise VerificationFailed(
                    f"partition {partition}: the Merkle root of the first {tree.size} events does not match"
                    " the signed checkpoint (an event was changed, removed, inserted or reordered)"
                )
            report.events += 1
            if on_progress is not None and report.events % 10_000 == 0:
                on_progress(report.events)
        latest = max(signed, default=0)
        if latest > tree.size:
            raise VerificationFailed(
                f"partition {partition}: a signed checkpoint covers {latest} events but the log holds only "
                f"{tree.size} (events were removed)"
            )
        if latest < tree.size:
            if not allow_unsealed:
                raise VerificationFailed(
                    f"partition {partition}: {tree.size - latest} event(s) from log index {latest} on are not "
                    "covered by a signed checkpoint (forged or not yet sealed; see --allow-unsealed)"
                )
            report.unsealed += tree.size - latest
        report.sealed[partition] = latest
    report.streams = len(heads)
    if on_progress is not None:
        on_progress(report.events)
    return report
