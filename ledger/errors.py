"""The one error hierarchy of Agent Ledger.

Every user mistake or refused submission is a `LedgerError` carrying a stable `reason_code`, a one-line
message, the CLI exit code (2 bad input, 1 verification failed or refused) and the HTTP status the API maps
it to. The CLI prints `str(error)` on one line and exits; it never shows a traceback for these.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerError(Exception):
    """Base of every error a user can cause or a verification can raise."""

    reason_code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 2
    http_status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        return {"error": self.reason_code, "message": self.message}


class UsageError(LedgerError):
    """Wrong command-line usage or configuration (missing key, bad option value)."""

    reason_code = "usage"


class QueryTimeout(UsageError):
    """An auditor's query ran past the audit time limit and was stopped."""

    reason_code = "query_timeout"
    http_status = 408


class ConfigError(LedgerError):
    """The store, key or configuration on disk is missing or unusable."""

    reason_code = "config"


class SubmissionRefused(LedgerError):
    """A submission the sequencer will not append; it is recorded with its reason (DESIGN guarantee 6)."""

    reason_code = "refused"


class MalformedJson(SubmissionRefused):
    reason_code = "malformed_json"


class UnknownEventType(SubmissionRefused):
    reason_code = "unknown_type"
    http_status = 422


class UnknownSchemaVersion(SubmissionRefused):
    reason_code = "unknown_schema_version"
    http_status = 422


class SchemaViolation(SubmissionRefused):
    reason_code = "schema_violation"
    http_status = 422


class OversizedSubmission(SubmissionRefused):
    reason_code = "oversized"
    http_status = 413


class WrongTenant(SubmissionRefused):
    reason_code = "wrong_tenant"
    http_status = 403


class ProducerNotAuthenticated(SubmissionRefused):
    """A record on `ledger.intake` whose producer could not be authenticated (DESIGN guarantee 9)."""

    reason_code = "unauthenticated"
    http_status = 401


class UnsignedSubmission(ProducerNotAuthenticated):
    """The intake record carries no producer signature headers."""

    reason_code = "unsigned_submission"


class BadSignature(ProducerNotAuthenticated):
    """The signature headers are malformed, or the signature does not verify under the named key."""

    reason_code = "bad_signature"


class UnknownProducerKey(ProducerNotAuthenticated):
    """The record names a key id that is neither the ledger key nor a registered producer key."""

    reason_code = "unknown_producer_key"


class ProducerKeyNotValid(ProducerNotAuthenticated):
    """The producer key is registered, but not valid now (before its valid_from or after its expires_at)."""

    reason_code = "producer_key_not_valid"


class KeyRegistrationForbidden(SubmissionRefused):
    """A `key.registered` submission signed by a producer key: only the operator (the ledger key) registers keys."""

    reason_code = "key_registration_forbidden"
    http_status = 403


class MisroutedSubmission(SubmissionRefused):
    """A submission arrived on an intake partition that does not own its stream (a stream lives in one partition)."""

    reason_code = "wrong_partition"
    http_status = 422


class ForgedField(SubmissionRefused):
    """A submission tried to set a value only the sequencer assigns (hash, seq, prev_hash, log, recorded_at)."""

    reason_code = "sequencer_field"
    http_status = 422


class StaleExpectedSeq(SubmissionRefused):
    """Optimistic concurrency conflict (DESIGN guarantee 5)."""

    reason_code = "stale_expected_seq"
    http_status = 409


class EventIdConflict(SubmissionRefused):
    """The event_id was already used for a submission with different content."""

    reason_code = "event_id_conflict"
    http_status = 409


class DuplicateEventId(SubmissionRefused):
    """The event_id was already appended; the original receipt is returned (DESIGN guarantee 4)."""

    reason_code = "duplicate_event_id"
    http_status = 409

    def __init__(self, message: str, original_receipt: dict[str, Any]) -> None:
        super().__init__(message)
        self.original_receipt = original_receipt

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "receipt": self.original_receipt}


def refusal_from(reason_code: str, message: str, receipt: dict[str, Any] | None = None) -> SubmissionRefused:
    """Rebuild the refusal a sequencer recorded (e.g. read back from `ledger.rejected`) as its exception."""
    if reason_code == DuplicateEventId.reason_code:
        return DuplicateEventId(message, receipt or {})
    for kind in _refusal_kinds(SubmissionRefused):
        if kind.reason_code == reason_code:
            return kind(message)
    return SubmissionRefused(message)


def _refusal_kinds(root: type[SubmissionRefused]) -> list[type[SubmissionRefused]]:
    kinds = []
    for kind in root.__subclasses__():
        kinds.extend([kind, *_refusal_kinds(kind)])
    return kinds


class VerificationFailed(LedgerError):
    """The log, a proof, a checkpoint or a bundle does not verify (DESIGN guarantee 1)."""

    reason_code = "verification_failed"
    exit_code = 1
    http_status = 409


class ProofError(VerificationFailed):
    """A Merkle inclusion or consistency proof is malformed or does not match the root."""

    reason_code = "bad_proof"


class SignatureError(VerificationFailed):
    """A signed note or envelope has no valid signature by the pinned key."""

    reason_code = "bad_signature"


class CanonicalEncodingError(SchemaViolation):
    """A value cannot be encoded under RFC 8785 (NaN, infinity, an integer beyond 2**53, a lone surrogate)."""

    reason_code = "not_canonicalizable"
