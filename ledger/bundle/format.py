"""The wire shapes of a compliance bundle: DSSE envelope, in-toto Statement v1 and the agent-ledger predicate.

These pydantic models are the boundary (DESIGN.md, "Audit and compliance"): the builder writes through them and
the verifier reads through them, so a malformed bundle is refused with the path of its first bad field. They
only describe shapes; proofs, signatures and hashes are checked in `ledger.bundle.verify`. Unknown fields are
refused everywhere, so nothing unverified can ride along. docs/bundle.md documents every field.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)

from ledger.keys import b64decode_canonical
from ledger.merkle import HASH_SIZE
from schemas.envelope import HashStr

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://agent-ledger.dev/bundle/v1"
BUNDLE_FORMAT = "agent-ledger-bundle/v1"


_CANONICAL_NODE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
"""Canonical base64 of 32 bytes: 43 digits and one '=', the last digit's two spare bits zero."""


def _decode_node(value: object) -> bytes:
    """A proof node on the wire: canonical standard base64 of exactly 32 bytes (the builder passes bytes)."""
    if isinstance(value, bytes):
        raw = value  # only Python callers give bytes: decoded JSON never holds them
    elif isinstance(value, str) and _CANONICAL_NODE.fullmatch(value):
        raw = binascii.a2b_base64(value)  # the fast path of the thousands of nodes in a large bundle
    elif isinstance(value, str):
        raw = b64decode_canonical(value)  # its ValueError names the problem; pydantic adds the location
    else:
        raise ValueError("a proof node must be a base64 string")
    if len(raw) != HASH_SIZE:
        raise ValueError(f"a proof node is {len(raw)} bytes, expected {HASH_SIZE}")
    return raw


ProofNode = Annotated[
    bytes,
    PlainValidator(_decode_node),
    PlainSerializer(lambda node: base64.b64encode(node).decode("ascii"), return_type=str),
]
"""A 32-byte Merkle node: bytes in Python, standard padded base64 in JSON."""

NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
HexDigest = Annotated[StrictStr, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- DSSE v1 (github.com/secure-systems-lab/dsse, envelope.md) ---------------------------------------------


class DsseSignature(_Shape):
    keyid: StrictStr  # the signed-note key hash text `<name>+<8 hex key id>` of the ledger key
    sig: StrictStr  # base64 of the 64-byte Ed25519 signature over the PAE


class DsseEnvelope(_Shape):
    payload_type: StrictStr = Field(alias="payloadType")
    payload: StrictStr  # base64 of the Statement JSON bytes
    signatures: list[DsseSignature] = Field(min_length=1)


# --- in-toto Statement v1 and the predicate -----------------------------------------------------------------


class SubjectDigest(_Shape):
    sha256: HexDigest


class Subject(_Shape):
    name: StrictStr  # `<tenant>/<stream>#<seq>`
    digest: SubjectDigest


class StreamSeqs(_Shape):
    """The seqs of one stream that the bundle claims to hold in full: sorted, non-overlapping [first, last]."""

    tenant: StrictStr
    stream: StrictStr
    seqs: list[tuple[PositiveInt, PositiveInt]] = Field(min_length=1)


class CheckpointEntry(_Shape):
    partition: NonNegativeInt
    tree_size: PositiveInt
    note: StrictStr  # the C2SP signed note, exactly as the ledger signed it


class ConsistencyEntry(_Shape):
    partition: NonNegativeInt
    old_size: PositiveInt
    new_size: PositiveInt
    proof: list[ProofNode]


class InclusionEntry(_Shape):
    partition: NonNegativeInt
    index: NonNegativeInt
    tree_size: PositiveInt
    path: list[ProofNode]


class BundledEvent(_Shape):
    event: dict[str, Any]  # the sealed envelope, hash included, exactly as stored
    proof: InclusionEntry


class BundlePredicate(_Shape):
    format: Literal["agent-ledger-bundle/v1"]
    log_id: StrictStr
    verifier_key: StrictStr
    created_from: dict[str, Any]
    streams: list[StreamSeqs] = Field(min_length=1)
    checkpoints: list[CheckpointEntry] = Field(min_length=1)
    consistency: list[ConsistencyEntry]
    events: list[BundledEvent] = Field(min_length=1)


class Statement(_Shape):
    statement_type: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1)
    predicate_type: Literal["https://agent-ledger.dev/bundle/v1"] = Field(alias="predicateType")
    predicate: BundlePredicate


# --- what the bundle needs of a sealed event ----------------------------------------------------------------


class EventLog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    log_id: StrictStr
    partition: NonNegativeInt
    index: NonNegativeInt


class EventKey(BaseModel):
    """The fields of a sealed envelope (DESIGN.md, "Event envelope and hashing") that place it in its stream and
    its log; the rest of the envelope only enters through its hash."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    spec: Literal["agent-ledger/v1"]  # schemas.envelope.SPEC: the hash contract below is v1's
    tenant: StrictStr
    stream: StrictStr
    seq: PositiveInt
    prev_hash: HashStr
    hash: HashStr
    log: EventLog

    @property
    def order(self) -> tuple[str, str, int]:
        """The bundle order of events: tenant, stream, seq (strings compare by code point)."""
        return (self.tenant, self.stream, self.seq)

    @property
    def subject_name(self) -> str:
        return f"{self.tenant}/{self.stream}#{self.seq}"

    @property
    def digest_hex(self) -> str:
        return self.hash.removeprefix("sha256:")


def shown(text: str, limit: int = 80) -> str:
    """Bundle text fit for a one-line message: control characters escaped, long text cut."""
    cut = text[:limit]
    escaped = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in cut)
    return escaped + ("…" if len(text) > limit else "")


def first_problem(error: ValidationError) -> str:
    """One line for the first problem pydantic found: `<dotted location>: <message>`."""
    detail = error.errors(include_url=False, include_input=False)[0]
    location = ".".join(shown(str(part), 40) for part in detail["loc"]) or "(top level)"
    message = shown(str(detail["msg"]).removeprefix("Value error, "), 200)
    return f"{location}: {message}"
