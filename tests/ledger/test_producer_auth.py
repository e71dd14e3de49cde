"""Producer authentication without a broker: the intake wire format, the signature check, and the tenant rule.

Each attack on a signed intake record is one named case (no headers, a flipped byte of the value or of the
signature, a key registered to another tenant, an unknown key id, a producer key registering keys, ...) and must
be refused with its precise reason (DESIGN guarantees 6 and 9). The registrations come from real `key.registered`
events sealed by the embedded ledger, read back as stored.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from factories import step
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ledger.config import Settings
from ledger.errors import (
    BadSignature,
    KeyRegistrationForbidden,
    MalformedJson,
    OversizedSubmission,
    ProducerKeyNotValid,
    SchemaViolation,
    SubmissionRefused,
    UnknownProducerKey,
    UnsignedSubmission,
    WrongTenant,
    refusal_from,
)
from ledger.intake import Limits
from ledger.keys import SignerKey, write_key_pair, write_signer_file
from ledger.producer_auth import (
    INTAKE_DOMAIN,
    KEY_HEADER,
    REGISTRATION_STREAM,
    SIGNATURE_HEADER,
    ProducerKey,
    RecordSigner,
    admit,
    authenticate,
    batch_value,
    intake_signer,
    parse_public_key,
    registration_in,
    remember,
    signing_message,
)
from ledger.sdk import Ledger
from schemas.examples import EXAMPLES

# golang.org/x/mod/sumdb/note test key: a fixed signer makes a fixed (RFC 8032 deterministic) signature.
PETER_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GOLDEN_VALUE = b'{"tenant":"acme","stream":"mission/m-1","type":"mission.step.recorded"}'
GOLDEN_HEADERS = [
    ("agent-ledger-key", b"PeterNeumann+c74f20a3"),
    (
        "agent-ledger-sig",
        b"ckx6Dlx52eSqw+iGu0qPng/SXsYJPrAb6soSf1jAEjusbWyBoeKPzdFYt6w3gHHdkdXZIq7CVIJ3X49qEzF+DA==",
    ),
]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Limits()

LEDGER = SignerKey.generate("test-ledger")
ACME = SignerKey.generate("acme-ci")
GLOBEX = SignerKey.generate("globex-ci")
STRANGER = SignerKey.generate("acme-stranger")  # never registered


def registered(signer: SignerKey, tenant: str, **window: datetime) -> ProducerKey:
    public_key = signer.private_key.public_key()
    return ProducerKey(signer.verifier().key_hash_text, public_key, public_key.public_bytes_raw(), tenant, **window)


def lookup_of(*keys: ProducerKey) -> Callable[[str], Sequence[ProducerKey]]:
    table: dict[str, list[ProducerKey]] = {}
    for key in (ProducerKey.of_ledger(LEDGER.verifier()), *keys):
        table.setdefault(key.key_id, []).append(key)
    return lambda key_id: table.get(key_id, [])


LOOKUP = lookup_of(registered(ACME, "acme"), registered(GLOBEX, "globex"))


def signed(signer: SignerKey, value: bytes) -> list[tuple[str, bytes]]:
    return RecordSigner(signer).headers(value)


def value_of(*submissions: dict[str, Any]) -> bytes:
    return batch_value([orjson.dumps(submission) for submission in submissions])


def refusal_codes(admission_refused: Sequence[tuple[object, SubmissionRefused]]) -> list[str]:
    return [refusal.reason_code for _, refusal in admission_refused]


# -- the wire format -----------------------------------------------------------------------------------------


def test_golden_record_signature_pins_the_wire_format() -> None:
    assert RecordSigner(SignerKey.parse(PETER_SIGNER)).headers(GOLDEN_VALUE) == GOLDEN_HEADERS
    assert signing_message(b"{}") == b"agent-ledger/v1/intake\n{}" == INTAKE_DOMAIN + b"{}"
    assert (KEY_HEADER, SIGNATURE_HEADER) == ("agent-ledger-key", "agent-ledger-sig")


def test_batch_value_is_the_object_itself_for_one_and_a_json_array_for_more() -> None:
    assert batch_value([b'{"a":1}']) == b'{"a":1}'
    assert orjson.loads(batch_value([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]


def test_signature_covers_the_domain_so_a_bare_signature_of_the_value_is_refused() -> None:
    value = value_of(step())
    bare = base64.b64encode(ACME.sign(value))  # no domain line: e.g. a signature made for another protocol
    with pytest.raises(BadSignature):
        authenticate(
            [(KEY_HEADER, b"acme-ci+" + ACME.key_id.hex().encode()), (SIGNATURE_HEADER, bare)], value, LOOKUP, NOW
        )


# -- authentication: each attack, its reason ----------------------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _flipped_signature(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    signature = base64.b64decode(headers[1][1])
    return [headers[0], (SIGNATURE_HEADER, base64.b64encode(_flip(signature, 10)))]


VALUE = value_of(step(event_id="e-1"))
ATTACKS: dict[str, tuple[list[tuple[str, bytes]], bytes, type[SubmissionRefused]]] = {
    "no-headers": ([], VALUE, UnsignedSubmission),
    "unrelated-headers-only": ([("traceparent", b"00-abc")], VALUE, UnsignedSubmission),
    "signature-without-key-id": ([signed(ACME, VALUE)[1]], VALUE, BadSignature),
    "key-id-without-signature": ([signed(ACME, VALUE)[0]], VALUE, BadSignature),
    "two-signatures": ([*signed(ACME, VALUE), signed(ACME, VALUE)[1]], VALUE, BadSignature),
    "flipped-value-byte": (signed(ACME, VALUE), _flip(VALUE, 20), BadSignature),
    "flipped-signature-byte": (_flipped_signature(signed(ACME, VALUE)), VALUE, BadSignature),
    "truncated-signature": (
        [signed(ACME, VALUE)[0], (SIGNATURE_HEADER, base64.b64encode(b"x" * 63))],
        VALUE,
        BadSignature,
    ),
    "non-canonical-base64-signature": (
        [signed(ACME, VALUE)[0], (SIGNATURE_HEADER, signed(ACME, VALUE)[1][1].rstrip(b"="))],
        VALUE,
        BadSignature,
    ),
    "non-utf8-key-id": ([(KEY_HEADER, b"\xff\xfe"), signed(ACME, VALUE)[1]], VALUE, BadSignature),
    "empty-key-id": ([(KEY_HEADER, b""), signed(ACME, VALUE)[1]], VALUE, BadSignature),
    "unknown-key-id": (signed(STRANGER, VALUE), VALUE, UnknownProducerKey),
    "registered-key-id-signed-by-another-key": (
        [signed(ACME, VALUE)[0], signed(STRANGER, VALUE)[1]],
        VALUE,
        BadSignature,
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_on_the_signature_is_refused_with_its_reason(attack: str) -> None:
    headers, value, refusal = ATTACKS[attack]
    with pytest.raises(refusal) as refused:
        authenticate(headers, value, LOOKUP, NOW)
    assert refused.value.http_status == 401
    assert "PRIVATE" not in str(refused.value)
    admission = admit(value, headers, LOOKUP, LIMITS, NOW)  # the sequencer's view: recorded, never raised
    assert admission.submissions == []
    assert refusal_codes(admission.refused) == [refusal.reason_code]


def test_ledger_key_writes_any_tenant_and_a_producer_key_only_its_own() -> None:
    assert authenticate(signed(LEDGER, VALUE), VALUE, LOOKUP, NOW).tenants is None
    assert authenticate(signed(ACME, VALUE), VALUE, LOOKUP, NOW).tenants == frozenset({"acme"})


def test_producer_key_of_another_tenant_is_refused_as_wrong_tenant() -> None:
    value = value_of(step(tenant="acme"))
    admission = admit(value, signed(GLOBEX, value), LOOKUP, LIMITS, NOW)
    assert admission.submissions == []
    assert refusal_codes(admission.refused) == ["wrong_tenant"]
    assert admission.refused[0][1].http_status == 403
    assert "globex" in str(admission.refused[0][1])


def test_expired_and_not_yet_valid_producer_keys_are_refused() -> None:
    expired = lookup_of(registered(ACME, "acme", expires_at=NOW - timedelta(seconds=1)))
    early = lookup_of(registered(ACME, "acme", valid_from=NOW + timedelta(days=1)))
    for lookup in (expired, early):
        with pytest.raises(ProducerKeyNotValid):
            authenticate(signed(ACME, VALUE), VALUE, lookup, NOW)


def test_key_registered_to_two_tenants_writes_both() -> None:
    lookup = lookup_of(registered(ACME, "acme"), registered(ACME, "acme-eu"))
    value = value_of(step(tenant="acme"), step(tenant="acme-eu"), step(tenant="globex"))
    admission = admit(value, signed(ACME, value), lookup, LIMITS, NOW)
    assert len(admission.submissions) == 2
    assert refusal_codes(admission.refused) == ["wrong_tenant"]


# -- records: single, batch, malformed ----------------------------------------------------------------------


def test_single_submission_by_the_ledger_key_passes_through_unparsed() -> None:
    value = value_of(step())
    admission = admit(value, signed(LEDGER, value), LOOKUP, LIMITS, NOW)
    assert admission.submissions == [value] and admission.refused == []


def test_batch_signed_once_admits_every_submission() -> None:
    value = value_of(*(step(event_id=f"b-{i}") for i in range(3)))
    admission = admit(value, signed(ACME, value), LOOKUP, LIMITS, NOW)
    assert [fields["event_id"] for fields in admission.submissions] == ["b-0", "b-1", "b-2"]  # type: ignore[index]


def test_batch_with_another_tenants_submission_refuses_that_one() -> None:
    value = value_of(step(event_id="ok-1"), step(tenant="globex", event_id="smuggled"), step(event_id="ok-2"))
    admission = admit(value, signed(ACME, value), LOOKUP, LIMITS, NOW)
    assert [fields["event_id"] for fields in admission.submissions] == ["ok-1", "ok-2"]  # type: ignore[index]
    [(raw, refusal)] = admission.refused
    assert isinstance(refusal, WrongTenant) and raw["event_id"] == "smuggled"  # type: ignore[index]


def test_unsigned_batch_is_refused_element_by_element() -> None:
    value = value_of(step(event_id="u-1"), step(event_id="u-2"))
    admission = admit(value, [], LOOKUP, LIMITS, NOW)
    assert [raw["event_id"] for raw, _ in admission.refused] == ["u-1", "u-2"]  # type: ignore[index]
    assert refusal_codes(admission.refused) == ["unsigned_submission"] * 2


@pytest.mark.parametrize(
    ("name", "value", "refusal"),
    [
        ("empty-batch", b"[]", MalformedJson),
        ("truncated-batch", b'[{"tenant":"acme"},', MalformedJson),
        ("oversized-record", b"[" + b" " * LIMITS.max_submission_bytes + b"]", OversizedSubmission),
        ("too-many-submissions", b"[" + b",".join([b"{}"] * 501) + b"]", OversizedSubmission),
        ("array-then-garbage", b"[1] 2", MalformedJson),
    ],
)
def test_unusable_record_is_refused_whole(name: str, value: bytes, refusal: type[SubmissionRefused]) -> None:
    admission = admit(value, signed(ACME, value), LOOKUP, LIMITS, NOW)
    assert admission.submissions == []
    assert [(raw, type(error)) for raw, error in admission.refused] == [(value, refusal)]


def test_non_object_batch_element_is_refused_alone() -> None:
    value = b"[" + orjson.dumps(step(event_id="fine")) + b",42]"
    admission = admit(value, signed(ACME, value), LOOKUP, LIMITS, NOW)
    assert len(admission.submissions) == 1
    assert refusal_codes(admission.refused) == ["malformed_json"]


# -- key registration: only the operator ---------------------------------------------------------------------


def key_registration(tenant: str, signer: SignerKey, **payload: Any) -> dict[str, Any]:
    verifier = signer.verifier()
    return {
        "tenant": tenant,
        "stream": REGISTRATION_STREAM,
        "type": "key.registered",
        "actor": {"kind": "human", "id": "operator"},
        "payload": {
            "key_id": verifier.key_hash_text,
            "purpose": "producer",
            "algorithm": "ed25519",
            "public_key": verifier.text(),
            **payload,
        },
    }


def test_producer_key_may_not_register_keys() -> None:
    value = value_of(key_registration("acme", STRANGER))
    admission = admit(value, signed(ACME, value), LOOKUP, LIMITS, NOW)
    assert refusal_codes(admission.refused) == ["key_registration_forbidden"]
    assert isinstance(admission.refused[0][1], KeyRegistrationForbidden)


def test_ledger_key_registers_a_key_only_when_it_can_check_signatures() -> None:
    good = value_of(key_registration("acme", STRANGER))
    assert len(admit(good, signed(LEDGER, good), LOOKUP, LIMITS, NOW).submissions) == 1
    mismatched = value_of(key_registration("acme", STRANGER, key_id="acme-ci+00000000"))
    admission = admit(mismatched, signed(LEDGER, mismatched), LOOKUP, LIMITS, NOW)
    assert refusal_codes(admission.refused) == ["schema_violation"]


def test_public_key_forms_verifier_text_raw_base64_and_der() -> None:
    verifier = STRANGER.verifier()
    raw = verifier.public_key.public_bytes_raw()
    assert parse_public_key(verifier.key_hash_text, verifier.text()).public_bytes_raw() == raw
    assert parse_public_key("any-id", base64.b64encode(raw).decode()).public_bytes_raw() == raw
    example = EXAMPLES["key.registered"].payload
    parse_public_key(example["key_id"], example["public_key"])  # the schema's own example: DER SPKI
    with pytest.raises(SchemaViolation):
        parse_public_key(verifier.key_hash_text, "not a key")
    with pytest.raises(SchemaViolation):
        parse_public_key("other+00000000", verifier.text())


# -- registrations read from the log --------------------------------------------------------------------------


def test_registration_is_read_back_from_a_sealed_key_registered_event(ledger: Ledger) -> None:
    ledger.append(key_registration("acme", ACME, expires_at="2030-01-01T00:00:00.000000Z"))
    ledger.append(
        key_registration("acme", GLOBEX)
        | {"payload": {**key_registration("acme", GLOBEX)["payload"], "purpose": "verifier"}}
    )
    ledger.append(step())
    found = [registration_in(record.envelope_bytes) for record in ledger.records()]
    keys = [key for key in found if key is not None]
    assert [(key.key_id, key.tenant) for key in keys] == [(ACME.verifier().key_hash_text, "acme")]
    assert keys[0].expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert authenticate(signed(ACME, VALUE), VALUE, lookup_of(*keys), NOW).tenants == frozenset({"acme"})


def test_latest_registration_of_a_key_and_tenant_wins() -> None:
    first = registered(ACME, "acme")
    revoked = ProducerKey(**{**first.__dict__, "expires_at": NOW, "registered_at": "2026-11-25T12:00:00.000000Z"})
    latest: dict[tuple[str, str | None], ProducerKey] = {}
    remember(latest, revoked)
    remember(latest, first)  # an older registration read later does not bring the key back
    assert latest[(first.key_id, "acme")].expires_at == NOW


# -- which key the SDK signs with ----------------------------------------------------------------------------


def test_sdk_signs_with_the_producer_key_else_the_readable_ledger_key_else_not(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", keys_dir=tmp_path / "keys")
    assert intake_signer(settings) is None
    write_key_pair(settings.key_dir, LEDGER)
    assert intake_signer(settings) == LEDGER
    producer_path = tmp_path / "keys" / "producers" / "acme-ci.key"
    write_signer_file(producer_path, ACME)
    assert (producer_path.stat().st_mode & 0o777) == 0o600
    assert intake_signer(Settings(data_dir=tmp_path / "data", producer_key=producer_path)) == ACME


def test_new_refusals_round_trip_through_their_reason_codes() -> None:
    for kind in (UnsignedSubmission, BadSignature, UnknownProducerKey, ProducerKeyNotValid, KeyRegistrationForbidden):
        rebuilt = refusal_from(kind.reason_code, "m")
        assert type(rebuilt) is kind
        assert rebuilt.http_status in (401, 403)


# -- hostile input never raises ------------------------------------------------------------------------------

HEADER_NAMES = st.sampled_from([KEY_HEADER, SIGNATURE_HEADER, "traceparent"])
KEY_IDS = st.sampled_from([LEDGER.verifier().key_hash_text.encode(), ACME.verifier().key_hash_text.encode(), b""])
HEADER_VALUES = st.one_of(st.none(), st.binary(max_size=100), KEY_IDS)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(st.binary(max_size=300), JSON_VALUES.map(orjson.dumps)),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=3),
    sign_with=st.sampled_from([None, LEDGER, ACME, STRANGER]),
)
def test_admit_never_raises_and_accounts_for_every_submission(
    value: bytes, headers: list[tuple[str, bytes | None]], sign_with: SignerKey | None
) -> None:
    if sign_with is not None:
        headers = [*headers, *signed(sign_with, value)] if headers else signed(sign_with, value)
    admission = admit(value, headers, LOOKUP, LIMITS, NOW)
    assert admission.submissions or admission.refused
