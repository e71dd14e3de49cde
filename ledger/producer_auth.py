"""Producer authentication on `ledger.intake`: the signed-record wire format, signing it, and checking it.

A record written straight to intake carries, in two Kafka headers, an Ed25519 signature over a domain-separated
message of its value; the value is one submission (a JSON object) or a batch (a JSON array) signed once. The
ledger key (the operator's, which also signs checkpoints) writes any tenant; a producer key registered by a
`key.registered` event of tenant T writes only T (DESIGN guarantee 9). Each refusal is a precise
`SubmissionRefused` for the sequencer to record (guarantee 6). No Kafka here; no key material in any message.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ledger.clock import parse_timestamp
from ledger.config import Settings
from ledger.errors import (
    BadSignature,
    KeyRegistrationForbidden,
    MalformedJson,
    OversizedSubmission,
    ProducerKeyNotValid,
    ProducerNotAuthenticated,
    SchemaViolation,
    SubmissionRefused,
    UnknownProducerKey,
    UnsignedSubmission,
    UsageError,
    WrongTenant,
)
from ledger.intake import Limits, decode_submission
from ledger.keys import SignerKey, VerifierKey, b64decode_canonical, load_signer

KEY_HEADER = "agent-ledger-key"
"""Kafka header: the signer's key id, UTF-8 (the ledger key's `<name>+<8 hex>`, or a registered `key_id`)."""
SIGNATURE_HEADER = "agent-ledger-sig"
"""Kafka header: standard padded base64 of the 64-byte Ed25519 signature of `INTAKE_DOMAIN + value`."""
INTAKE_DOMAIN = b"agent-ledger/v1/intake\n"
"""Prefix of every signed message, so an intake signature can never be replayed as any other signature."""
REGISTRATION_STREAM = "keys/producers"
"""Where `agent-ledger keys producer generate` records a tenant's producer keys."""
REGISTRATION_TYPE = "key.registered"

BATCH_MAX_SUBMISSIONS = 500
"""A batch record holds at most this many submissions (the sequencer's default batch); more is refused whole."""
BATCH_MAX_BYTES = 512 * 1024
"""...and at most this many bytes, well under Kafka's default 1 MiB request and message limits."""

_MAX_KEY_ID = 200
_VERIFIER_FORM = re.compile(r"[^+\s]+\+[0-9a-fA-F]{8}\+\S+")
_REGISTRATION_MARK = b'"type":"key.registered"'  # how the canonical (RFC 8785) bytes of such an event read
_MAX_DETAIL = 200


def signing_message(value: bytes) -> bytes:
    """The bytes an intake signature covers: the domain line, then the record value exactly as sent."""
    return INTAKE_DOMAIN + value


def batch_value(encoded: Sequence[bytes]) -> bytes:
    """The record value of some encoded submissions: the object itself for one, a JSON array for more."""
    if len(encoded) == 1:
        return encoded[0]
    return b"[" + b",".join(encoded) + b"]"


class RecordSigner:
    """Signs intake record values with one key; the headers to send with the record."""

    def __init__(self, signer: SignerKey) -> None:
        self._signer = signer
        self.key_id = signer.verifier().key_hash_text
        self._key_header = self.key_id.encode("utf-8")

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        signature = base64.b64encode(self._signer.sign(signing_message(value)))
        return [(KEY_HEADER, self._key_header), (SIGNATURE_HEADER, signature)]


def intake_signer(settings: Settings) -> SignerKey | None:
    """The key an SDK or CLI producer signs intake records with: the producer key named in the settings, else
    the ledger key when this process can read it, else none (the sequencer then refuses what it sends)."""
    if settings.producer_key is not None:
        return load_signer(settings.producer_key)
    path = settings.private_key_path
    if not path.exists() or not os.access(path, os.R_OK):
        return None
    return load_signer(path)


# -- the keys a sequencer accepts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProducerKey:
    """A key that may sign intake records: the ledger key (tenant None: any tenant) or a registered producer key."""

    key_id: str
    public_key: Ed25519PublicKey = field(repr=False, compare=False)
    public_bytes: bytes = field(repr=False)
    tenant: str | None
    valid_from: datetime | None = None
    expires_at: datetime | None = None
    name: str | None = None
    registered_at: str = ""  # recorded_at of the key.registered event; the latest registration of a key wins
    event_id: str | None = None

    @classmethod
    def of_ledger(cls, verifier: VerifierKey) -> ProducerKey:
        public_key = verifier.public_key
        return cls(verifier.key_hash_text, public_key, public_key.public_bytes_raw(), None, name=verifier.name)

    def valid_at(self, now: datetime) -> bool:
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.expires_at is None or now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "tenant": self.tenant,
            "public_key": base64.b64encode(self.public_bytes).decode("ascii"),
            "name": self.name,
            "valid_from": None if self.valid_from is None else _timestamp_text(self.valid_from),
            "expires_at": None if self.expires_at is None else _timestamp_text(self.expires_at),
            "registered_at": self.registered_at,
            "event_id": self.event_id,
        }


def _timestamp_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_public_key(key_id: str, text: str) -> Ed25519PublicKey:
    """The Ed25519 key of a `key.registered` payload: the signed-note verifier-key form (whose `<name>+<hex>`
    must then be the key_id), or standard base64 of the raw 32 bytes or of a DER SubjectPublicKeyInfo."""
    verifier_error = None
    if _VERIFIER_FORM.fullmatch(text):
        try:
            verifier = VerifierKey.parse(text)
        except UsageError as error:
            verifier_error = error.message  # perhaps base64 that happens to look like it: try that next
        else:
            if verifier.key_hash_text != key_id:
                raise SchemaViolation(
                    f"key.registered key_id {key_id[:_MAX_DETAIL]!r} must be the verifier key's id "
                    f"{verifier.key_hash_text!r}"
                )
            return verifier.public_key
    try:
        raw = b64decode_canonical(text)
    except ValueError:
        raw = b""
    if len(raw) == 32:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        public_key = load_der_public_key(raw) if raw else None
    except (ValueError, UnsupportedAlgorithm):
        public_key = None
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    raise SchemaViolation(
        f"key.registered public_key: {verifier_error}"
        if verifier_error
        else "key.registered public_key must be a signed-note verifier key, or base64 of a raw 32-byte or DER "
        "Ed25519 public key"
    )


def _optional_time(payload: dict[str, Any], name: str) -> datetime | None:
    value = payload.get(name)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError):
        raise SchemaViolation(f"key.registered {name} {str(value)[:_MAX_DETAIL]!r} is not a timestamp") from None


def producer_key_from(
    tenant: str, payload: dict[str, Any], *, registered_at: str = "", event_id: str | None = None
) -> ProducerKey:
    """The producer key a `key.registered` payload of purpose producer registers to `tenant`; SchemaViolation
    when it could not be used to check a signature."""
    key_id, text = payload.get("key_id"), payload.get("public_key")
    if not isinstance(key_id, str) or not isinstance(text, str) or payload.get("algorithm") != "ed25519":
        raise SchemaViolation("key.registered of purpose producer needs key_id, public_key and algorithm ed25519")
    public_key = parse_public_key(key_id, text)
    name = payload.get("name")
    return ProducerKey(
        key_id,
        public_key,
        public_key.public_bytes_raw(),
        tenant,
        valid_from=_optional_time(payload, "valid_from"),
        expires_at=_optional_time(payload, "expires_at"),
        name=name if isinstance(name, str) else None,
        registered_at=registered_at,
        event_id=event_id,
    )


def registration_in(value: bytes) -> ProducerKey | None:
    """The producer key a sealed event registers, or None (another type, another purpose, or unusable)."""
    if _REGISTRATION_MARK not in value:  # most events: no JSON parse at all
        return None
    try:
        envelope = orjson.loads(value)
        payload = envelope["payload"]
        if envelope["type"] != REGISTRATION_TYPE or payload.get("purpose") != "producer":
            return None
        return producer_key_from(
            envelope["tenant"], payload, registered_at=envelope["recorded_at"], event_id=envelope["event_id"]
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, SchemaViolation):
        return None  # a sequencer refuses such a registration at intake; one from before that cannot sign anything


def remember(latest: dict[tuple[str, str | None], ProducerKey], key: ProducerKey) -> None:
    """Keep the latest registration of each (key id, tenant): a later one (e.g. with `expires_at`) replaces it."""
    slot = (key.key_id, key.tenant)
    known = latest.get(slot)
    if known is None or key.registered_at >= known.registered_at:
        latest[slot] = key


# -- checking a record ----------------------------------------------------------------------------------------

KeyLookup = Callable[[str], Sequence[ProducerKey]]
"""The keys registered under a key id (the ledger key among them); empty when it is unknown."""


@dataclass(frozen=True)
class Producer:
    """Who signed a record: the key id and the tenants it writes (None: any, the ledger key)."""

    key_id: str
    tenants: frozenset[str] | None


def _signature_headers(headers: Sequence[tuple[str, bytes | None]]) -> tuple[str, bytes]:
    keys = [value for name, value in headers if name == KEY_HEADER]
    signatures = [value for name, value in headers if name == SIGNATURE_HEADER]
    if not keys and not signatures:
        raise UnsignedSubmission(
            f"unsigned intake record: headers {KEY_HEADER} and {SIGNATURE_HEADER} are required (docs/kafka.md)"
        )
    if len(keys) != 1 or len(signatures) != 1:
        raise BadSignature(f"an intake record needs exactly one {KEY_HEADER} and one {SIGNATURE_HEADER} header")
    raw_key, raw_signature = keys[0] or b"", signatures[0] or b""
    try:
        key_id = raw_key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature(f"header {KEY_HEADER} is not UTF-8") from None
    if not key_id or len(key_id) > _MAX_KEY_ID:
        raise BadSignature(f"header {KEY_HEADER} must hold 1 to {_MAX_KEY_ID} characters")
    try:
        signature = b64decode_canonical(raw_signature.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadSignature(f"header {SIGNATURE_HEADER} is not canonical base64") from None
    if len(signature) != 64:
        raise BadSignature(f"header {SIGNATURE_HEADER} must hold a 64-byte Ed25519 signature")
    return key_id, signature


def _verifies(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def authenticate(
    headers: Sequence[tuple[str, bytes | None]], value: bytes, lookup: KeyLookup, now: datetime
) -> Producer:
    """Check a record's signature: one Ed25519 verification per distinct public key registered under its id."""
    key_id, signature = _signature_headers(headers)
    candidates = lookup(key_id)
    if not candidates:
        raise UnknownProducerKey(f"key {key_id!r} is neither the ledger key nor a registered producer key")
    message = signing_message(value)
    outcome: dict[bytes, bool] = {}
    signed_by = []
    for candidate in candidates:
        if candidate.public_bytes not in outcome:
            outcome[candidate.public_bytes] = _verifies(candidate.public_key, message, signature)
        if outcome[candidate.public_bytes]:
            signed_by.append(candidate)
    if not signed_by:
        raise BadSignature(f"the signature does not verify under key {key_id!r}")
    if any(candidate.tenant is None for candidate in signed_by):
        return Producer(key_id, None)
    valid = frozenset(candidate.tenant for candidate in signed_by if candidate.valid_at(now) and candidate.tenant)
    if not valid:
        raise ProducerKeyNotValid(f"producer key {key_id!r} is registered but not valid now")
    return Producer(key_id, valid)


@dataclass
class Admission:
    """What the sequencer does with one intake record: submissions to sequence, and refusals to record."""

    submissions: list[bytes | dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[bytes | dict[str, Any], SubmissionRefused]] = field(default_factory=list)


def split_record(value: bytes, limits: Limits) -> list[bytes | dict[str, Any]]:
    """The submissions of a record value: the value itself (one JSON object, parsed later) or a batch's elements.

    Raises when the record as a whole is unusable (oversized, a malformed or empty batch)."""
    if len(value) > limits.max_submission_bytes:
        raise OversizedSubmission(
            f"intake record is {len(value)} bytes; the limit is {limits.max_submission_bytes} bytes"
        )
    if value.lstrip()[:1] != b"[":
        return [value]
    try:
        elements = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON batch: {exc}") from None
    if not isinstance(elements, list) or not elements:
        raise MalformedJson("an intake batch must hold at least one submission")
    if len(elements) > BATCH_MAX_SUBMISSIONS:  # bounds one sequencer transaction, whatever a producer sends
        raise OversizedSubmission(
            f"intake batch holds {len(elements)} submissions; the limit is {BATCH_MAX_SUBMISSIONS}"
        )
    return [element if isinstance(element, dict) else orjson.dumps(element) for element in elements]


def _check_registration(fields: dict[str, Any], producer: Producer) -> None:
    """Only the operator registers keys; a producer key it registers must be usable for checking signatures."""
    if fields.get("type") != REGISTRATION_TYPE:
        return
    if producer.tenants is not None:
        raise KeyRegistrationForbidden(
            f"key.registered must be signed by the ledger key; producer key {producer.key_id!r} may not register keys"
        )
    payload = fields.get("payload")
    tenant = fields.get("tenant")
    if isinstance(payload, dict) and isinstance(tenant, str) and payload.get("purpose") == "producer":
        producer_key_from(tenant, payload)


def _admit_one(part: bytes | dict[str, Any], producer: Producer, limits: Limits) -> bytes | dict[str, Any]:
    """Refuse a submission its signer may not write; return it as it goes on to the sequencer."""
    if isinstance(part, bytes) and producer.tenants is None and b"key.registered" not in part:
        return part  # the ledger key's hot path: no parse here, intake parses it once
    fields = decode_submission(part, limits)
    _check_registration(fields, producer)
    tenant = fields.get("tenant")
    if producer.tenants is not None and isinstance(tenant, str) and tenant not in producer.tenants:
        writes = ", ".join(repr(name) for name in sorted(producer.tenants))
        raise WrongTenant(
            f"submission for tenant {tenant[:_MAX_DETAIL]!r} refused: producer key {producer.key_id!r} writes {writes}"
        )
    return part  # the exact bytes sent, so a later refusal records them as they were


def admit(
    value: bytes, headers: Sequence[tuple[str, bytes | None]], lookup: KeyLookup, limits: Limits, now: datetime
) -> Admission:
    """Authenticate one intake record and split it into submissions; refuse each one its signer may not write.

    An unauthenticated batch is refused element by element, so every waiting producer gets its answer."""
    admission = Admission()
    try:
        parts = split_record(value, limits)
    except SubmissionRefused as refusal:
        admission.refused.append((value, refusal))
        return admission
    try:
        producer = authenticate(headers, value, lookup, now)
    except ProducerNotAuthenticated as refusal:
        admission.refused.extend((part, refusal) for part in parts)
        return admission
    for part in parts:
        try:
            admission.submissions.append(_admit_one(part, producer, limits))
        except SubmissionRefused as refusal:
            admission.refused.append((part, refusal))
    return admission
