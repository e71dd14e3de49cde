"""DSSE v1 envelopes signed with the ledger's Ed25519 key: the pre-authentication encoding, signing and opening.

The signature covers PAE(payloadType, payload) = "DSSEv1" SP len(type) SP type SP len(body) SP body, so neither
the payload nor its type can change unseen (DESIGN guarantee 1 for exported bundles). `open_envelope` returns
the payload only when a signature by the pinned key verifies; it must never hand back unverified bytes.
Keys are the signed-note keys of `ledger.keys`; a signature's keyid is the key hash text `<name>+<8 hex id>`.
"""

from __future__ import annotations

import base64

from ledger.bundle.format import DsseEnvelope, DsseSignature, shown
from ledger.errors import SignatureError
from ledger.keys import SignerKey, VerifierKey, b64decode_canonical


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding; lengths are decimal byte counts (the type as UTF-8)."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(payload_type: str, payload: bytes, signer: SignerKey) -> DsseEnvelope:
    """Wrap `payload` in an envelope with one Ed25519 signature by `signer` over its PAE."""
    signature = signer.sign(pae(payload_type, payload))
    return DsseEnvelope(
        payload_type=payload_type,
        payload=base64.b64encode(payload).decode("ascii"),
        signatures=[
            DsseSignature(
                keyid=signer.verifier().key_hash_text,
                sig=base64.b64encode(signature).decode("ascii"),
            )
        ],
    )


def open_envelope(envelope: DsseEnvelope, verifier: VerifierKey) -> bytes:
    """The payload bytes of `envelope`, once a signature by the pinned `verifier` verifies over its PAE.

    Signatures with another keyid are ignored (another party may co-sign); every one with the pinned keyid must
    verify and at least one must be present. Raises SignatureError naming the problem otherwise.
    """
    try:
        payload = b64decode_canonical(envelope.payload)
    except ValueError as error:
        raise SignatureError(f"DSSE payload is {error}") from None
    message = pae(envelope.payload_type, payload)
    keyid = verifier.key_hash_text
    verified = False
    for number, signature in enumerate(envelope.signatures):
        if signature.keyid != keyid:
            continue
        try:
            raw = b64decode_canonical(signature.sig)
        except ValueError as error:
            raise SignatureError(f"DSSE signature {number} by {keyid} is {error}") from None
        if not verifier.verify(message, raw):
            raise SignatureError(f"DSSE signature by {keyid} does not verify (the envelope changed after signing)")
        verified = True
    if not verified:
        found = ", ".join(sorted({shown(signature.keyid, 60) for signature in envelope.signatures})[:3])
        raise SignatureError(f"bundle is not signed by the pinned key {keyid} (signed by {found})")
    return payload
