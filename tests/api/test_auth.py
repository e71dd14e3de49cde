"""Authentication on every /v1 route and /metrics: no key, a malformed or unknown key and a revoked key are 401.

A 401 says only that a valid key is needed: it never tells whether the tenant or the event exists. The role
matrix itself is walked in `test_roles.py`; this file holds the key checks and the refusals of the write path.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from api_support import OTHER_TENANT, TENANT, open_api
from factories import step

ROUTES = [
    ("POST", f"/v1/tenants/{TENANT}/events"),
    ("POST", f"/v1/tenants/{TENANT}/events/batch"),
    ("GET", f"/v1/tenants/{TENANT}/receipts/e-1"),
    ("GET", "/v1/checkpoints"),
    ("GET", "/v1/verifier-key"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer alk_nope", "Bearer alk_0123456789ab_wrong-secret"],
    ids=["none", "empty", "scheme-only", "blank-token", "basic", "malformed", "unknown"],
)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_valid_key_every_route_is_401(
    tmp_path: Path, method: str, path: str, authorization: str | None
) -> None:
    with open_api(tmp_path) as api:
        headers = {} if authorization is None else {"Authorization": authorization}

        answer = api.client.request(method, path, headers=headers, content=b"[]" if method == "POST" else None)

        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "unauthenticated"
        assert answer.headers["www-authenticate"] == "Bearer"
        assert api.service.ledger.log.size(0) == 0
        assert api.rejections() == []  # an unauthenticated body is never read, so there is nothing to record


def test_a_revoked_key_is_401_from_the_next_request_on(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        assert api.post_event(step()).status_code == 201
        key_id = next(key.key_id for key in api.service.keys.list(TENANT) if key.role == "producer")

        api.service.keys.revoke(key_id)  # what `agent-ledger keys api revoke` does, while the server runs

        answer = api.post_event(step())
        assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated"
        assert api.service.ledger.log.size(0) == 1


def test_a_right_key_with_a_wrong_secret_is_401(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        token = api.token()
        forged = token[: token.rindex("_") + 1] + "x" * 43

        answer = api.client.get("/v1/checkpoints", headers={"Authorization": f"Bearer {forged}"})

        assert answer.status_code == 401


def test_a_key_of_another_tenant_is_403_before_the_body_is_read(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        answer = api.client.post(
            f"/v1/tenants/{TENANT}/events", content=orjson.dumps(step()), headers=api.auth(tenant=OTHER_TENANT)
        )

        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
        assert api.service.ledger.log.size(0) == 0


def test_an_auditor_key_cannot_append(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        answer = api.post_event(step(), role="auditor")

        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"


def test_only_an_operator_key_reads_metrics(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        assert api.client.get("/metrics", headers=api.auth("producer")).status_code == 403
        assert api.client.get("/metrics", headers=api.auth("auditor")).status_code == 403
        assert api.client.get("/metrics", headers=api.auth("operator")).status_code == 200
