"""RFC 8785 (JCS) canonical JSON and the event hash: the one place either is computed.

The hash contract (DESIGN.md, "Event envelope and hashing") is
`"sha256:" + hex(SHA-256(b"agent-ledger/v1/event\\n" + JCS(event without "hash")))`. The sequencer, `verify`,
the audit SQL check and `verify-bundle` all call `event_hash` here (guarantee 1). The fast path is orjson with
sorted keys, used only where its output provably equals RFC 8785 (ASCII text, integers within 2**53, no floats);
everything else goes to the `rfc8785` reference implementation. Property tests hold the two byte-equal.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785

from ledger.errors import CanonicalEncodingError

EVENT_HASH_PREFIX = b"agent-ledger/v1/event\n"

_MAX_SAFE_INTEGER = 2**53 - 1


def canonical_bytes(value: Any, *, exact: bool = False) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of a JSON value (dict, list, str, int, float, bool, None).

    `exact=True` is the caller's word that `has_only_exact_scalars(value)` already holds (no float anywhere).
    """
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except (TypeError, orjson.JSONEncodeError):
        return _reference(value)  # big integers, non-string keys: the reference gives the precise error
    # Non-ASCII text may need UTF-16 key order or hold lone surrogates; floats need ECMAScript number form.
    if encoded.isascii() and (exact or has_only_exact_scalars(value)):
        return encoded
    return _reference(value)


def canonical_with_payload(envelope: dict[str, Any], payload_canonical: bytes, *, exact: bool) -> bytes:
    """`canonical_bytes(envelope)` when `envelope["payload"]` is already encoded as `payload_canonical`.

    The sealing path: intake encoded the payload to measure it, so it is spliced in rather than encoded twice.
    """
    if exact:
        spliced = {**envelope, "payload": orjson.Fragment(payload_canonical)}
        encoded = orjson.dumps(spliced, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
        if encoded.isascii():
            return encoded
    return canonical_bytes(envelope)


def has_only_exact_scalars(value: Any) -> bool:
    """True when no float and no integer beyond 2**53 - 1 occurs: there orjson and RFC 8785 agree."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            extend(item.values())
        elif kind is list:
            extend(item)
        elif kind is str or kind is bool or item is None:
            continue
        elif kind is not int or not -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:
            return False
    return True


def _reference(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, TypeError, ValueError) as exc:
        raise CanonicalEncodingError(f"value is not canonical JSON: {exc}") from None


def event_hash_from_canonical(canonical_event: bytes) -> str:
    """Hash the canonical bytes of an event without its "hash" key."""
    return "sha256:" + hashlib.sha256(EVENT_HASH_PREFIX + canonical_event).hexdigest()


def event_hash(event: dict[str, Any]) -> str:
    """Hash an event envelope; a "hash" key, if present, is left out as the contract says."""
    if "hash" in event:
        event = {k: v for k, v in event.items() if k != "hash"}
    return event_hash_from_canonical(canonical_bytes(event))


def digest(value: Any, *, exact: bool = False) -> str:
    """`sha256:` digest of any canonical JSON value (policy ids, submission fingerprints)."""
    return "sha256:" + hashlib.sha256(canonical_bytes(value, exact=exact)).hexdigest()


def seal_canonical(canonical_event: bytes) -> tuple[str, bytes]:
    """Hash the canonical bytes of an envelope without "hash"; return the hash and the bytes with it.

    "hash" sorts between "event_id" and "log"; the first `,"log":` is the envelope's own key because only
    `actor` and `correlation` (closed objects without a "log" key) come before it, and a JSON string cannot
    hold an unescaped quote.
    """
    sealed_hash = event_hash_from_canonical(canonical_event)
    cut = canonical_event.index(b',"log":')
    return sealed_hash, b'%s,"hash":"%s"%s' % (canonical_event[:cut], sealed_hash.encode(), canonical_event[cut:])
