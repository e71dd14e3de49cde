"""The benchmark scripts still run: each one, at a tiny size, prints a JSON result with positive figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_benchmark(script: str, tmp_path: Path) -> dict[str, Any]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_LEDGER_")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--events", "300", "--repeat", "1", "--tmp-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(("script", "name"), [("embedded_append.py", "embedded_append"), ("verify.py", "verify")])
def test_benchmark_prints_positive_figures_and_a_ratio(script: str, name: str, tmp_path: Path) -> None:
    result = run_benchmark(script, tmp_path)

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
    run_benchmark("embedded_append.py", tmp_path)

    assert list(tmp_path.iterdir()) == []
