"""Receipts with proof: the checkpoint covering an event and its RFC 9162 inclusion proof.

A receipt is what a producer keeps to show later that its event is in the log (DESIGN.md, receipts). Once an
event is covered by a signed checkpoint, its receipt carries that note and the base64 inclusion proof of the
event's leaf in the checkpointed tree. Proofs are built from the backend's stored Merkle nodes; nothing here
writes.
"""

from __future__ import annotations

import base64
from typing import Any

from ledger.log.base import LogBackend
from ledger.merkle import inclusion_proof
from ledger.sequencer import receipt_for
from schemas.envelope import Receipt


def receipt_with_proof(log: LogBackend, envelope: dict[str, Any]) -> Receipt:
    """The receipt of a stored event, with the smallest signed checkpoint that covers it and its proof."""
    receipt = receipt_for(envelope)
    partition, index = envelope["log"]["partition"], envelope["log"]["index"]
    checkpoint = log.covering_checkpoint(partition, index)
    if checkpoint is None:
        return receipt
    proof = inclusion_proof(index, checkpoint.tree_size, lambda level, i: log.get_node(partition, level, i))
    receipt.checkpoint = checkpoint.note
    receipt.inclusion_proof = [base64.b64encode(node).decode() for node in proof]
    return receipt
