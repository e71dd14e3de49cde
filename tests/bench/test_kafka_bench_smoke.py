"""The Kafka ingest benchmark still runs against the real broker: at a tiny size it prints positive figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
BOOTSTRAP = os.environ.get("AGENT_LEDGER_KAFKA", "")

pytestmark = pytest.mark.skipif(
    not BOOTSTRAP,
    reason="AGENT_LEDGER_KAFKA (host:port of a real Kafka broker) is not set; `scripts/test` starts one",
)


def test_kafka_ingest_prints_positive_figures_latency_and_met_flags(tmp_path: Path) -> None:
    command = [
        *(sys.executable, str(BENCH / "kafka_ingest.py"), "--kafka", BOOTSTRAP),
        *("--events", "200", "--repeat", "1", "--latency-seconds", "1"),
        *("--tmp-dir", str(tmp_path)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["benchmark"] == "kafka_ingest"
    assert result["params"]["events"] == 200
    assert result["params"]["sequencers"] == 2  # the default: one worker per core
    assert result["params"]["partitions"] == 2  # the default: one partition per worker
    assert result["figures"]["cpu_s_runs"][0]["sequencer_cpu_s"] > 0
    # Counted from the commit markers in ledger.events: at least one transaction, at most one per event.
    (transactions,) = result["figures"]["transactions_runs"]
    assert 1 <= transactions <= 200
    assert result["figures"]["events_per_transaction"] == round(200 / transactions, 1)
    for side in ("figures", "baseline"):
        assert result[side]["events"] == 200
        assert result[side]["events_per_s"] > 0
        assert all(rate > 0 for rate in result[side]["events_per_s_runs"])
    latency = result["figures"]["latency_at_half_load"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert latency["samples_runs"][0] >= 20
    assert result["ratio"] > 0
    # The floor ran too (one relay per partition) and its ceiling is its own rate over the same baseline.
    floor = result["floor"]
    assert floor["events"] == 200 and all(rate > 0 for rate in floor["events_per_s_runs"])
    assert floor["cpu_s_runs"][0]["relay_cpu_s"] > 0
    assert floor["ceiling_ratio"] == round(floor["events_per_s"] / result["baseline"]["events_per_s"], 4)
    assert set(result["met"]) == set(result["targets"]) == {"events_per_s", "ratio", "p99_ms_at_half_load_max"}
    assert list(tmp_path.iterdir()) == []  # the sequencer's keys and replica are gone


def test_kafka_ingest_refuses_more_workers_than_partitions() -> None:
    command = [sys.executable, str(BENCH / "kafka_ingest.py"), "--kafka", BOOTSTRAP, "--partitions", "2"]
    done = subprocess.run([*command, "--sequencers", "3"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert "--sequencers must be between 1 and --partitions" in done.stderr
