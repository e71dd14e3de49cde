"""The audit commands end to end on the demo day: consume audit, audit (SQL, formats, refusals), export, verify-bundle.

Everything runs the real `agent-ledger` console entry in a subprocess, so exit codes and stderr are what a script
sees: 0 with an answer, 1 when verification fails, 2 with one line for bad input, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from consumers.audit.store import STORE_FILE
from ledger.demo import run_demo


def cli(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        # module fixtures run before the autouse fixture that drops AGENT_LEDGER_KAFKA: these runs are embedded
        env={key: value for key, value in os.environ.items() if not key.startswith("AGENT_LEDGER")},
    )
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def refused(*args: str | Path, code: int = 2) -> str:
    result = cli(*args, check=False)
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("auditcli") / "data"
    run_demo(data_dir)
    out = cli("consume", "audit", "--once", "--data", data_dir).stdout
    assert out.startswith("audit: applied ")
    return data_dir


def audit(data: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli("audit", "--data", data, *args, check=check)


def test_consume_audit_copies_the_whole_log_and_resumes(data: Path) -> None:
    counted = json.loads(audit(data, "SELECT count(*) AS n FROM events", "--format", "json").stdout)[0]["n"]
    tail = cli("tail", "--data", data).stdout.strip().splitlines()
    assert counted == len(tail) > 1000
    again = cli("consume", "audit", "--once", "--data", data).stdout
    assert again.startswith("audit: applied 0 events")


def test_sql_verification_agrees_with_verify(data: Path) -> None:
    verified = cli("verify", "--data", data, "--allow-unsealed").stdout
    count = int(verified.split()[1])
    out = audit(data, "--verify", "--allow-unsealed").stdout
    assert out.startswith(f"verified {count} events in ")
    assert "Merkle roots recomputed" in out


def test_answers_in_every_format(data: Path, tmp_path: Path) -> None:
    sql = "SELECT type, count(*) AS n FROM events WHERE tenant = 'acme' GROUP BY type ORDER BY n DESC, type"
    as_json = json.loads(audit(data, sql, "--format", "json").stdout)
    as_csv = list(csv.DictReader(io.StringIO(audit(data, sql, "--format", "csv").stdout)))
    audit(data, sql, "--format", "parquet", "--output", tmp_path / "a.parquet")
    as_parquet = pq.read_table(tmp_path / "a.parquet").to_pylist()
    assert [row["type"] for row in as_json] == [row["type"] for row in as_csv] == [row["type"] for row in as_parquet]
    assert [row["n"] for row in as_json] == [int(row["n"]) for row in as_csv] == [row["n"] for row in as_parquet]
    table = audit(data, sql).stdout
    assert as_json[0]["type"] in table and f"{len(as_json)} rows" in table
    payload = json.loads(
        audit(data, "SELECT payload FROM events WHERE type = 'mission.opened' LIMIT 1", "--format", "json").stdout
    )
    assert isinstance(payload[0]["payload"], dict)  # JSON columns come out as JSON, not as quoted text


def test_a_tenant_sees_only_its_events(data: Path) -> None:
    tenants = json.loads(audit(data, "SELECT DISTINCT tenant FROM events ORDER BY 1", "--format", "json").stdout)
    assert len(tenants) == 2
    mine, other = tenants[0]["tenant"], tenants[1]["tenant"]
    scoped = json.loads(
        audit(data, "--tenant", mine, "SELECT tenant, count(*) AS n FROM events GROUP BY 1", "--format", "json").stdout
    )
    assert [row["tenant"] for row in scoped] == [mine]
    leak = f"SELECT count(*) AS n FROM events WHERE tenant = '{other}'"
    assert json.loads(audit(data, "--tenant", mine, leak, "--format", "json").stdout) == [{"n": 0}]
    verified = audit(data, "--tenant", mine, "--verify", "--allow-unsealed").stdout
    assert f"(tenant {mine}," in verified


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM events", "DELETE statements are refused"),
        ("INSERT INTO events SELECT * FROM events", "INSERT statements are refused"),
        ("UPDATE events SET tenant = 'x'", "UPDATE statements are refused"),
        ("COPY events TO '/tmp/out.csv'", "COPY statements are refused"),
        ("ATTACH '/tmp/x.duckdb' AS x", "ATTACH statements are refused"),
        ("SET enable_external_access = true", "SET statements are refused"),
        ("SELECT 1; DELETE FROM events", "give exactly one SQL statement, not 2"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table function 'read_csv' is refused"),
        ("SELECT * FROM audit_store.main.events", "table 'audit_store.main.events' is not readable here"),
        ("SELECT * FROM duckdb_settings()", "table function 'duckdb_settings' is refused"),
        ("SELEC 1", "SQL does not parse"),
        ("SELECT no_such_column FROM events", "query failed"),
    ],
)
def test_anything_but_one_select_over_the_views_is_refused(data: Path, sql: str, message: str) -> None:
    assert message in refused("audit", "--data", data, sql)


def test_bad_options_are_one_line_each(data: Path, tmp_path: Path) -> None:
    assert "give one of" in refused("audit", "--data", data)
    assert "--format parquet needs --output" in refused("audit", "--data", data, "SELECT 1", "--format", "parquet")
    assert "is not a tenant name" in refused("audit", "--data", data, "--tenant", "Bad Tenant", "SELECT 1")
    assert "no audit data" in refused("audit", "--data", tmp_path / "nothing", "SELECT 1")


def test_a_query_past_its_time_limit_is_stopped_in_one_line(data: Path) -> None:
    heavy = "SELECT sum(e0.seq + e7.seq) FROM " + ", ".join(f"events e{n}" for n in range(8))
    started = time.monotonic()
    line = refused("audit", "--data", data, "--timeout", "0.5", heavy)
    assert line == "agent-ledger: error: query stopped after 0.5 s, the audit time limit"
    assert time.monotonic() - started < 60
    assert audit(data, "--timeout", "60", "SELECT count(*) FROM events", "--format", "csv").stdout.strip()
    assert "must be positive" in refused("audit", "--data", data, "--timeout", "0", "SELECT 1")


def test_a_tampered_store_fails_verification_with_the_first_bad_event(data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    with duckdb.connect(str(copy / "consumers" / "audit" / STORE_FILE)) as db:
        db.execute(
            "UPDATE events SET canonical = replace(canonical, 'agent-ledger/v1', 'agent-ledger/v2')"
            " WHERE log_index = 42"
        )
        assert db.execute("SELECT count(*) FROM events WHERE canonical LIKE '%agent-ledger/v2%'").fetchall() == [(1,)]
    line = refused("audit", "--data", copy, "--verify", "--allow-unsealed", code=1)
    assert "partition 0 log index 42 " in line and "hash mismatch" in line


def test_export_a_mission_and_verify_the_bundle_offline(data: Path, tmp_path: Path) -> None:
    missions = json.loads(
        audit(
            data,
            "SELECT mission_id, count(*) AS n FROM events WHERE mission_id IS NOT NULL"
            " GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
            "--format",
            "json",
        ).stdout
    )
    mission, count = missions[0]["mission_id"], missions[0]["n"]
    bundle = tmp_path / "mission.bundle.json"
    out = cli("export", "--data", data, "--mission", mission, "--out", bundle).stdout
    assert out.startswith(f"exported {count} events")
    offline = tmp_path / "elsewhere"
    offline.mkdir()
    key = offline / "ledger.pub"
    key.write_text((data / "keys" / "ledger.pub").read_text())
    checked = cli("verify-bundle", bundle, "--verifier-key", key, "--data", offline / "no-ledger-here").stdout
    assert f"{count} events" in checked
    bundle.write_bytes(bundle.read_bytes().replace(b'"sig":"', b'"sig":"A', 1))
    assert refused("verify-bundle", bundle, "--verifier-key", key, code=1)


def test_an_answer_exported_as_a_bundle(data: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "answer.json"
    sql = "SELECT partition, log_index, type FROM events WHERE type = 'policy.decision' ORDER BY log_index LIMIT 25"
    out = audit(data, sql, "--format", "csv", "--bundle", bundle)
    assert out.stdout.count("\n") == 26  # the answer alone on stdout; what was exported is said on stderr
    assert "exported 25 events" in out.stderr
    checked = cli("verify-bundle", bundle, "--verifier-key", data / "keys" / "ledger.pub", "--json").stdout
    report = json.loads(checked)
    assert report["events"] == 25 and report["selection"]["sql"] == sql
    no_positions = refused("export", "--data", data, "--sql", "SELECT type FROM events", "--out", tmp_path / "x.json")
    assert "must return the columns partition and log_index" in no_positions
    assert "matches no events" in refused(
        "export", "--data", data, "--mission", "no-such-mission", "--out", tmp_path / "y.json"
    )
