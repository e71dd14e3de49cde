"""The `agent-ledger demo` workload: a seeded, reproducible day of two tenants' agents, run end to end.

`generate_scenario` plans every submission (fixed seed, fixed clock: only recorded_at differs between runs),
including the bad inputs a real deployment sees; `run_demo` appends them in batches on the embedded default,
seals, reopens read-only and verifies, and returns a `DemoSummary` read back from the ledger itself.
It only ever deletes a directory that carries its own marker file, and it never prints.
"""

from ledger.demo.plan import PlannedSubmission
from ledger.demo.runner import MARKER_FILENAME, DemoSummary, prepare_demo_dir, run_demo
from ledger.demo.scenario import generate_scenario

__all__ = ["MARKER_FILENAME", "DemoSummary", "PlannedSubmission", "generate_scenario", "prepare_demo_dir", "run_demo"]
