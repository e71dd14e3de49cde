"""`agent-ledger export`: a signed bundle of selected events with their proofs, for offline verification.

    agent-ledger export --mission m-42 --out m-42.bundle.json
    agent-ledger export --tenant acme --since 2026-01-01T00:00:00Z --until 2026-02-01T00:00:00Z --out jan.json
    agent-ledger export --sql "SELECT partition, log_index FROM events WHERE type = 'policy.decision'" --out d.json

Events are chosen over the audit store (`consume audit`), or read from the log when there is none (criteria
only). Proofs and checkpoints come from the log itself; the bundle is signed with the ledger key once every proof
checks against its signed root, and is checked anywhere with `agent-ledger verify-bundle` (format: docs/bundle.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.audit.selection import Selection, scan_events, select_events
from consumers.audit.session import AuditSession
from ledger.bundle.build import build_bundle
from ledger.cli.audit_source import add_audit_source_options, open_session
from ledger.cli.common import open_ledger, progress_bar, settings_from, warn
from ledger.errors import ConfigError, UsageError
from ledger.files import replace_file
from ledger.keys import load_signer


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "export",
        help="export selected events with proofs as a signed bundle (DSSE, in-toto)",
        description="Select events and write them with inclusion and consistency proofs as a signed bundle.",
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle file to write")
    parser.add_argument("--mission", help="events of this mission (mission_id)")
    parser.add_argument("--stream", help="events of this stream")
    parser.add_argument("--agent", help="events about this agent (agent_id)")
    parser.add_argument("--since", help="recorded at or after this RFC 3339 time")
    parser.add_argument("--until", help="recorded before this RFC 3339 time")
    parser.add_argument("--sql", help="audit SQL returning partition and log_index of the events to export")
    add_audit_source_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    selection = Selection(
        mission=args.mission,
        stream=args.stream,
        agent=args.agent,
        tenant=args.tenant,
        since=args.since,
        until=args.until,
        sql=args.sql,
    )
    try:
        session = open_session(args)
    except ConfigError as exc:
        if selection.sql is not None or args.source != "auto":
            raise
        warn(f"{exc}; selecting from the log itself")
        print(export_selection(args, None, selection, args.out))
        return 0
    with session:
        print(export_selection(args, session, selection, args.out))
    return 0


def export_selection(args: argparse.Namespace, session: AuditSession | None, selection: Selection, out: Path) -> str:
    """Select, build, verify and write one bundle; return the line that says what it holds."""
    settings = settings_from(args)
    signer = load_signer(settings.private_key_path)
    with open_ledger(args, read_only=True) as ledger:
        if session is not None:
            events = select_events(session, selection)
        else:
            with progress_bar("scanning the log") as bar:
                task = bar.add_task("scan", total=sum(ledger.log.size(p) for p in range(ledger.log.partition_count)))
                events = scan_events(ledger.log, selection, lambda seen: bar.update(task, completed=seen))
        if not events:
            raise UsageError(f"the selection {selection.described()} matches no events")
        # build_bundle checks every proof against its signed root before it signs, so the file is not read back
        bundle = build_bundle(ledger.log, events, signer, selection=selection.described())
    replace_file(out, bundle, 0o644)
    streams = len({(event["tenant"], event["stream"]) for event in events})
    return (
        f"exported {len(events)} events in {streams} streams to {out} ({len(bundle):,} bytes, signed by"
        f" {signer.verifier().key_hash_text}); check it with:"
        f" agent-ledger verify-bundle {out} --verifier-key {settings.verifier_key_path}"
    )
