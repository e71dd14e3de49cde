"""The `agent-ledger demo` story: a seeded, reproducible day of two tenants' agents, run end to end and proven.

`generate_scenario` plans every submission (fixed seed, fixed clock: only recorded_at differs between runs),
including the bad inputs a real deployment sees; `run_demo` runs the seven beats on the embedded default or on
Kafka (the day, production scope earned, a failure narrowed, a refused close, the audit that finds it, an offline
verified export, a stricter policy rebuilt, diffed and promoted), seals, verifies with the pinned key and returns
a `DemoSummary` read back from the ledger itself. It only ever deletes a directory that carries its own marker
file, and it never prints.
"""

from ledger.demo.plan import PlannedSubmission
from ledger.demo.runner import MARKER_FILENAME, prepare_demo_dir
from ledger.demo.scenario import generate_scenario
from ledger.demo.story import run_demo
from ledger.demo.summary import Beat, DemoSummary

__all__ = [
    "MARKER_FILENAME",
    "Beat",
    "DemoSummary",
    "PlannedSubmission",
    "generate_scenario",
    "prepare_demo_dir",
    "run_demo",
]
