"""The benchmark scripts still run: each one, at a tiny size, prints a JSON result with positive figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import run_benchmark


@pytest.mark.parametrize(("script", "name"), [("embedded_append.py", "embedded_append"), ("verify.py", "verify")])
def test_benchmark_prints_positive_figures_and_a_ratio(script: str, name: str, tmp_path: Path) -> None:
    result = run_benchmark(script, tmp_path, "--events", "300")

    assert result["benchmark"] == name
    assert result["params"]["events"] == 300
    for side in ("figures", "baseline"):
        figures = result[side]
        assert figures["events"] == 300
        assert figures["events_per_s"] > 0
        assert all(rate > 0 for rate in figures["events_per_s_runs"])
    assert isinstance(result["ratio"], float) and result["ratio"] > 0
    assert set(result["met"]) == set(result["targets"])
    assert result["machine"]["cpu_count"]


def test_benchmarks_leave_no_store_behind(tmp_path: Path) -> None:
    run_benchmark("embedded_append.py", tmp_path, "--events", "300")

    assert list(tmp_path.iterdir()) == []


def test_embedded_append_reports_the_floors_of_its_ratio_target(tmp_path: Path) -> None:
    floors = run_benchmark("embedded_append.py", tmp_path, "--events", "300", "--repeat", "1")["floors"]

    parts = [floors[f"{name}_us_per_event"] for name in ("storage", "validation", "canonical", "hashing", "receipt")]
    assert all(part > 0 for part in parts)
    assert floors["sum_us_per_event"] == pytest.approx(sum(parts), abs=0.02)
    assert floors["ratio_target_allows_us_per_event"] == pytest.approx(floors["baseline_us_per_event"] / 0.5, rel=1e-3)
    assert floors["ceiling_ratio"] == pytest.approx(
        floors["baseline_us_per_event"] / floors["sum_us_per_event"], rel=1e-2
    )
    assert floors["left_for_the_rest_us_per_event"] == pytest.approx(
        floors["ratio_target_allows_us_per_event"] - floors["sum_us_per_event"], abs=0.02
    )
