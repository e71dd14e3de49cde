"""The OpenAPI spec is complete and the server keeps to it: schemathesis drives every operation from the spec.

Requests carry an operator key of the tenant in the path (every permission), and submissions name that tenant,
so generated bodies reach the intake's type and payload checks and the projections instead of stopping at 403.
Both valid (positive) and invalid (negative) inputs are generated. Checked on every answer: never a 5xx, a status
the spec declares, a content type and headers it declares, and a body that matches the declared schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_support import TENANT, Api, open_api
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 12  # per operation and mode: the whole run stays well under a minute


def in_tenant(case: Any) -> Any:
    """Submissions of the path tenant, so they get past the tenant check to the type and payload checks."""
    submissions = case.body if isinstance(case.body, list) else [case.body]
    for submission in submissions:
        if isinstance(submission, dict) and "tenant" in submission:
            submission["tenant"] = TENANT
    return case


@pytest.fixture
def api_under_test(tmp_path: Path) -> Iterator[Api]:
    with open_api(tmp_path) as api:
        yield api


def test_append_routes_declare_their_body_from_the_submission_model(api_under_test: Api) -> None:
    spec = api_under_test.client.get("/openapi.json").json()

    single = spec["paths"]["/v1/tenants/{tenant}/events"]["post"]
    batch = spec["paths"]["/v1/tenants/{tenant}/events/batch"]["post"]

    submission = {"$ref": "#/components/schemas/Submission"}
    assert single["requestBody"]["content"]["application/json"]["schema"] == submission
    assert batch["requestBody"]["content"]["application/json"]["schema"] == {"type": "array", "items": submission}
    assert {"Submission", "Actor", "Correlation", "Receipt", "BatchResult", "ErrorBody"} <= set(
        spec["components"]["schemas"]
    )
    assert {"201", "400", "401", "403", "409", "413", "422"} <= set(single["responses"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_every_operation_keeps_to_the_spec(api_under_test: Api, mode: GenerationMode) -> None:
    # schemathesis' own pytest loader (`from_fixture`) does not run under pytest 9, so drive its strategies here.
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_under_test.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    headers = api_under_test.auth("operator")
    failures: dict[str, str] = {}
    for operation in operations:
        in_path = {parameter.name for parameter in operation.path_parameters}
        strategy = operation.as_strategy(mode, path_parameters={"tenant": TENANT} if "tenant" in in_path else None)
        strategy = strategy.map(in_tenant)

        @given(case=strategy)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def keeps_to_the_spec(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            keeps_to_the_spec()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no parameters, no body): skip it
        except (Exception, FailureGroup) as failure:  # collect every operation's failures, then report them all
            failures[operation.label] = str(failure)[:2000]

    assert len(operations) >= 6
    assert not failures, "\n\n".join(f"{label}:\n{failure}" for label, failure in failures.items())
