"""Payloads of key management: registering a signing key, and destroying a data subject's key.

`key.registered` puts a producer or verifier public key on record so signatures can be checked against the
log itself. `subject.key.destroyed` records crypto-shredding: the key that encrypted a data subject's
personal data is gone, so that data is unreadable while the hash chain stays intact (guarantee 1).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import IdStr, TimestampStr
from schemas.payloads.base import ActorKindName, EventPayload, ShortText, Title

PublicKeyText = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^\S+$")]


class KeyRegistered(EventPayload):
    """A producer or verifier public key is put on record."""

    event_type: ClassVar[str] = "key.registered"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "system"})

    key_id: IdStr = Field(description="Id of the key, e.g. its signed-note key name and hash.")
    purpose: Literal["producer", "verifier"] = Field(
        description="producer: signs submissions; verifier: verifies checkpoints (signed-note verifier key)."
    )
    algorithm: Literal["ed25519"] = Field(description="The signature algorithm.")
    public_key: PublicKeyText = Field(
        description="The public key as text: the signed-note verifier-key form or base64 of the raw key."
    )
    name: Title | None = Field(default=None, description="Human name of the key or its holder.")
    valid_from: TimestampStr | None = Field(default=None, description="When signatures by it start to count.")
    expires_at: TimestampStr | None = Field(default=None, description="When signatures by it stop counting.")


class SubjectKeyDestroyed(EventPayload):
    """A data subject's encryption key is destroyed (crypto-shredding, e.g. for an erasure request)."""

    event_type: ClassVar[str] = "subject.key.destroyed"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "system"})

    subject_id: IdStr = Field(description="The data subject whose data becomes unreadable.")
    key_id: IdStr = Field(description="The key destroyed.")
    reason: ShortText = Field(description="Why, e.g. 'GDPR art. 17 request #4411'.")
    request_ref: IdStr | None = Field(default=None, description="The ticket or legal request it answers.")
