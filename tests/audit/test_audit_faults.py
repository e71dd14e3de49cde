"""The audit sink under real faults: kill -9 mid-load on the embedded backend, and the whole path on real Kafka.

The first test kills `agent-ledger consume audit` with SIGKILL while it loads, restarts it, and checks that every
event is in the store exactly once and verifies. The second runs a Kafka-backed ledger with two partitions through
the sink, SQL verification, `export --mission` and an offline `verify-bundle`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
from conftest import make_settings
from factories import step
from kafka_support import BOOTSTRAP, SequencerThread, fresh_topics, requires_kafka, wait_sealed

from consumers.audit.session import AuditSession
from consumers.audit.store import STORE_FILE
from consumers.audit.verify import verify_sql
from ledger.config import Settings
from ledger.keys import load_verifier
from ledger.sdk import Ledger


def agent_ledger(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ledger.cli.main", *map(str, args)]


def store_state(audit_dir: Path) -> tuple[int, int, int]:
    """(rows, distinct log indexes, stored position) of the store, read-only."""
    with duckdb.connect(str(audit_dir / STORE_FILE), read_only=True) as db:
        ((rows, distinct),) = db.execute(
            "SELECT count(*), count(DISTINCT (partition, log_index)) FROM events"
        ).fetchall()
        positions = db.execute("SELECT log_index FROM consumer_positions").fetchall()
    return int(rows), int(distinct), int(positions[0][0]) + 1 if positions else 0


def _steps(count: int, start: int = 0, missions: int = 7) -> list[dict[str, Any]]:
    return [
        step(
            mission=f"m-{i % missions}",
            payload={"step_id": f"s-{i}", "summary": f"step {i} of the long load", "status": "completed"},
        )
        for i in range(start, start + count)
    ]


def test_kill_9_of_the_audit_sink_mid_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, every_events=5000)
    total = 40_000
    with Ledger.open(settings) as ledger:
        for first in range(0, total, 2000):
            ledger.append_batch(_steps(2000, first))
    consume = agent_ledger(
        "consume", "audit", "--once", "--batch-size", "500", "--data", settings.data_dir, "--keys", settings.key_dir
    )
    audit_dir = settings.data_dir / "consumers" / "audit"
    killed_at = None
    for delay in (1.5, 2.5, 1.0, 4.0):  # find a moment while it is loading (start-up time varies)
        process = subprocess.Popen(consume, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        if process.poll() is not None:
            break  # it finished first: the store is complete; try again from a fresh store
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        rows, distinct, position = store_state(audit_dir)
        assert rows == distinct == position  # what was committed is whole; the killed batch left nothing
        if 0 < position < total:
            killed_at = position
            break
        for path in audit_dir.iterdir():
            if path.is_file():
                path.unlink()
    assert killed_at is not None, "could not kill the sink while it was loading"
    done = subprocess.run(consume, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"audit: applied {total - killed_at} events")
    assert store_state(audit_dir) == (total, total, total)
    with AuditSession(audit_dir, source="store") as session:
        report = verify_sql(session, load_verifier(settings.verifier_key_path), allow_unsealed=True)
    assert report.ok, report.problems
    assert report.events == total


@requires_kafka
def test_a_mission_from_a_kafka_ledger_is_audited_exported_and_verified_offline(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path, every_events=30, interval_ms=200)
    topics = fresh_topics(partitions=2)
    sequencer = SequencerThread(settings, topics, tmp_path / "sequencer")
    try:
        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics) as ledger:
            for first in range(0, 210, 30):
                outcomes = ledger.append_batch(_steps(30, first, missions=14))  # returns once each has its receipt
                assert all(outcome.seq >= 1 for outcome in outcomes if hasattr(outcome, "seq")), outcomes[:3]
            wait_sealed(ledger)
        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics, read_only=True) as reader:
            sizes = [reader.log.size(p) for p in range(reader.log.partition_count)]
            log_id = reader.log.log_id
    finally:
        sequencer.stop()
    assert sum(sizes) == 210 and all(sizes), sizes  # both partitions hold events
    common = [
        "--kafka",
        BOOTSTRAP,
        "--topic-prefix",
        topics.prefix,
        "--data",
        settings.data_dir,
        "--keys",
        settings.key_dir,
    ]
    loaded = subprocess.run(
        agent_ledger("consume", "audit", "--once", *common), capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.startswith("audit: applied 210 events")
    verified = subprocess.run(agent_ledger("audit", "--verify", *common), capture_output=True, text=True, timeout=300)
    assert verified.returncode == 0, verified.stderr
    assert (
        verified.stdout.startswith("verified 210 events in 14 streams") and "Merkle roots recomputed" in verified.stdout
    )
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "ledger.pub").write_text(settings.verifier_key_path.read_text())
    for selection, count, partitions in ((["--mission", "m-3"], 15, 1), (["--tenant", "acme"], 210, 2)):
        bundle = tmp_path / f"{selection[1]}.bundle.json"
        exported = subprocess.run(
            agent_ledger("export", *selection, "--out", bundle, *common), capture_output=True, text=True, timeout=300
        )
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.startswith(f"exported {count} events")
        checked = subprocess.run(  # offline: no ledger, no broker, no AGENT_LEDGER_* settings, just the pinned key
            agent_ledger("verify-bundle", bundle, "--verifier-key", offline / "ledger.pub", "--json"),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=offline,
            env={key: value for key, value in os.environ.items() if not key.startswith("AGENT_LEDGER")},
        )
        assert checked.returncode == 0, checked.stderr
        report = json.loads(checked.stdout)
        assert (report["events"], report["partitions"], report["log_id"]) == (count, partitions, log_id)
        assert report["selection"] == {selection[0].lstrip("-"): selection[1]}
