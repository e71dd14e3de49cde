"""Test support for the HTTP API: a fresh embedded service in a tmp dir, its app, and API keys per role.

`open_api` yields an `Api` whose TestClient has run the app's lifespan (so the in-process workers run when asked
for) and whose service is closed afterwards. Keys are made with the same `ApiKeyStore` that
`agent-ledger keys api create` writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from ledger.api.app import create_app
from ledger.api.service import HttpLimits, Service
from ledger.config import Settings
from ledger.keys import SignerKey, write_key_pair
from ledger.sequencer import CheckpointPolicy

TENANT = "acme"
OTHER_TENANT = "globex"


def api_settings(root: Path, *, every_events: int = 50, interval_ms: int = 3_600_000) -> Settings:
    """Settings of a fresh embedded ledger under `root` with its own signing key."""
    settings = Settings(
        data_dir=root / "ledger",
        keys_dir=root / "keys",
        checkpoint_policy=CheckpointPolicy(every_events=every_events, interval_ms=interval_ms),
    )
    if not settings.private_key_path.exists():
        write_key_pair(settings.key_dir, SignerKey.generate("test-ledger"))
    return settings


@dataclass
class Api:
    client: TestClient
    service: Service
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, role) -> token

    def token(self, role: str = "producer", tenant: str = TENANT) -> str:
        if (tenant, role) not in self.tokens:
            _, self.tokens[(tenant, role)] = self.service.keys.create(tenant, role)
        return self.tokens[(tenant, role)]

    def auth(self, role: str = "producer", tenant: str = TENANT) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, tenant)}"}

    def post_event(self, body: bytes | dict[str, Any], *, tenant: str = TENANT, role: str = "producer") -> Any:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.client.post(f"/v1/tenants/{tenant}/events", content=content, headers=self.auth(role, tenant))

    def post_batch(self, body: bytes | list[Any], *, tenant: str = TENANT) -> Any:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.client.post(
            f"/v1/tenants/{tenant}/events/batch", content=content, headers=self.auth("producer", tenant)
        )

    def rejections(self) -> list[tuple[str, bytes]]:
        """(reason_code, raw) of every recorded refusal, oldest first."""
        return [(r.reason_code, r.raw) for r in reversed(self.service.ledger.rejections(limit=10_000))]


@contextmanager
def open_api(
    root: Path,
    *,
    workers: bool = False,
    settings: Settings | None = None,
    http_limits: HttpLimits | None = None,
    worker_interval_s: float = 0.5,
) -> Iterator[Api]:
    service = Service.open(settings or api_settings(root), http_limits=http_limits)
    try:
        app = create_app(service, workers=workers, worker_interval_s=worker_interval_s)
        with TestClient(app) as client:
            yield Api(client, service)
    finally:
        service.close()
