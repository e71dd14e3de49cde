"""The audit store at scale: sink load rate, saved-query latency and SQL verification rate.

Builds a ledger of `--events` schema-valid events through the real append path (or reuses `--ledger DIR`), then:
- load: `agent-ledger consume audit`'s runner (read the log, decode, check, Arrow insert, position, commit,
  checkpoints, Parquet segments) into a fresh DuckDB store. Baseline, same run: a raw DuckDB Arrow insert of the
  same rows, read back from the loaded store in the same batch size (reading is not timed), into a fresh file;
- every saved query over the store (median of `--query-repeat` runs each);
- SQL verification (hashes, columns, chains, indexes) inside DuckDB, median of `--repeat` runs; the Merkle root
  recomputation that `audit --verify` adds is timed once, separately. Its floor, same run: DuckDB recomputing
  every event hash from the stored canonical bytes and comparing it, nothing else (the one part verification
  cannot skip), median of `--repeat` runs.

    python bench/audit.py [--events 10000000] [--repeat 3] [--batch-size 10000] [--ledger DIR] [--tmp-dir DIR]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import duckdb
import pyarrow as pa

from consumers.audit.queries import SAVED_QUERIES, run_saved
from consumers.audit.schema import create_table
from consumers.audit.session import AuditSession
from consumers.audit.sink import audit_runner
from consumers.audit.store import STORE_FILE
from consumers.audit.verify import COMPUTED_HASH_SQL, verify_sql
from ledger.config import Settings
from ledger.keys import load_verifier
from ledger.sdk import Ledger

TARGETS = {"events_per_s": 100_000, "query_s": 1.0, "verify_events_per_s": 1_000_000}


def build_log(root: Path, count: int, missions: int) -> Settings:
    settings = common.fresh_settings(root / "ledger")
    with Ledger.open(settings) as ledger, common.progress() as bar:
        task = bar.add_task("building the log", total=count)
        batch: list[bytes] = []
        for submission in common.iter_submissions(count, missions=missions):
            batch.append(submission)
            if len(batch) == 1000:
                ledger.append_batch(batch)
                bar.advance(task, len(batch))
                batch = []
        if batch:
            ledger.append_batch(batch)
            bar.advance(task, len(batch))
    return settings


def existing_log(directory: Path) -> Settings:
    return Settings(data_dir=directory, keys_dir=directory / "keys")


def run_load(settings: Settings, audit_dir: Path, batch_size: int) -> tuple[float, int]:
    with Ledger.open(settings, read_only=True) as ledger, common.progress() as bar:
        task = bar.add_task("audit sink", total=ledger.log.size(0))
        with audit_runner(ledger.log, audit_dir, batch_size=batch_size) as runner:
            runner.on_progress = lambda progress: bar.update(task, completed=progress.applied)
            started = time.perf_counter()
            applied = runner.catch_up()
            return time.perf_counter() - started, applied


def run_baseline(store: Path, target: Path, batch_size: int) -> float:
    """Seconds spent inserting Arrow batches of the store's rows into a fresh DuckDB file (reads not timed)."""
    spent = 0.0
    with duckdb.connect(str(store), read_only=True) as source, duckdb.connect(str(target)) as db:
        db.execute(create_table("events"))
        reader = source.sql("SELECT * FROM events ORDER BY partition, log_index").to_arrow_reader(batch_size)
        pending: list[Any] = []
        rows = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows < batch_size:
                continue
            spent += _insert(db, pending)
            pending, rows = [], 0
        if pending:
            spent += _insert(db, pending)
        started = time.perf_counter()
        db.execute("CHECKPOINT")
        spent += time.perf_counter() - started
    return spent


def _insert(db: duckdb.DuckDBPyConnection, batches: list[Any]) -> float:
    table = pa.Table.from_batches(batches)
    started = time.perf_counter()
    db.begin()
    db.register("batch", table)
    db.execute("INSERT INTO events SELECT * FROM batch")
    db.unregister("batch")
    db.commit()
    return time.perf_counter() - started


def time_queries(audit_dir: Path, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with AuditSession(audit_dir, source="store") as session:
        ((mission, agent),) = session.execute(
            "SELECT mission_id, agent_id FROM events WHERE mission_id IS NOT NULL LIMIT 1"
        ).fetchall()
        params = {"mission": mission, "agent": agent}
        for name, query in SAVED_QUERIES.items():
            given = {key: params[key] for key in query.params}
            seconds, rows = [], 0
            for _ in range(repeat):
                started = time.perf_counter()
                answer = run_saved(session, name, given)
                rows = len(answer.fetchall() if hasattr(answer, "fetchall") else answer.rows)
                seconds.append(time.perf_counter() - started)
            results[name] = {
                "seconds": round(common.median(seconds), 4),
                "runs": [round(s, 4) for s in seconds],
                "rows": rows,
            }
    return results


def time_verify(audit_dir: Path, verifier_path: Path, repeat: int) -> tuple[list[float], float, Any]:
    verifier = load_verifier(verifier_path)
    seconds = []
    with AuditSession(audit_dir, source="store") as session:
        report = None
        for _ in range(repeat):
            started = time.perf_counter()
            report = verify_sql(session, verifier, merkle=False, allow_unsealed=True)
            seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        full = verify_sql(session, verifier, merkle=True, allow_unsealed=True)
        merkle_seconds = time.perf_counter() - started - common.median(seconds)
    assert report is not None and report.ok and full.ok, (report, full)
    return seconds, merkle_seconds, full


def time_hash_floor(audit_dir: Path, repeat: int) -> list[float]:
    """Seconds for DuckDB to recompute and compare every event hash, the floor of any SQL verification."""
    seconds = []
    with AuditSession(audit_dir, source="store") as session:
        for _ in range(repeat):
            started = time.perf_counter()
            ((mismatched,),) = session.execute(
                f"SELECT count(*) FROM events WHERE {COMPUTED_HASH_SQL} IS DISTINCT FROM hash"
            ).fetchall()
            seconds.append(time.perf_counter() - started)
    assert mismatched == 0, f"{mismatched} stored hashes differ from their canonical bytes"
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.run_parser(__doc__, events=10_000_000, repeat=3, tmp="the ledger and stores", profiled="-")
    parser.add_argument("--batch-size", type=int, default=10_000, help="events per sink transaction (default 10000)")
    parser.add_argument("--query-repeat", type=int, default=5, help="runs of each saved query (default 5)")
    parser.add_argument("--ledger", type=Path, default=None, help="reuse the ledger in DIR instead of building one")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1 or args.batch_size < 1 or args.query_repeat < 1:
        parser.error("--events, --repeat, --batch-size and --query-repeat must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=args.tmp_dir) as scratch:
        root = Path(scratch)
        settings = existing_log(args.ledger) if args.ledger else build_log(root, args.events, args.missions)
        audit_dir = root / "audit"
        load_seconds, events = run_load(settings, audit_dir, args.batch_size)
        baseline_seconds = run_baseline(audit_dir / STORE_FILE, root / "baseline.duckdb", args.batch_size)
        queries = time_queries(audit_dir, args.query_repeat)
        verify_seconds, merkle_seconds, report = time_verify(audit_dir, settings.verifier_key_path, args.repeat)
        hash_floor_seconds = time_hash_floor(audit_dir, args.repeat)
        with duckdb.connect(str(audit_dir / STORE_FILE), read_only=True) as db:
            ((canonical_bytes,),) = db.execute("SELECT avg(length(canonical)) FROM events").fetchall()
        store_bytes = (audit_dir / STORE_FILE).stat().st_size
    verify_rates = [events / s for s in verify_seconds]
    floor_rates = [events / s for s in hash_floor_seconds]
    slowest = max(query["seconds"] for query in queries.values())
    common.print_result(
        "audit",
        params={
            "events": events,
            "batch_size": args.batch_size,
            "missions": args.missions,
            "canonical_bytes_mean": round(float(canonical_bytes), 1),
            "store_bytes": store_bytes,
            "timed": "load: the sink's catch-up over the whole log; baseline: Arrow inserts + commits only",
        },
        figures={"path": "AuditSink via ConsumerRunner", **common.rate_figures(events, [load_seconds])},
        baseline={"path": "duckdb Arrow INSERT of the same rows", **common.rate_figures(events, [baseline_seconds])},
        targets={"events_per_s": TARGETS["events_per_s"]},
        extra={
            "queries": queries,
            "slowest_query_s": slowest,
            "verify": {
                "events_per_s": round(common.median(verify_rates), 1),
                "events_per_s_runs": [round(rate, 1) for rate in verify_rates],
                "merkle_roots_s": round(merkle_seconds, 3),
                "roots_checked": report.roots_checked,
                "hash_floor": {
                    "path": f"duckdb: count(*) WHERE {COMPUTED_HASH_SQL} IS DISTINCT FROM hash",
                    "events_per_s": round(common.median(floor_rates), 1),
                    "events_per_s_runs": [round(rate, 1) for rate in floor_rates],
                    "meaning": "the rate of the hash check alone; SQL verification does it and more, so it "
                    "cannot be faster",
                },
            },
            "targets_more": {"query_s": TARGETS["query_s"], "verify_events_per_s": TARGETS["verify_events_per_s"]},
            "met_more": {
                "query_s": slowest < TARGETS["query_s"],
                "verify_events_per_s": common.median(verify_rates) >= TARGETS["verify_events_per_s"],
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
