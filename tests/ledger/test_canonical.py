"""RFC 8785 canonical encoding and the event hash: the fast path is byte-equal to the reference."""

from __future__ import annotations

import hashlib
import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import EVENT_HASH_PREFIX, canonical_bytes, digest, event_hash
from ledger.errors import CanonicalEncodingError

SAFE = 2**53 - 1
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-SAFE, max_value=SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=600, deadline=None)
@given(json_values)
def test_fast_encoder_is_byte_equal_to_reference_rfc8785(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(
            alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0x1F64F, exclude_categories=["Cs"]),
            max_size=3,
        ),
        st.integers(0, 9),
    )
)
def test_keys_sort_by_utf16_code_units_across_the_bmp_boundary(value: dict[str, int]) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("number", "expected"),
    # RFC 8785 §3.2.2.3 / Appendix B number serialisation samples.
    [
        (0.0, b"0"),
        (-0.0, b"0"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (123456789012345680000.0, b"123456789012345680000"),
        (0.000001, b"0.000001"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e+308"),
        (9007199254740991, b"9007199254740991"),
        (-1.5, b"-1.5"),
        (333333333.3333333, b"333333333.3333333"),
    ],
)
def test_numbers_follow_ecmascript_serialisation(number: float, expected: bytes) -> None:
    assert canonical_bytes(number) == expected


def test_rfc8785_string_escaping_example() -> None:
    # RFC 8785 §3.2.2.2: only ", \\ and control characters are escaped; lowercase hex; no escaping of non-ASCII.
    assert canonical_bytes('\u20ac$\u000f\nA\'B"\\\\"/') == '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**53, -(2**60), "\ud800", {1: "non-string key"}])
def test_values_outside_rfc8785_are_refused_precisely(bad: object) -> None:
    with pytest.raises(CanonicalEncodingError, match="not canonical JSON"):
        canonical_bytes(bad)


def test_event_hash_is_domain_separated_sha256_of_jcs_without_hash_key() -> None:
    event = {"spec": "agent-ledger/v1", "seq": 1, "payload": {"b": 2, "a": "é"}, "hash": "sha256:ignored"}
    expected = hashlib.sha256(EVENT_HASH_PREFIX + rfc8785.dumps({k: v for k, v in event.items() if k != "hash"}))
    assert event_hash(event) == "sha256:" + expected.hexdigest()
    assert event_hash({k: v for k, v in event.items() if k != "hash"}) == event_hash(event)


def test_pinned_event_hash_vector_for_outside_verifiers() -> None:
    # The vector published in docs/contract.md; an outside verifier must reproduce it byte for byte.
    event = {
        "spec": "agent-ledger/v1",
        "tenant": "acme",
        "stream": "mission/m-42",
        "seq": 1,
        "prev_hash": "sha256:" + "0" * 64,
        "event_id": "0190f5d2-7c3a-7d41-9a2b-5c6d7e8f9a0b",
        "type": "mission.opened",
        "schema_version": 1,
        "actor": {"kind": "agent", "id": "a-7"},
        "agent_id": "a-7",
        "mission_id": "m-42",
        "causation_id": None,
        "correlation": None,
        "occurred_at": "2026-11-25T12:00:00.000000Z",
        "recorded_at": "2026-11-25T12:00:00.250000Z",
        "payload": {"title": "Summarise Q3 incidents", "score": 0.5},
        "log": {"log_id": "agent-ledger.local/00c0ffee", "partition": 0, "index": 0},
    }
    assert canonical_bytes(event).startswith(b'{"actor":{"id":"a-7","kind":"agent"},"agent_id":"a-7"')
    assert event_hash(event) == PINNED_HASH


PINNED_HASH = "sha256:69c29ec46ff6440e19ffecee3030d8f163a92257ed3249b3bb5d1c8ae2100d44"


def test_digest_prefixes_sha256_of_canonical_bytes() -> None:
    assert digest({"b": 1, "a": 2}) == "sha256:" + hashlib.sha256(b'{"a":2,"b":1}').hexdigest()
