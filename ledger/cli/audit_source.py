"""The options that say which audit data a command reads (`--state`, `--tenant`, `--source`), and the session."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.audit.session import AuditSession, audit_dir
from consumers.generations import state_root_of
from ledger.cli.common import add_store_options, settings_from


def add_audit_source_options(parser: argparse.ArgumentParser) -> None:
    add_store_options(parser)  # --data, --keys, --kafka, --topic-prefix (bundles take their proofs from the log)
    parser.add_argument("--state", type=Path, default=None, help="consumer state dir (default <data>/consumers)")
    parser.add_argument("--tenant", help="see only this tenant's events")
    parser.add_argument(
        "--source",
        choices=("auto", "store", "segments"),
        default="auto",
        help="the DuckDB store, the Parquet segments, or auto: the store unless a sink holds it (default auto)",
    )


def open_session(args: argparse.Namespace, *, timeout_s: float | None = None) -> AuditSession:
    """A read-only session over `<state>/audit`, scoped to `--tenant` when given; `timeout_s` bounds a query."""
    settings = settings_from(args)
    directory = audit_dir(state_root_of(settings.data_dir, args.state))
    return AuditSession(directory, tenant=args.tenant, source=args.source, timeout_s=timeout_s)
