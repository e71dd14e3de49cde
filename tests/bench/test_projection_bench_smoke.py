"""The projection benchmarks still run: rebuild and authorize, at a tiny size, print a JSON result with positive
figures, a baseline, a ratio and a `met` flag per target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_support import run_benchmark


def assert_rates(figures: dict[str, Any], count: int) -> None:
    assert figures["events"] == count
    assert figures["events_per_s"] > 0
    assert len(figures["events_per_s_runs"]) == 1 and all(rate > 0 for rate in figures["events_per_s_runs"])
    assert figures["path"]


def assert_latencies(figures: dict[str, Any]) -> None:
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert len(figures["p99_ms_runs"]) == 1


def test_rebuild_prints_positive_figures_against_a_bare_read(tmp_path: Path) -> None:
    result = run_benchmark("rebuild.py", tmp_path, "--events", "300")

    assert result["benchmark"] == "rebuild"
    assert result["params"]["events"] == 300
    assert result["params"]["projections"]
    assert_rates(result["figures"], 300)
    assert_rates(result["baseline"], 300)
    assert isinstance(result["ratio"], float) and result["ratio"] > 0
    assert set(result["met"]) == set(result["targets"]) == {"events_per_s"}
    assert all(isinstance(flag, bool) for flag in result["met"].values())
    assert result["machine"]["cpu_count"]
    assert list(tmp_path.iterdir()) == []  # the log and the rebuilt states are gone


def test_authorize_prints_latencies_of_every_kind_and_the_p99_target(tmp_path: Path) -> None:
    result = run_benchmark("authorize.py", tmp_path, "--calls", "120", "--agents", "6")

    assert result["benchmark"] == "authorize"
    assert (result["params"]["calls"], result["params"]["agents"]) == (120, 6)
    figures = result["figures"]
    for side in (figures, figures["recorded"], figures["historical"], result["baseline"]):
        assert_rates(side, 120)
        assert_latencies(side)
    # the mix asks questions whose answers are allow, deny and escalate, now and in the past
    for side in (figures, figures["recorded"], figures["historical"]):
        assert set(side["answers"]) == {"allow", "deny", "escalate"}
        assert sum(side["answers"].values()) == 120
    assert figures["answers"] == figures["recorded"]["answers"]
    assert "answers" not in result["baseline"]
    assert isinstance(result["ratio"], float) and result["ratio"] > 0
    assert result["targets"] == {"p99_ms_max": 5.0}
    assert set(result["met"]) == set(result["targets"])
    assert result["met"]["p99_ms_max"] is (figures["p99_ms"] < 5.0)
    assert list(tmp_path.iterdir()) == []  # the ledger and its projection stores are gone
