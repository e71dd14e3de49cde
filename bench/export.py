"""Export and offline verification of one 10,000-event mission: the compliance path end to end.

Builds a ledger where one mission holds `--events` events among `--noise` events of other missions, seals it, and
loads the audit store. Then, `--repeat` times each:
- export: what `agent-ledger export --mission M` does in process (select over the audit store, fetch proofs from
  the log, build, sign, check and write the bundle). Baseline, same run: the same events selected and written
  as plain JSON (no proofs, no signature);
- verify: `verify_bundle` of that file with the pinned key (what `agent-ledger verify-bundle` does). Baseline,
  same run: parsing the file and recomputing every event hash (the least any verifier must do).

    python bench/export.py [--events 10000] [--noise 20000] [--repeat 5] [--tmp-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import common
import orjson

from consumers.audit.selection import Selection, select_events
from consumers.audit.session import AuditSession
from consumers.audit.sink import audit_runner
from ledger.bundle.verify import verify_bundle
from ledger.canonical import event_hash
from ledger.cli.export import export_selection
from ledger.config import Settings
from ledger.keys import load_verifier
from ledger.sdk import Ledger

SELECTION = Selection(tenant="acme", mission="m-0000")
TARGET_S = 2.0


def build(root: Path, events: int, noise: int) -> Settings:
    """Mission m-0000 of tenant acme with `events` events, interleaved with `noise` events of another tenant's 50."""
    settings = common.fresh_settings(root / "ledger")
    mission = list(common.iter_submissions(events, missions=1))
    others = iter(common.iter_submissions(noise, missions=50, seed=11, tenant="globex"))
    per_event = noise / events
    with Ledger.open(settings) as ledger, common.progress() as bar:
        task = bar.add_task("building the log", total=events + noise)
        pending: list[bytes] = []
        owed = 0.0
        for submission in mission:
            pending.append(submission)
            owed += per_event
            while owed >= 1:
                pending.append(next(others))
                owed -= 1
            if len(pending) >= 1000:
                ledger.append_batch(pending)
                bar.advance(task, len(pending))
                pending = []
        pending.extend(others)
        if pending:
            ledger.append_batch(pending)
        ledger.seal()
        with audit_runner(ledger.log, root / "consumers" / "audit") as runner:
            runner.catch_up()
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.run_parser(__doc__, events=10_000, repeat=5, tmp="the ledger and bundles", profiled="-")
    parser.add_argument("--noise", type=int, default=20_000, help="events of other missions (default 20000)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1 or args.noise < 0:
        parser.error("--events and --repeat must be positive, --noise not negative")
    export_s: list[float] = []
    plain_s: list[float] = []
    verify_s: list[float] = []
    parse_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-export-", dir=args.tmp_dir) as scratch:
        root = Path(scratch)
        settings = build(root, args.events, args.noise)
        cli_args = argparse.Namespace(
            data=settings.data_dir, keys=settings.key_dir, kafka=None, topic_prefix="", max_payload_bytes=None
        )
        verifier = load_verifier(settings.verifier_key_path)
        bundle = root / "mission.bundle.json"
        audit_dir = root / "consumers" / "audit"
        with common.progress() as bar:
            task = bar.add_task("export and verify", total=args.repeat)
            for _ in range(args.repeat):
                with AuditSession(audit_dir) as session:
                    started = time.perf_counter()
                    export_selection(cli_args, session, SELECTION, bundle)
                    export_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    events = select_events(session, SELECTION)
                    (root / "plain.json").write_bytes(orjson.dumps(events))
                    plain_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                report = verify_bundle(bundle.read_bytes(), verifier)
                verify_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                for event in orjson.loads((root / "plain.json").read_bytes()):
                    event_hash(event)
                parse_s.append(time.perf_counter() - started)
                bar.advance(task)
        if report.events != args.events:
            raise SystemExit(f"export: the bundle holds {report.events} events, not {args.events}")
        size = bundle.stat().st_size
    export_median, verify_median = common.median(export_s), common.median(verify_s)
    common.print_result(
        "export",
        params={"events": args.events, "noise": args.noise, "repeat": args.repeat, "bundle_bytes": size},
        figures={
            "path": "export --mission: select, prove, sign, check, write",
            **common.rate_figures(args.events, export_s),
        },
        baseline={
            "path": "the same events selected, written as plain JSON",
            **common.rate_figures(args.events, plain_s),
        },
        targets={},
        extra={
            "export_s": round(export_median, 3),
            "verify": {
                "path": "verify_bundle with the pinned key",
                "seconds": round(verify_median, 3),
                "seconds_runs": [round(s, 3) for s in verify_s],
                "baseline_path": "parse the plain JSON and recompute every event hash",
                "baseline_seconds": round(common.median(parse_s), 3),
                "ratio": round(common.median(parse_s) / verify_median, 4),
            },
            "targets_more": {"export_s": TARGET_S, "verify_s": TARGET_S},
            "met_more": {"export_s": export_median < TARGET_S, "verify_s": verify_median < TARGET_S},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
