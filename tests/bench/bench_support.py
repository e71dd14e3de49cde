"""Running a benchmark script the way the smoke tests do: one repetition, scratch files in the test's tmp dir,
no AGENT_LEDGER_* settings from the caller's shell, and its one JSON result parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_benchmark(script: str, tmp_path: Path, *options: str, timeout: float = 180) -> dict[str, Any]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_LEDGER_")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *options, "--repeat", "1", "--tmp-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result
