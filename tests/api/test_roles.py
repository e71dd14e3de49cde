"""THE role matrix: every route of the full app, walked from `app.routes`, against every key that must be refused.

For each route the table below holds an example request for a resource that exists and one for a resource that
does not. A key of another tenant (any role) and a key of the right tenant whose role lacks the permission get
403 with the generic body, the same whether the resource (or even the path's tenant) exists or not, naming no
tenant, id or data; nothing is appended or recorded for them. The right key gets the route's success status,
and no key gets 401. A route that the table does not describe fails `test_every_route_is_in_the_matrix`, so a
new route is covered (or noticed) automatically.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from agent_events import grant, memory_written, mission_opened, tool_call
from api_support import OTHER_TENANT, TENANT, Api, open_api
from factories import step
from fastapi.routing import APIRoute
from starlette.routing import Route

from ledger.api.auth import PERMISSIONS, Permission
from ledger.apikeys import ROLES

AGENT, TOOL, MISSION = "a-1", "deploy.service", "m-1"
MISSING_TENANT = "nobody"
DOCS_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # FastAPI's own pages


@dataclass(frozen=True)
class Call:
    """One request: its path (the route's, with values filled in) and its JSON body, if any."""

    path: str
    body: Callable[[str], Any] | None = None  # tenant -> body, so each request gets a fresh one

    def send(self, api: Api, method: str, tenant: str, headers: dict[str, str]) -> Any:
        if self.body is None:
            return api.client.request(method, self.path.format(tenant=tenant), headers=headers)
        content, json_headers = orjson.dumps(self.body(tenant)), {**headers, "Content-Type": "application/json"}
        return api.client.request(method, self.path.format(tenant=tenant), content=content, headers=json_headers)


@dataclass(frozen=True)
class Example:
    """How to call a route, who may, and what the right key gets back."""

    permission: Permission | None  # None: public, no key needed
    ok: int
    existing: Call
    missing: Call  # the same route naming a resource that does not exist

    @property
    def tenant_scoped(self) -> bool:
        return "{tenant}" in self.existing.path


def same(call: Call) -> tuple[Call, Call]:
    return call, call


def _event_id(api: Api) -> str:
    """The event id of the first event (acme's grant), for the receipt route."""
    return str(next(iter(api.service.ledger.log.read(0, 0, 1))).envelope()["event_id"])


T = "/v1/tenants/{tenant}"
MATRIX: dict[tuple[str, str], Example] = {
    # the write side (ledger/api/routes/events.py)
    ("POST", f"{T}/events"): Example(
        "append",
        201,
        Call(f"{T}/events", lambda tenant: step(tenant=tenant, mission=MISSION)),
        Call(f"{T}/events", lambda tenant: step(tenant=tenant, mission="m-never")),
    ),
    ("POST", f"{T}/events/batch"): Example(
        "append",
        200,
        Call(f"{T}/events/batch", lambda tenant: [step(tenant=tenant, mission=MISSION)]),
        Call(f"{T}/events/batch", lambda tenant: [step(tenant=tenant, mission="m-never")]),
    ),
    ("GET", f"{T}/receipts/{{event_id}}"): Example(
        "receipt", 200, Call(f"{T}/receipts/{{event_id}}"), Call(f"{T}/receipts/e-never")
    ),
    # checkpoints and operations (tenantless)
    ("GET", "/v1/checkpoints"): Example("checkpoints", 200, *same(Call("/v1/checkpoints"))),
    ("GET", "/v1/verifier-key"): Example("checkpoints", 200, *same(Call("/v1/verifier-key"))),
    ("GET", "/metrics"): Example("metrics", 200, *same(Call("/metrics"))),
    ("GET", "/healthz"): Example(None, 200, *same(Call("/healthz"))),
    # state (ledger/api/routes/state.py)
    ("POST", f"{T}/authorize"): Example(
        "authorize",
        200,
        Call(f"{T}/authorize", lambda tenant: {"agent_id": AGENT, "tool": TOOL}),
        Call(f"{T}/authorize", lambda tenant: {"agent_id": "a-never", "tool": TOOL}),
    ),
    ("GET", f"{T}/missions/{{mission_id}}"): Example(
        "read_state", 200, Call(f"{T}/missions/{MISSION}"), Call(f"{T}/missions/m-never")
    ),
    ("GET", f"{T}/agents/{{agent_id}}/trust"): Example(
        "read_state", 200, Call(f"{T}/agents/{AGENT}/trust"), Call(f"{T}/agents/a-never/trust")
    ),
    ("GET", f"{T}/agents/{{agent_id}}/scopes"): Example(
        "read_state", 200, Call(f"{T}/agents/{AGENT}/scopes"), Call(f"{T}/agents/a-never/scopes")
    ),
    ("GET", f"{T}/agents/{{agent_id}}/context"): Example(
        "context",
        200,
        Call(f"{T}/agents/{AGENT}/context?mission_id={MISSION}"),
        Call(f"{T}/agents/a-never/context?mission_id=m-never"),
    ),
    # audit and export (ledger/api/routes/audit.py)
    ("POST", f"{T}/audit/query"): Example(
        "audit",
        200,
        Call(f"{T}/audit/query", lambda tenant: {"sql": f"SELECT * FROM events WHERE mission_id = '{MISSION}'"}),
        Call(f"{T}/audit/query", lambda tenant: {"sql": "SELECT * FROM events WHERE mission_id = 'm-never'"}),
    ),
    ("GET", f"{T}/audit/saved"): Example("audit", 200, *same(Call(f"{T}/audit/saved"))),
    ("GET", f"{T}/audit/saved/{{name}}"): Example(
        "audit", 200, Call(f"{T}/audit/saved/scope-changes?agent={AGENT}"), Call(f"{T}/audit/saved/q-never")
    ),
    ("POST", f"{T}/audit/saved/{{name}}"): Example(
        "audit",
        200,
        Call(f"{T}/audit/saved/mission-timeline", lambda tenant: {"params": {"mission": MISSION}}),
        Call(f"{T}/audit/saved/q-never", lambda tenant: {"params": {"mission": "m-never"}}),
    ),
    ("POST", f"{T}/exports"): Example(
        "export",
        200,
        Call(f"{T}/exports", lambda tenant: {"mission": MISSION}),
        Call(f"{T}/exports", lambda tenant: {"mission": "m-never"}),
    ),
}
"""(method, route path as FastAPI declares it) -> how to call it. A new route needs an entry here."""

SECRETS = (TENANT, OTHER_TENANT, MISSING_TENANT, MISSION, "m-never", AGENT, "a-never", "e-never", "q-never", TOOL)
"""Nothing a refusal may name: tenants, ids, tools. (The event id of the receipt is checked separately.)"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(tmp_path_factory.mktemp("roles")) as opened:
        for tenant in (TENANT, OTHER_TENANT):
            for submission in [
                grant(AGENT, TOOL, "sandbox", tenant=tenant),
                *mission_opened(MISSION, AGENT, tenant=tenant),
                *tool_call(AGENT, TOOL, True, mission=MISSION, tenant=tenant),
                memory_written("mem-1", AGENT, tenant=tenant, mission=MISSION),
            ]:
                opened.service.ledger.append(submission)
        for tenant in (TENANT, OTHER_TENANT):
            for role in ROLES:
                opened.token(role, tenant)
        yield opened


def all_routes(api: Api) -> Iterator[Any]:
    """Every route the app serves, with included routers flattened (each as FastAPI resolves it: full path and
    dependencies). FastAPI >= 0.16x lists an included router as one entry of `app.routes`; older ones list its
    routes themselves."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        yield from api.client.app.routes  # type: ignore[attr-defined]
        return
    yield from iter_route_contexts(api.client.app.routes)  # type: ignore[attr-defined]


def routes_of(api: Api) -> dict[tuple[str, str], Any]:
    """(method, path) -> route, for every FastAPI route of the app."""
    found = {}
    for route in all_routes(api):
        if isinstance(getattr(route, "original_route", route), APIRoute):
            for method in route.methods:
                found[(method, route.path_format)] = route
    return found


def declared_permissions(route: Any) -> set[tuple[str, str]]:
    """(dependency, permission) of every `auth.allow` / `auth.allow_any_tenant` check the route depends on."""
    found = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        call = dependant.call
        qualname = getattr(call, "__qualname__", "")
        if call is not None and qualname in ("allow.<locals>.check", "allow_any_tenant.<locals>.check"):
            found.add((qualname.split(".")[0], inspect.getclosurevars(call).nonlocals["permission"]))
        pending.extend(dependant.dependencies)
    return found


def example_calls(api: Api, example: Example) -> tuple[Call, Call]:
    """The example's calls, with the id of a real event filled in where the route needs one."""
    event_id = _event_id(api)
    return tuple(  # type: ignore[return-value]
        Call(call.path.replace("{event_id}", event_id), call.body) for call in (example.existing, example.missing)
    )


def mounted(api: Api, key: tuple[str, str]) -> None:
    if key not in routes_of(api):
        pytest.skip(f"{key[0]} {key[1]} is not mounted in this app")


def bearer(api: Api, role: str, tenant: str) -> dict[str, str]:
    return api.auth(role, tenant)


def assert_generic_refusal(api: Api, answers: list[Any]) -> None:
    """All 403, all the same body, naming nothing."""
    bodies = {answer.text for answer in answers}
    assert [answer.status_code for answer in answers] == [403] * len(answers), [a.text for a in answers]
    assert len(bodies) == 1, bodies  # existing or not, this tenant or none: the same answer
    body = answers[0].json()
    assert set(body) == {"error", "message"} and body["error"] == "forbidden"
    assert not any(secret in answers[0].text for secret in (*SECRETS, _event_id(api))), answers[0].text


# -- the table covers the app, and the app declares what the table says ---------------------------------------


def test_every_route_is_in_the_matrix(api: Api) -> None:
    unknown = []
    for route in all_routes(api):
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute):
            unknown += [(m, route.path_format) for m in sorted(route.methods) if (m, route.path_format) not in MATRIX]
        elif not (isinstance(original, Route) and route.path in DOCS_PATHS):
            unknown.append(("?", str(getattr(route, "path", route))))  # e.g. a mount: it bypasses the role checks
    assert not unknown, f"routes without an entry in test_roles.MATRIX: {unknown}"


@pytest.mark.parametrize("key", list(MATRIX), ids=" ".join)
def test_each_route_depends_on_the_permission_the_matrix_names(api: Api, key: tuple[str, str]) -> None:
    mounted(api, key)
    example = MATRIX[key]

    declared = declared_permissions(routes_of(api)[key])

    if example.permission is None:
        assert declared == set(), "a public route must not ask for a key"
    else:
        check = "allow" if example.tenant_scoped else "allow_any_tenant"
        assert declared == {(check, example.permission)}


def test_every_permission_guards_some_route() -> None:
    assert {example.permission for example in MATRIX.values()} - {None} == set(PERMISSIONS)


# -- the refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [key for key, example in MATRIX.items() if example.tenant_scoped], ids=" ".join)
def test_a_key_of_another_tenant_is_refused_alike_with_every_role(api: Api, key: tuple[str, str]) -> None:
    mounted(api, key)
    method = key[0]
    existing, missing = example_calls(api, MATRIX[key])
    size, rejections = api.service.ledger.log.size(0), len(api.rejections())

    answers = [
        call.send(api, method, path_tenant, bearer(api, role, OTHER_TENANT))
        for role in ROLES
        for call in (existing, missing)
        for path_tenant in (TENANT, MISSING_TENANT)
    ]

    assert_generic_refusal(api, answers)
    assert api.service.ledger.log.size(0) == size and len(api.rejections()) == rejections


def refused_roles(example: Example) -> list[str]:
    return [role for role in ROLES if example.permission is not None and role not in PERMISSIONS[example.permission]]


@pytest.mark.parametrize("key", [key for key, example in MATRIX.items() if refused_roles(example)], ids=" ".join)
def test_a_role_without_the_permission_is_refused_alike(api: Api, key: tuple[str, str]) -> None:
    mounted(api, key)
    example = MATRIX[key]
    existing, missing = example_calls(api, example)
    size, rejections = api.service.ledger.log.size(0), len(api.rejections())

    answers = [
        call.send(api, key[0], TENANT, bearer(api, role, TENANT))
        for role in refused_roles(example)
        for call in (existing, missing)
    ]

    assert_generic_refusal(api, answers)
    assert api.service.ledger.log.size(0) == size and len(api.rejections()) == rejections


@pytest.mark.parametrize("key", list(MATRIX), ids=" ".join)
def test_the_right_key_gets_the_answer(api: Api, key: tuple[str, str]) -> None:
    mounted(api, key)
    example = MATRIX[key]
    existing, _ = example_calls(api, example)
    roles = ROLES if example.permission is None else sorted(PERMISSIONS[example.permission])

    for role in roles:
        answer = existing.send(api, key[0], TENANT, bearer(api, role, TENANT))
        assert answer.status_code == example.ok, (role, answer.text)


@pytest.mark.parametrize("key", [key for key, example in MATRIX.items() if example.permission], ids=" ".join)
def test_no_key_is_401_alike(api: Api, key: tuple[str, str]) -> None:
    mounted(api, key)
    existing, missing = example_calls(api, MATRIX[key])

    answers = [
        call.send(api, key[0], tenant, {}) for call in (existing, missing) for tenant in (TENANT, MISSING_TENANT)
    ]

    assert {answer.status_code for answer in answers} == {401}
    assert len({answer.text for answer in answers}) == 1
    assert answers[0].json()["error"] == "unauthenticated"


def test_a_public_route_needs_no_key(api: Api) -> None:
    for key, example in MATRIX.items():
        if example.permission is None and key in routes_of(api):
            assert example.existing.send(api, key[0], TENANT, {}).status_code == example.ok
