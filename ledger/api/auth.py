"""Who may call what: API keys (`ledger.apikeys`) carry one tenant and one role; each route names its permission.

Every route under /v1 depends on `allow(permission)`. It answers 401 for a missing or unknown key, and 403 for
a key of another tenant or a role without the permission. Both are checked before the route reads anything, and
the refusal names neither the resource nor whether it exists, so a wrong key learns nothing. The checks are
`async`: a key lookup is a dict read and one stat of the key file, cheaper than a hop to the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger.apikeys import ApiKey, ApiKeyStore, Role
from ledger.errors import LedgerError

Permission = Literal[
    "append",
    "receipt",
    "authorize",
    "read_state",
    "context",
    "audit",
    "export",
    "checkpoints",
    "metrics",
]

PERMISSIONS: dict[Permission, frozenset[Role]] = {
    "append": frozenset({"producer", "operator"}),
    "receipt": frozenset({"producer", "auditor", "operator"}),
    "authorize": frozenset({"producer", "operator"}),
    "read_state": frozenset({"producer", "auditor", "operator"}),
    "context": frozenset({"producer", "operator"}),
    "audit": frozenset({"auditor", "operator"}),
    "export": frozenset({"auditor", "operator"}),
    "checkpoints": frozenset({"producer", "auditor", "operator"}),
    "metrics": frozenset({"operator"}),
}
"""The one role matrix: docs/http.md prints it and the tests walk it."""


class Unauthenticated(LedgerError):
    reason_code = "unauthenticated"
    http_status = 401


class Forbidden(LedgerError):
    reason_code = "forbidden"
    http_status = 403


API_KEY_SCHEME = HTTPBearer(
    bearerFormat="alk_<key_id>_<secret>",
    description="An API key from `agent-ledger keys api create --tenant T --role producer|auditor|operator`.",
    auto_error=False,  # a missing key is answered by bearer_key, in the one error format
)
"""Declares the bearer scheme in the OpenAPI spec; the key itself is checked by `bearer_key`."""


async def bearer_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(API_KEY_SCHEME)],
) -> ApiKey:
    """The active API key of this request; 401 when there is none."""
    keys: ApiKeyStore = request.app.state.service.keys
    key = keys.authenticate(credentials.credentials.strip()) if credentials is not None else None
    if key is None:
        raise Unauthenticated("a valid API key is required: Authorization: Bearer alk_…")
    return key


KeyCheck = Callable[..., Coroutine[Any, Any, ApiKey]]
"""A FastAPI dependency that answers the request's API key, or refuses it."""


def allow(permission: Permission) -> KeyCheck:
    """A dependency for a route under /v1/tenants/{tenant}: the key's tenant and role must both fit."""

    async def check(tenant: str, key: Annotated[ApiKey, Depends(bearer_key)]) -> ApiKey:
        if key.tenant != tenant or key.role not in PERMISSIONS[permission]:
            raise Forbidden(f"this key may not {permission.replace('_', ' ')} for this tenant")
        return key

    return check


def allow_any_tenant(permission: Permission) -> KeyCheck:
    """A dependency for a route outside any tenant (checkpoints, metrics): only the role must fit."""

    async def check(key: Annotated[ApiKey, Depends(bearer_key)]) -> ApiKey:
        if key.role not in PERMISSIONS[permission]:
            raise Forbidden(f"this key may not read {permission}")
        return key

    return check
