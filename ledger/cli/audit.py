"""`agent-ledger audit`: read-only SQL over the audit store, saved queries, SQL verification, answers as bundles.

    agent-ledger audit "SELECT type, count(*) FROM events GROUP BY ALL" [--tenant T] [--format csv]
    agent-ledger audit --saved calls-without-result [--param key=value]
    agent-ledger audit --list-saved
    agent-ledger audit --verify            # hashes, chains and indexes recomputed inside DuckDB
    agent-ledger audit "SQL returning partition, log_index" --bundle answer.json

It reads `<state>/audit` (written by `agent-ledger consume audit`): the store file when no sink holds it, else
the Parquet segments the sink publishes. With `--tenant` only that tenant's events are visible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.audit.queries import SAVED_QUERIES, run_saved, saved_query
from consumers.audit.selection import Selection
from consumers.audit.session import AuditSession
from consumers.audit.verify import verify_sql
from ledger.cli.answers import FORMATS, write_answer
from ledger.cli.audit_source import add_audit_source_options, open_session
from ledger.cli.common import settings_from, warn
from ledger.cli.export import export_selection
from ledger.errors import UsageError, VerificationFailed
from ledger.keys import load_verifier


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "audit",
        help="read-only SQL over the audit store (saved queries, SQL verification)",
        description="Query the audit store (views: events, checkpoints). Writes are refused.",
    )
    parser.add_argument("sql", nargs="?", metavar="SQL", help="one SELECT over the views events and checkpoints")
    parser.add_argument("--saved", metavar="NAME", help="run a saved query (see --list-saved)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a saved query's parameter")
    parser.add_argument("--list-saved", action="store_true", help="list the saved queries and their parameters")
    parser.add_argument("--verify", action="store_true", help="verify hashes, chains and log indexes in SQL")
    add_audit_source_options(parser)
    parser.add_argument("--format", choices=FORMATS, default="table", help="answer format (default table)")
    parser.add_argument("--output", type=Path, help="write the answer to FILE (required for parquet)")
    parser.add_argument(
        "--bundle", type=Path, metavar="FILE", help="also export the answer's events as a signed bundle"
    )
    parser.add_argument("--verifier-key", help="pinned verifier key for --verify (default <keys>/ledger.pub)")
    parser.add_argument(
        "--allow-unsealed", action="store_true", help="--verify: accept events after the last checkpoint"
    )
    parser.add_argument("--no-merkle", action="store_true", help="--verify: skip recomputing the checkpoints' roots")
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="stop the query after this long (exit 2)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    modes = [bool(args.sql), bool(args.saved), args.list_saved, args.verify]
    if sum(modes) != 1:
        raise UsageError("give one of: SQL, --saved NAME, --list-saved, --verify")
    if args.list_saved:
        for query in SAVED_QUERIES.values():
            params = " ".join(f"--param {name}=..." for name in query.params)
            print(f"{query.name}{' ' + params if params else ''}\n    {query.title}")
        return 0
    if args.bundle is not None and not args.sql:
        raise UsageError("--bundle exports the answer of a SQL query; give the SQL")
    with open_session(args, timeout_s=args.timeout) as session:
        if args.verify:
            return _verify(args, session)
        if args.saved:
            relation = run_saved(session, saved_query(args.saved).name, _params(args.param))
        else:
            relation = session.query(args.sql)
        with session.time_limit():
            rows = write_answer(relation, args.format, args.output)
        if args.output is not None:
            warn(f"{rows} rows written to {args.output} ({args.format}; source: {session.source})")
        if args.bundle is not None:
            warn(export_selection(args, session, Selection(tenant=args.tenant, sql=args.sql), args.bundle))
    return 0


def _verify(args: argparse.Namespace, session: AuditSession) -> int:
    settings = settings_from(args)
    verifier = load_verifier(args.verifier_key or settings.verifier_key_path)
    report = verify_sql(session, verifier, merkle=not args.no_merkle, allow_unsealed=args.allow_unsealed)
    scope = f"tenant {session.tenant}" if session.tenant else "all tenants"
    if not report.ok:
        raise VerificationFailed(f"audit store ({session.source}): {report.problems[0].line()}")
    indexes = "log indexes continuous, " if report.indexes_checked else ""
    roots = f", {report.roots_checked} Merkle roots recomputed" if report.roots_checked else ""
    unsealed = f"; {report.unsealed} events after the last checkpoint (unsealed)" if report.unsealed else ""
    print(
        f"verified {report.events} events in {report.streams} streams in SQL ({scope}, source {session.source}):"
        f" hashes recomputed, typed columns match the hashed bytes, {indexes}chains linked;"
        f" {report.checkpoints} checkpoint signatures good{roots}{unsealed}"
    )
    return 0


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, not {pair!r}")
        params[key] = value
    return params
