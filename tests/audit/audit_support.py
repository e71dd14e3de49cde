"""Builds audit stores for the tests: the real sink, over a real ledger, into a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

from consumers.audit.sink import audit_runner
from ledger.log.base import LogBackend


def run_sink(log: LogBackend, audit_dir: Path, *, batch_size: int = 500, rows_per_segment: int = 250_000) -> int:
    """Catch the audit store under `audit_dir` up with `log` (publishing segments); return events applied."""
    with audit_runner(log, audit_dir, batch_size=batch_size, rows_per_segment=rows_per_segment) as runner:
        return runner.catch_up()
