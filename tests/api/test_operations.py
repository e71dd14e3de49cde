"""Operations: `/healthz` without a key, `/metrics` figures after appends and refusals, and the in-process
workers of an embedded server (checkpoints on time, projections and audit store caught up, a clean stop)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from api_support import TENANT, api_settings, open_api
from factories import step
from prometheus_client.parser import text_string_to_metric_families

from consumers.audit.session import AuditSession, audit_dir
from ledger.api.workers import EmbeddedWorkers


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_healthz_needs_no_key_and_names_only_the_backend(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        api.post_event(step())

        answer = api.client.get("/healthz")

        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "backend": "embedded", "workers": "stopped"}


def test_metrics_count_appends_and_refusals_by_reason(tmp_path: Path) -> None:
    with open_api(tmp_path, settings=api_settings(tmp_path, every_events=2)) as api:
        for _ in range(3):
            api.post_event(step())
        api.post_batch([step(), step(type="not.a.type"), step(type="not.a.type")])
        api.post_event(b"{")
        duplicate = step(event_id="twice")
        api.post_event(duplicate)
        api.post_event(duplicate)

        answer = api.client.get("/metrics", headers=api.auth("operator"))

        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        figures = samples(answer.text)
        assert figures[("agent_ledger_appended_events_total", ())] == 5
        assert figures[("agent_ledger_refusals_total", (("reason", "unknown_type"),))] == 2
        assert figures[("agent_ledger_refusals_total", (("reason", "malformed_json"),))] == 1
        assert figures[("agent_ledger_refusals_total", (("reason", "duplicate_event_id"),))] == 1
        assert figures[("agent_ledger_log_events", (("partition", "0"),))] == 5
        assert figures[("agent_ledger_checkpoint_tree_size", (("partition", "0"),))] == 5
        assert 0 <= figures[("agent_ledger_checkpoint_age_seconds", (("partition", "0"),))] < 60


def test_metrics_report_consumer_lag_until_the_consumers_catch_up(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        for _ in range(4):
            api.post_event(step())
        api.service.projections.catch_up("trust")
        api.post_event(step())

        figures = samples(api.client.get("/metrics", headers=api.auth("operator")).text)

        assert figures[("agent_ledger_consumer_lag_events", (("consumer", "trust"),))] == 1
        assert ("agent_ledger_consumer_lag_events", (("consumer", "audit"),)) not in figures  # no sink here


def test_embedded_workers_seal_on_time_and_keep_consumers_caught_up(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, every_events=1000, interval_ms=200)
    with open_api(tmp_path, settings=settings, workers=True, worker_interval_s=0.1) as api:
        assert api.client.get("/healthz").json()["workers"] == "running"
        for number in range(3):
            assert api.post_event(step(event_id=f"w-{number}")).status_code == 201

        def sealed() -> bool:  # only the timer can seal events 2 and 3 (every_events is 1000)
            receipt = api.client.get(f"/v1/tenants/{TENANT}/receipts/w-2", headers=api.auth()).json()
            return "checkpoint" in receipt

        eventually(sealed)

        def caught_up() -> bool:
            figures = samples(api.client.get("/metrics", headers=api.auth("operator")).text)
            lags = {labels[0][1]: value for (name, labels), value in figures.items() if name.endswith("_lag_events")}
            return set(lags) >= {"audit", "mission", "memory", "trust", "scope"} and not any(lags.values())

        eventually(caught_up)
        workers: EmbeddedWorkers = api.client.app.state.workers  # type: ignore[attr-defined]
    assert not workers.running  # the lifespan stopped the thread with the app
    state_root = api.service.projections.state_root
    with AuditSession(audit_dir(state_root), source="store") as session:
        assert session.query("SELECT count(*) FROM events").fetchall() == [(3,)]
