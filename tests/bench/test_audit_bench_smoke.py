"""The audit and export benchmarks still run: at a tiny size each prints a JSON result with positive figures, a
baseline measured in the same run, and a `met` flag for each of its targets."""

from __future__ import annotations

from pathlib import Path

from bench_support import run_benchmark


def test_audit_bench_loads_queries_and_verifies(tmp_path: Path) -> None:
    result = run_benchmark("audit.py", tmp_path, "--events", "300")

    assert result["benchmark"] == "audit"
    assert result["figures"]["events"] == result["baseline"]["events"] == 300
    assert result["figures"]["events_per_s"] > 0 and result["baseline"]["events_per_s"] > 0
    assert result["ratio"] > 0
    assert set(result["queries"]) >= {"calls-without-approval", "gaps-and-forks", "mission-timeline"}
    assert all(query["seconds"] > 0 for query in result["queries"].values())
    assert result["verify"]["events_per_s"] > 0 and result["verify"]["roots_checked"] >= 1
    floor = result["verify"]["hash_floor"]
    assert len(floor["events_per_s_runs"]) == len(result["verify"]["events_per_s_runs"])
    assert floor["events_per_s"] > 0
    assert set(result["met_more"]) == set(result["targets_more"])


def test_export_bench_exports_and_verifies_offline(tmp_path: Path) -> None:
    result = run_benchmark("export.py", tmp_path, "--events", "200", "--noise", "100")

    assert result["benchmark"] == "export"
    assert result["figures"]["events"] == 200
    assert result["export_s"] > 0 and result["verify"]["seconds"] > 0
    assert result["params"]["bundle_bytes"] > 0
    assert result["ratio"] > 0 and result["verify"]["ratio"] > 0
    assert set(result["met_more"]) == {"export_s", "verify_s"}
