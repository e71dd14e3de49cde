"""`bench/run_all` still works: at quick sizes it runs the named benchmarks, keeps their JSON in one file and
writes the figures table into a README's Performance section, replacing its own table on a rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parents[2] / "bench" / "run_all"
README = "# Project\n\n## Performance\n\nNotes written by hand stay.\n\n## Next section\n"


def run_all(tmp_path: Path, *names: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_LEDGER_")}
    return subprocess.run(
        [
            sys.executable,
            str(RUN_ALL),
            "--quick",
            "--only",
            *names,
            "--tmp-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "latest.json"),
            "--readme",
            str(tmp_path / "README.md"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_run_all_writes_results_and_the_readme_table(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)

    first = run_all(tmp_path, "embedded_append", "verify")
    assert first.returncode == 0, first.stderr
    second = run_all(tmp_path, "verify")
    assert second.returncode == 0, second.stderr

    results = json.loads((tmp_path / "latest.json").read_text())["results"]
    assert list(results) == ["embedded_append", "verify"]  # the first run's result is kept by the second
    assert results["verify"]["figures"]["events"] == 2000
    readme = (tmp_path / "README.md").read_text()
    assert readme.count("bench-table:start") == 1 and readme.count("bench-table:end") == 1
    assert "| `embedded_append` |" in readme and "| `verify` |" in readme
    assert f"{results['verify']['ratio']:.2f}" in readme
    assert "Notes written by hand stay." in readme and readme.endswith("## Next section\n")
    assert "bench/verify.py" in readme  # the command that measured it


def test_run_all_reports_a_failed_benchmark_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    env_kafka = "127.0.0.1:1"  # nothing listens there: the Kafka benchmark must fail, not hang
    done = subprocess.run(
        [
            sys.executable,
            str(RUN_ALL),
            "--quick",
            "--only",
            "kafka_ingest",
            "--kafka",
            env_kafka,
            "--out",
            str(tmp_path / "latest.json"),
            "--no-readme",
            "--tmp-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "failed" in done.stderr


def test_table_only_keeps_when_and_on_what_the_stored_figures_were_measured(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    assert run_all(tmp_path, "verify").returncode == 0
    stored = json.loads((tmp_path / "latest.json").read_text())
    stored["machine"]["loadavg_1m"] = 99.5  # a load this machine is not under now
    (tmp_path / "latest.json").write_text(json.dumps(stored))

    command = [sys.executable, str(RUN_ALL), "--table-only", "--out", str(tmp_path / "latest.json")]
    done = subprocess.run([*command, "--readme", str(tmp_path / "README.md")], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    rewritten = json.loads((tmp_path / "latest.json").read_text())
    assert rewritten["machine"] == stored["machine"]
    assert rewritten["generated_at"] == stored["generated_at"]
    assert rewritten["results"] == stored["results"]
