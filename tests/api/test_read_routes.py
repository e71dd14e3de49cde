"""The read side over HTTP on a real embedded ledger: authorize (recorded as the CLI records it), mission, trust,
scopes, context packets, audit SQL and saved queries, and export bundles that verify offline.

Two tenants share the log throughout, so every answer is also checked for the other tenant's data; the crafted
SQL that tries to reach it is in `test_audit_sql_never_sees_another_tenant`.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from agent_events import grant, memory_written, mission_opened, tool_call
from api_support import OTHER_TENANT, TENANT, Api, open_api

from consumers.audit.queries import SAVED_QUERIES
from consumers.audit.segments import SEGMENTS_DIR
from consumers.audit.session import audit_dir
from consumers.audit.store import STORE_FILE
from ledger.api.routes import audit as audit_routes
from ledger.api.service import HttpLimits
from ledger.bundle.verify import verify_bundle
from ledger.keys import load_verifier
from schemas.envelope import Receipt

AGENT, OTHER_AGENT, TOOL = "a-1", "g-1", "deploy.service"


def seed(api: Api) -> None:
    """acme: a granted agent with a mission, one finished and one unfinished call, one memory; globex alike."""
    submissions = [
        grant(AGENT, TOOL, "sandbox"),
        *mission_opened("m-1", AGENT),
        *tool_call(AGENT, TOOL, True),
        tool_call(AGENT, TOOL, True)[0],  # requested, never answered
        memory_written("mem-acme", AGENT),
        grant(OTHER_AGENT, TOOL, "production", tenant=OTHER_TENANT),
        *mission_opened("m-globex", OTHER_AGENT, tenant=OTHER_TENANT),
        *tool_call(OTHER_AGENT, TOOL, True, mission="m-globex", tenant=OTHER_TENANT),
        tool_call(OTHER_AGENT, TOOL, True, mission="m-globex", tenant=OTHER_TENANT)[0],
        memory_written("mem-globex", OTHER_AGENT, tenant=OTHER_TENANT, mission="m-globex"),
    ]
    for submission in submissions:
        # through the service, as the HTTP intake appends: beside running workers the sequencer needs its lock
        (outcome,) = api.service.append_batch([submission], tenant=submission["tenant"])
        assert isinstance(outcome, Receipt), outcome


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with open_api(tmp_path) as opened:
        seed(opened)
        yield opened


def events(api: Api) -> list[dict[str, Any]]:
    return [record.envelope() for record in api.service.ledger.log.read(0)]


def leaks(answer: Any) -> bool:
    """Whether an answer mentions anything of the other tenant."""
    text = answer.text if hasattr(answer, "text") else str(answer)
    return any(secret in text for secret in (OTHER_TENANT, OTHER_AGENT, "m-globex", "mem-globex", "globex notes"))


# -- authorize ------------------------------------------------------------------------------------------------


def test_authorize_answers_from_the_grants_and_records_the_decision(api: Api) -> None:
    answer = api.client.post(
        f"/v1/tenants/{TENANT}/authorize",
        json={"agent_id": AGENT, "tool": TOOL, "level": "sandbox", "call_id": "call-x"},
        headers=api.auth("producer"),
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["decision"], body["granted_level"], body["tool"]) == ("allow", "sandbox", TOOL)
    recorded = body["recorded"]
    decision = next(e for e in events(api) if e["event_id"] == recorded["event_id"])
    assert decision["type"] == "policy.decision" and decision["stream"] == f"agent/{AGENT}"
    assert decision["actor"] == {"kind": "policy", "id": "authorizer"}
    assert decision["payload"]["decision"] == "allow" and decision["payload"]["call_id"] == "call-x"
    assert decision["payload"]["policy_id"] == body["policy_id"]
    assert recorded["hash"] == decision["hash"]


def test_authorize_above_the_grant_is_refused_and_recorded_too(api: Api) -> None:
    answer = api.client.post(
        f"/v1/tenants/{TENANT}/authorize",
        json={"agent_id": AGENT, "tool": TOOL, "level": "production", "request_event_id": "req-1"},
        headers=api.auth("operator"),
    )

    body = answer.json()
    assert answer.status_code == 200 and body["decision"] in ("deny", "escalate")
    decision = next(e for e in events(api) if e["event_id"] == body["recorded"]["event_id"])
    assert decision["causation_id"] == "req-1" and decision["payload"]["request_event_id"] == "req-1"


def test_authorize_at_a_past_time_answers_from_history_and_records_nothing(api: Api) -> None:
    granted_at = next(e for e in events(api) if e["type"] == "scope.granted")["recorded_at"]
    size = api.service.ledger.log.size(0)

    before = api.client.post(
        f"/v1/tenants/{TENANT}/authorize",
        json={"agent_id": AGENT, "tool": TOOL, "at": "2020-01-01T00:00:00Z"},
        headers=api.auth(),
    )
    after = api.client.post(
        f"/v1/tenants/{TENANT}/authorize", json={"agent_id": AGENT, "tool": TOOL, "at": granted_at}, headers=api.auth()
    )
    dry = api.client.post(
        f"/v1/tenants/{TENANT}/authorize", json={"agent_id": AGENT, "tool": TOOL, "dry_run": True}, headers=api.auth()
    )

    assert before.json()["decision"] == "deny" and before.json()["recorded"] is None
    assert after.json()["decision"] == "allow" and after.json()["recorded"] is None
    assert dry.json()["decision"] == "allow" and dry.json()["recorded"] is None
    # Only the projections' own policy events may have entered the log; no decision did.
    assert not [e for e in events(api)[size:] if e["type"] == "policy.decision"]


@pytest.mark.parametrize(
    "question",
    [
        {"agent_id": AGENT, "tool": TOOL, "level": "root"},
        {"agent_id": AGENT, "tool": TOOL, "at": "yesterday"},
        {"agent_id": AGENT},
        {"agent_id": AGENT, "tool": TOOL, "colour": "blue"},
    ],
    ids=["unknown-level", "bad-time", "no-tool", "unknown-field"],
)
def test_authorize_refuses_a_bad_question_with_422(api: Api, question: dict[str, Any]) -> None:
    answer = api.client.post(f"/v1/tenants/{TENANT}/authorize", json=question, headers=api.auth())

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] in ("invalid_request", "schema_violation")


# -- state ----------------------------------------------------------------------------------------------------


def test_mission_state_and_404_for_an_unknown_or_foreign_mission(api: Api) -> None:
    answer = api.client.get(f"/v1/tenants/{TENANT}/missions/m-1", headers=api.auth("auditor"))

    assert answer.status_code == 200
    mission = answer.json()
    assert (mission["mission_id"], mission["owner_agent_id"], mission["status"]) == ("m-1", AGENT, "in_progress")
    assert [c["criterion_id"] for c in mission["criteria"]] == ["c-tests"]
    assert len(mission["unresolved_tool_calls"]) == 1
    missing = api.client.get(f"/v1/tenants/{TENANT}/missions/m-nope", headers=api.auth("auditor"))
    foreign = api.client.get(f"/v1/tenants/{TENANT}/missions/m-globex", headers=api.auth("auditor"))
    assert missing.status_code == foreign.status_code == 404 and missing.json()["error"] == "not_found"
    # Another tenant's mission is simply not in this tenant: the answer is the one for a mission that never was.
    assert foreign.text.replace("m-globex", "m-nope") == missing.text


def test_trust_and_scopes_of_an_agent(api: Api) -> None:
    trust = api.client.get(f"/v1/tenants/{TENANT}/agents/{AGENT}/trust", headers=api.auth("producer")).json()
    scopes = api.client.get(f"/v1/tenants/{TENANT}/agents/{AGENT}/scopes", headers=api.auth("auditor")).json()

    assert trust["agent_id"] == AGENT and trust["dimensions"]["reliability"]["evidence"]["count"] == 1
    assert 0 <= trust["dimensions"]["reliability"]["score"] <= 1
    grant_state = scopes["tools"][TOOL]
    assert grant_state["level"] == "sandbox" and grant_state["successes"] == 1
    assert grant_state["history"][0]["why"] == "onboarding by the platform team"
    assert [call[1] for call in scopes["open_calls"]] == [TOOL]


def test_an_agent_with_a_grant_but_no_evidence_has_empty_trust_not_404(api: Api) -> None:
    api.service.ledger.append(grant("a-new", TOOL, "sandbox"))

    answer = api.client.get(f"/v1/tenants/{TENANT}/agents/a-new/trust", headers=api.auth())

    assert answer.status_code == 200 and answer.json()["dimensions"] == {}


@pytest.mark.parametrize("what", ["trust", "scopes"])
@pytest.mark.parametrize("agent", ["a-unknown", OTHER_AGENT])
def test_an_unknown_or_foreign_agent_is_404(api: Api, what: str, agent: str) -> None:
    answer = api.client.get(f"/v1/tenants/{TENANT}/agents/{agent}/{what}", headers=api.auth("operator"))

    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_context_packet_holds_the_tenants_memory_and_nothing_of_another(api: Api) -> None:
    answer = api.client.get(
        f"/v1/tenants/{TENANT}/agents/{AGENT}/context", params={"mission_id": "m-1"}, headers=api.auth("producer")
    )

    assert answer.status_code == 200, answer.text
    packet = answer.json()
    assert [item["memory_id"] for item in packet["items"]] == ["mem-acme"]
    assert packet["items"][0]["write"]["content"] == "acme notes"
    assert packet["mission_id"] == "m-1" and packet["at"].endswith("Z")
    assert not leaks(answer)


def test_context_packet_at_a_past_time_and_a_bad_time(api: Api) -> None:
    path = f"/v1/tenants/{TENANT}/agents/{AGENT}/context"

    past = api.client.get(path, params={"at": "2020-01-01T00:00:00Z"}, headers=api.auth())
    bad = api.client.get(path, params={"at": "not a time"}, headers=api.auth())

    assert past.status_code == 200 and past.json()["items"] == []
    assert past.json()["at"] == "2020-01-01T00:00:00.000000Z"
    assert bad.status_code == 422 and bad.json()["error"] == "schema_violation"


def test_reads_see_what_was_appended_just_before(api: Api) -> None:
    api.service.ledger.append(grant(AGENT, "ci.run_tests", "canary"))

    scopes = api.client.get(f"/v1/tenants/{TENANT}/agents/{AGENT}/scopes", headers=api.auth()).json()

    assert scopes["tools"]["ci.run_tests"]["level"] == "canary"


# -- audit SQL ------------------------------------------------------------------------------------------------


def query(api: Api, sql: str, *, limit: int | None = None, role: str = "auditor") -> Any:
    body: dict[str, Any] = {"sql": sql} if limit is None else {"sql": sql, "limit": limit}
    return api.client.post(f"/v1/tenants/{TENANT}/audit/query", json=body, headers=api.auth(role))


def test_audit_query_answers_columns_and_rows_of_the_tenant_only(api: Api) -> None:
    answer = query(api, "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY type")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [column["name"] for column in body["columns"]] == ["type", "n"]
    expected = Counter(e["type"] for e in events(api) if e["tenant"] == TENANT)
    assert {row[0]: row[1] for row in body["rows"]} == dict(expected)
    assert body["tenant"] == TENANT and body["truncated"] is False and body["row_count"] == len(body["rows"])


def test_audit_query_rows_are_json_typed_and_limited(api: Api) -> None:
    answer = query(api, "SELECT payload, recorded_at, log_index FROM events ORDER BY log_index", limit=2)

    body = answer.json()
    assert body["row_count"] == 2 and body["truncated"] is True
    payload, recorded_at, log_index = body["rows"][0]
    first = events(api)[0]
    assert payload == first["payload"]  # a JSON column comes back as JSON, not as text
    assert recorded_at == first["recorded_at"] and log_index == 0


def test_audit_query_sees_events_appended_after_the_last_query(api: Api) -> None:
    before = query(api, "SELECT count(*) FROM events").json()["rows"][0][0]

    api.service.ledger.append(grant(AGENT, "ci.run_tests", "canary"))

    assert query(api, "SELECT count(*) FROM events").json()["rows"][0][0] == before + 1


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("INSERT INTO events SELECT * FROM events", "read-only"),
        ("DELETE FROM events", "read-only"),
        ("DROP VIEW events", "read-only"),
        ("CREATE TABLE stolen AS SELECT * FROM events", "read-only"),
        ("ATTACH 'x.duckdb' AS other", "read-only"),
        ("COPY events TO 'out.csv'", "read-only"),
        ("SET enable_external_access = true", "read-only"),
        ("PRAGMA database_list", "read-only"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("SELECT * FROM nowhere", "not readable"),
        ("SELEC nothing", "does not parse"),
    ],
)
def test_audit_query_refuses_anything_but_one_select_over_the_views(api: Api, sql: str, says: str) -> None:
    answer = query(api, sql)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "usage" and says in answer.json()["message"]


HEAVY_SQL = "SELECT sum(e0.seq + e11.seq) FROM " + ", ".join(f"events e{n}" for n in range(12))
"""A query over the tenant's few events that runs for hours: a 12-way cross join DuckDB cannot shortcut."""


def test_an_audit_query_past_the_time_limit_is_stopped_with_408_and_the_next_one_answers(tmp_path: Path) -> None:
    with open_api(tmp_path, http_limits=HttpLimits(audit_query_s=0.5)) as api:
        seed(api)
        started = time.monotonic()
        answer = query(api, HEAVY_SQL)
        assert answer.status_code == 408, answer.text
        assert answer.json() == {
            "error": "query_timeout",
            "message": "query stopped after 0.5 s, the audit time limit",
        }
        assert time.monotonic() - started < 30
        quick = query(api, "SELECT count(*) FROM events")
        assert quick.status_code == 200 and quick.json()["rows"][0][0] > 0


def test_audit_sql_never_sees_another_tenant(api: Api) -> None:
    segments = audit_dir(api.service.projections.state_root) / SEGMENTS_DIR
    crafted = [
        f"SELECT * FROM events WHERE tenant = '{OTHER_TENANT}'",
        f"SELECT * FROM events WHERE tenant <> '{TENANT}' OR true",
        "WITH everything AS (SELECT * FROM events) SELECT * FROM everything",
        "SELECT * FROM (FROM events) UNION ALL SELECT * FROM events",
        "SELECT payload FROM events WHERE payload::VARCHAR LIKE '%globex%'",
        "SELECT * FROM events AS e1 JOIN events AS e2 ON e1.tenant <> e2.tenant",
        "SELECT canonical FROM events",
    ]
    for sql in crafted:
        answer = query(api, sql, role="operator")
        assert answer.status_code == 200, (sql, answer.text)
        assert not leaks(answer), sql
        assert {row[0] for row in answer.json()["rows"] if answer.json()["columns"][0]["name"] == "tenant"} <= {TENANT}

    ways_around = [
        f"SELECT * FROM read_parquet('{segments}/*.parquet')",
        f"SELECT * FROM '{segments}/events-p0-000000000000-000000000030.parquet'",
        "SELECT * FROM audit_store.main.events",
        "SELECT * FROM temp.main.events",
        "SELECT * FROM main.events",
        "SELECT * FROM duckdb_views()",
        "SELECT * FROM query_table('events')",
        f"SELECT * FROM glob('{segments}/*')",
        f"SELECT * FROM read_text('{segments}/manifest.json')",
    ]
    for sql in ways_around:
        answer = query(api, sql, role="operator")
        assert answer.status_code == 400, (sql, answer.text)
        assert not leaks(answer), sql


def test_audit_query_of_an_empty_log_answers_no_rows(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        answer = query(api, "SELECT count(*) AS n FROM events")

        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == [[0]]


def test_audit_query_reads_what_the_servers_own_workers_publish(tmp_path: Path) -> None:
    with open_api(tmp_path, workers=True, worker_interval_s=0.05) as api:
        seed(api)

        # The in-process sink holds the store; the route waits until its segments cover the log, then reads them.
        answer = query(api, "SELECT count(*) FROM events")

        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"][0][0] == sum(e["tenant"] == TENANT for e in events(api))


def test_audit_query_reads_the_segments_of_a_sink_running_in_another_process(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = audit_dir(api.service.projections.state_root)
    assert query(api, "SELECT 1").status_code == 200  # the store and its segments now cover the log
    holder = subprocess.Popen(  # what a running `agent-ledger consume audit` does to the store file
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; db = duckdb.connect({str(directory / STORE_FILE)!r}); "
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

        covered = query(api, "SELECT count(*) FROM events")  # it cannot catch up, but what is published covers
        api.service.ledger.append(grant(AGENT, "ci.run_tests", "canary"))
        monkeypatch.setattr(audit_routes, "AUDIT_WAIT_S", 0.2)
        behind = query(api, "SELECT count(*) FROM events")  # nobody publishes the new event: say why
    finally:
        holder.communicate("")

    assert covered.status_code == 200
    assert covered.json()["rows"][0][0] == sum(e["tenant"] == TENANT for e in events(api)) - 1
    assert behind.status_code == 400 and "another process" in behind.json()["message"]


# -- saved queries --------------------------------------------------------------------------------------------


def test_saved_queries_are_listed_with_their_parameters(api: Api) -> None:
    answer = api.client.get(f"/v1/tenants/{TENANT}/audit/saved", headers=api.auth("auditor"))

    assert answer.status_code == 200
    listed = {query["name"]: query["parameters"] for query in answer.json()}
    assert listed == {name: list(query.params) for name, query in SAVED_QUERIES.items()}


def test_a_saved_query_runs_in_the_tenant_by_get_and_by_post(api: Api) -> None:
    path = f"/v1/tenants/{TENANT}/audit/saved/calls-without-result"

    by_get = api.client.get(path, headers=api.auth("auditor"))
    by_post = api.client.post(path, json={}, headers=api.auth("operator"))

    assert by_get.status_code == 200, by_get.text
    assert by_get.json() == by_post.json()
    rows = by_get.json()["rows"]
    assert len(rows) == 1 and rows[0][0] == TENANT  # globex has an unanswered call too, which is not shown
    assert not leaks(by_get)


def test_a_saved_query_takes_its_parameters(api: Api) -> None:
    path = f"/v1/tenants/{TENANT}/audit/saved/scope-changes"

    by_get = api.client.get(path, params={"agent": AGENT}, headers=api.auth("auditor"))
    by_post = api.client.post(path, json={"params": {"agent": AGENT}, "limit": 5}, headers=api.auth("auditor"))
    foreign = api.client.get(path, params={"agent": OTHER_AGENT}, headers=api.auth("auditor"))

    assert by_get.status_code == 200 and by_get.json()["rows"] == by_post.json()["rows"]
    types = [row[by_get.json()["columns"].index({"name": "type", "type": "VARCHAR"})] for row in by_get.json()["rows"]]
    assert types == ["scope.granted"]
    assert foreign.status_code == 200 and foreign.json()["rows"] == []


@pytest.mark.parametrize(
    ("name", "params", "status"),
    [
        ("no-such-query", {}, 404),
        ("scope-changes", {}, 400),  # the agent is missing
        ("calls-without-result", {"agent": AGENT}, 400),  # it takes no parameter
    ],
)
def test_a_saved_query_refuses_a_bad_name_or_parameters(
    api: Api, name: str, params: dict[str, str], status: int
) -> None:
    answer = api.client.post(
        f"/v1/tenants/{TENANT}/audit/saved/{name}", json={"params": params}, headers=api.auth("auditor")
    )

    assert answer.status_code == status, answer.text


# -- exports --------------------------------------------------------------------------------------------------


def export(api: Api, selection: dict[str, Any], role: str = "auditor") -> Any:
    return api.client.post(f"/v1/tenants/{TENANT}/exports", json=selection, headers=api.auth(role))


def verified(api: Api, bundle: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The offline verifier's report of a bundle, and the events it holds."""
    report = verify_bundle(bundle, load_verifier(api.service.settings.verifier_key_path)).to_json()
    envelope = orjson.loads(bundle)
    statement = orjson.loads(base64.b64decode(envelope["payload"]))
    return report, [entry["event"] for entry in statement["predicate"]["events"]]


def test_export_of_a_mission_is_a_bundle_that_verifies_offline(api: Api) -> None:
    answer = export(api, {"mission": "m-1"})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    report, bundled = verified(api, answer.content)
    expected = [e["event_id"] for e in events(api) if e["tenant"] == TENANT and e["mission_id"] == "m-1"]
    assert [event["event_id"] for event in bundled] == expected
    assert report["selection"] == {"mission": "m-1", "tenant": TENANT}


def test_export_without_criteria_is_the_whole_tenant_and_only_it(api: Api) -> None:
    answer = export(api, {}, role="operator")

    report, bundled = verified(api, answer.content)
    assert report["selection"] == {"tenant": TENANT}
    assert {event["tenant"] for event in bundled} == {TENANT}
    assert len(bundled) == sum(e["tenant"] == TENANT for e in events(api))
    assert not leaks(answer)


def test_export_seals_events_appended_just_before(api: Api) -> None:
    fresh = api.service.ledger.append(grant(AGENT, "ci.run_tests", "canary"))  # no checkpoint covers it yet

    answer = export(api, {"stream": f"agent/{AGENT}"})

    assert answer.status_code == 200, answer.text
    _, bundled = verified(api, answer.content)
    assert fresh.event_id in [event["event_id"] for event in bundled]


def test_export_by_sql_selects_within_the_tenant(api: Api) -> None:
    sql = "SELECT partition, log_index FROM events WHERE type = 'tool.call.requested'"

    answer = export(api, {"sql": sql})

    _, bundled = verified(api, answer.content)
    assert [event["type"] for event in bundled] == ["tool.call.requested", "tool.call.requested"]
    assert {event["tenant"] for event in bundled} == {TENANT}


def test_export_of_another_tenants_mission_is_the_same_404_as_of_none(api: Api) -> None:
    foreign = export(api, {"mission": "m-globex"})
    missing = export(api, {"mission": "m-nope"})

    assert foreign.status_code == missing.status_code == 404
    assert foreign.text.replace("m-globex", "m-nope") == missing.text


@pytest.mark.parametrize(
    ("selection", "status"),
    [
        ({"since": "last week"}, 422),
        ({"mission": "m-1", "sql": "SELECT partition, log_index FROM events"}, 400),
        ({"sql": "SELECT type FROM events"}, 400),  # must return partition and log_index
        ({"sql": "DELETE FROM events"}, 400),
        ({"tenant": OTHER_TENANT}, 422),  # the tenant is the path's, never the body's
    ],
)
def test_export_refuses_a_bad_or_empty_selection(api: Api, selection: dict[str, Any], status: int) -> None:
    answer = export(api, selection)

    assert answer.status_code == status, answer.text
    assert not leaks(answer.json()["message"].replace(OTHER_TENANT, "")) and answer.json()["error"] != "internal"


def test_audit_routes_answer_quickly_once_caught_up(api: Api) -> None:
    query(api, "SELECT 1")  # the first request catches the sink up
    started = time.monotonic()

    for _ in range(5):
        assert query(api, "SELECT count(*) FROM events").status_code == 200

    assert time.monotonic() - started < 5
