"""The latest signed checkpoint of each partition, and the verifier key that checks them.

These carry no tenant data (tree sizes and roots only), so any key with the `checkpoints` permission reads them.
A client that pinned the verifier key out of band checks each note itself (C2SP signed-note); it never has to
trust this server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ledger.api.auth import allow_any_tenant
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.service import service_of
from ledger.apikeys import ApiKey
from schemas.http import CheckpointNote, Checkpoints, VerifierKeyText

router = APIRouter(prefix="/v1", tags=["checkpoints"])


@router.get(
    "/checkpoints",
    response_model=Checkpoints,
    summary="The latest signed checkpoint of every partition",
    responses=ERROR_RESPONSES,
)
def latest_checkpoints(
    request: Request, key: Annotated[ApiKey, Depends(allow_any_tenant("checkpoints"))]
) -> Checkpoints:
    service = service_of(request)
    log = service.ledger.log
    notes = []
    with service.reading():
        for partition in range(log.partition_count):
            latest = log.latest_checkpoint(partition)
            if latest is not None:
                notes.append(CheckpointNote(**vars(latest)))
    return Checkpoints(log_id=log.log_id, partitions=log.partition_count, checkpoints=notes)


@router.get(
    "/verifier-key",
    response_model=VerifierKeyText,
    summary="The verifier key of the ledger's checkpoints and bundles",
    responses=ERROR_RESPONSES,
)
def verifier_key(request: Request, key: Annotated[ApiKey, Depends(allow_any_tenant("checkpoints"))]) -> VerifierKeyText:
    service = service_of(request)
    verifier = service.ledger.verifier_key()
    return VerifierKeyText(verifier_key=verifier.text(), name=verifier.name, key_id=verifier.key_id.hex())
