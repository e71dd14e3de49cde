"""`agent-ledger append`: append one event from arguments, or many from a JSONL file in batches.

Receipts go to stdout as JSON lines. Each refusal is one line on stderr naming the input line and reason, and
is recorded in the store; the exit code is 2 when anything was refused (a duplicate prints its original receipt).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from ledger.cli.common import add_store_options, open_ledger, print_json, warn
from ledger.errors import DuplicateEventId, SubmissionRefused, UsageError
from ledger.sequencer import Outcome, RawSubmission


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("append", help="append events from arguments or a JSONL file")
    add_store_options(parser)
    parser.add_argument("--file", "-f", help="JSONL file of submissions ('-' for stdin)")
    parser.add_argument("--batch-size", type=int, default=100, help="submissions per batch (default 100)")
    parser.add_argument("--tenant", help="the tenant written; with --file, lines for other tenants are refused")
    parser.add_argument("--stream", help="e.g. mission/m-42")
    parser.add_argument("--type", dest="event_type", help="event type, e.g. mission.opened")
    parser.add_argument("--actor", help="KIND:ID, e.g. agent:a-7 (kinds: agent model tool human policy system)")
    parser.add_argument("--payload", default="{}", help="payload JSON object")
    parser.add_argument("--event-id", help="idempotency key (UUIDv7 when absent)")
    parser.add_argument("--expected-seq", type=int, help="refuse unless the stream is now at this seq")
    parser.add_argument("--schema-version", type=int)
    parser.add_argument("--agent-id")
    parser.add_argument("--mission-id")
    parser.add_argument("--causation-id")
    parser.add_argument("--occurred-at", help="RFC 3339 (default: sequencer time)")
    parser.add_argument("--max-payload-bytes", type=int, help="payload size limit (default 65536)")
    parser.set_defaults(run=run)


def submission_from_arguments(args: argparse.Namespace) -> str:
    """The submission as JSON text; the payload text is embedded verbatim so bad JSON is recorded as given."""
    missing = [
        flag
        for flag, value in (
            ("--tenant", args.tenant),
            ("--stream", args.stream),
            ("--type", args.event_type),
            ("--actor", args.actor),
        )
        if not value
    ]
    if missing:
        raise UsageError(f"append needs {', '.join(missing)} (or --file)")
    kind, sep, actor_id = args.actor.partition(":")
    if not sep:
        raise UsageError(f"--actor {args.actor!r} must be KIND:ID, e.g. agent:a-7")
    fields = {
        "tenant": args.tenant,
        "stream": args.stream,
        "type": args.event_type,
        "actor": {"kind": kind, "id": actor_id},
        "event_id": args.event_id,
        "expected_seq": args.expected_seq,
        "schema_version": args.schema_version,
        "agent_id": args.agent_id,
        "mission_id": args.mission_id,
        "causation_id": args.causation_id,
        "occurred_at": args.occurred_at,
    }
    head = orjson.dumps({k: v for k, v in fields.items() if v is not None}).decode()
    payload_text: str = args.payload
    return head[:-1] + ',"payload":' + payload_text + "}"


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    try:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield number, line.rstrip(b"\r\n")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _batches(args: argparse.Namespace) -> Iterator[list[tuple[int, RawSubmission]]]:
    if args.file is None:
        yield [(0, submission_from_arguments(args))]
        return
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.file != "-" and not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    batch: list[tuple[int, RawSubmission]] = []
    for number, line in _lines(args.file):
        batch.append((number, line))
        if len(batch) >= args.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _report(number: int, outcome: Outcome) -> bool:
    """Print one outcome; True when it was refused."""
    where = f"line {number}: " if number else ""
    if isinstance(outcome, SubmissionRefused):
        if isinstance(outcome, DuplicateEventId):
            print_json(outcome.original_receipt)
        warn(f"{where}refused ({outcome.reason_code}): {outcome}")
        return True
    print_json(outcome.model_dump(mode="json", exclude_none=True))
    return False


def run(args: argparse.Namespace) -> int:
    tenant = args.tenant if args.file is not None else None
    refused = appended = 0
    with open_ledger(args, read_only=False) as ledger:
        for batch in _batches(args):
            outcomes = ledger.append_batch([raw for _, raw in batch], tenant=tenant)
            for (number, _), outcome in zip(batch, outcomes, strict=True):
                if _report(number, outcome):
                    refused += 1
                else:
                    appended += 1
    if args.file is not None:
        warn(f"appended {appended}, refused {refused}")
    return 2 if refused else 0
