"""The bodies of the HTTP write path beyond the envelope contract: batch outcomes, checkpoints, key, health.

`ledger/api/routes/` answers with these models, so the OpenAPI spec that FastAPI generates describes every
answer exactly (a client in any language can be generated from it). Submissions and receipts themselves are
`schemas.envelope.Submission` and `Receipt`. This module only describes shapes; it never reads the ledger.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Receipt


class BatchOutcome(BaseModel):
    """What became of one submission of a batch: its receipt, or its refusal (a duplicate carries both)."""

    model_config = ConfigDict(extra="forbid")

    status: int = Field(description="The HTTP status the single-event endpoint would answer: 201, 409, 422, ...")
    receipt: Receipt | None = Field(
        default=None, description="The new event's receipt; for duplicate_event_id the original event's."
    )
    error: str | None = Field(default=None, description="Reason code of a refusal, e.g. schema_violation.")
    message: str | None = Field(default=None, description="One line saying what was wrong.")


class BatchResult(BaseModel):
    """One outcome per submission, in the order they were sent."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[BatchOutcome]
    appended: int = Field(ge=0, description="Submissions appended now (duplicates excluded).")
    refused: int = Field(ge=0, description="Submissions refused, duplicates included; each is recorded.")


class CheckpointNote(BaseModel):
    """The latest signed checkpoint of one log partition."""

    model_config = ConfigDict(extra="forbid")

    partition: int = Field(ge=0)
    tree_size: int = Field(ge=0)
    recorded_at: str = Field(description="Sequencer clock when it was signed, RFC 3339 UTC.")
    note: str = Field(description="C2SP tlog-checkpoint signed note (origin, size, base64 root, signatures).")


class Checkpoints(BaseModel):
    """The latest checkpoint of each partition that has one; verify them with the verifier key."""

    model_config = ConfigDict(extra="forbid")

    log_id: str
    partitions: int = Field(ge=1, description="How many partitions the log has.")
    checkpoints: list[CheckpointNote]


class VerifierKeyText(BaseModel):
    """The ledger's public key in C2SP signed-note verifier-key text form."""

    model_config = ConfigDict(extra="forbid")

    verifier_key: str = Field(description="`<name>+<hex key id>+<base64 key>`; pin it out of band.")
    name: str
    key_id: str = Field(description="The 4-byte key id in hex.")


class Health(BaseModel):
    """Liveness: the process answers and which engine it runs on; nothing about any tenant."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]
    backend: Literal["embedded", "kafka"]
    workers: Literal["running", "stopped", "external"] = Field(
        description="Embedded: the in-process sealer and consumers; kafka: they run as their own processes."
    )
