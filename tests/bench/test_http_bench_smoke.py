"""The HTTP load benchmark still runs: at a tiny size it starts `agent-ledger serve`, appends over HTTP one event
and a batch per request, and prints positive figures with latencies, the SDK baseline and the ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_support import run_benchmark


def assert_side(figures: dict[str, Any], events: int) -> None:
    assert figures["path"]
    assert figures["events"] == events
    assert figures["events_per_s"] > 0 and len(figures["events_per_s_runs"]) == 1
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["requests_per_run"] > 0


def test_http_load_prints_figures_latencies_and_ratios_against_the_sdk(tmp_path: Path) -> None:
    result = run_benchmark("http_load.py", tmp_path, "--events", "200", "--clients", "2", "--batch-size", "20")

    assert result["benchmark"] == "http_load"
    assert result["params"]["events"] == 200 and result["params"]["clients"] == 2
    assert_side(result["figures"], 200)
    assert_side(result["baseline"], 200)
    assert result["figures"]["requests_per_run"] == 200
    assert_side(result["batch"]["figures"], 200)
    assert_side(result["batch"]["baseline"], 200)
    assert result["batch"]["figures"]["requests_per_run"] == 10
    assert result["ratio"] > 0 and result["batch"]["ratio"] > 0
    assert set(result["met"]) == set(result["targets"])
    assert list(tmp_path.iterdir()) == []  # every store, key and server log is gone
