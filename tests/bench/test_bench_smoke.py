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
