"""Beat 5: the audit sink copies the log into DuckDB, and an auditor's saved query finds the refused mission.

It reuses the sink (`consumers.audit.sink.audit_runner`, exactly once, resumable) and the read-only session and
saved queries of `agent-ledger audit` (`AuditSession`, `run_saved`): the auditor asks the log's facts, not the
projections, so a mission a human closed without its evidence shows up whatever the projections decided.
It writes only the audit store, and never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumers.audit.queries import run_saved
from consumers.audit.session import AuditSession, audit_dir
from consumers.audit.sink import audit_runner
from consumers.audit.store import STORE_FILE
from ledger.demo.summary import AuditFinding, RefusedClose
from ledger.sdk import Ledger

AUDIT_QUERY = "missions-closed-without-evidence"
TIMELINE_QUERY = "mission-timeline"
CLOSE_EVENTS = frozenset({"mission.close.requested", "mission.close.refused", "mission.closed"})


def load_audit_store(ledger: Ledger, state_root: Path, on_progress: Callable[[int], None] | None = None) -> int:
    """Run the audit sink to the end of the log; return how many events it copied now."""
    with audit_runner(ledger.log, audit_dir(state_root)) as runner:
        if on_progress is not None:
            report = on_progress
            runner.on_progress = lambda progress: report(progress.applied)
        return runner.catch_up()


def _rows(relation: Any) -> list[dict[str, Any]]:
    columns = list(relation.columns)
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


def ask_auditor(state_root: Path, refused: RefusedClose | None) -> AuditFinding:
    """The saved query over the whole audit store, its rows about the refused mission, and that mission's close
    story as `mission-timeline` tells it (scoped to the mission's tenant, as that tenant's auditor sees it)."""
    directory = audit_dir(state_root)
    with AuditSession(directory, source="store") as session:
        ((events,),) = session.execute("SELECT count(*) FROM events").fetchall()
        rows = _rows(run_saved(session, AUDIT_QUERY, {}))
    found, timeline = [], []
    if refused is not None:
        found = [row for row in rows if (row["tenant"], row["mission_id"]) == (refused.tenant, refused.mission_id)]
        with AuditSession(directory, tenant=refused.tenant, source="store") as session:
            story = _rows(run_saved(session, TIMELINE_QUERY, {"mission": refused.mission_id}))
        timeline = [row for row in story if row["type"] in CLOSE_EVENTS]
    return AuditFinding(directory / STORE_FILE, int(events), AUDIT_QUERY, rows, found, timeline)
