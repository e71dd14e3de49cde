"""Read-side commands: `tail` (stored envelopes as JSON lines), `checkpoint`, `receipt`, `rejections`.

`tail` writes each envelope exactly as stored and hashed (canonical JSON, hash included), one per line.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from ledger.cli.common import add_store_options, open_ledger, print_json
from ledger.errors import UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser("tail", help="print stored events as JSON lines")
    add_store_options(tail)
    tail.add_argument("--tenant", help="only this tenant")
    tail.add_argument("--stream", help="only this stream")
    tail.add_argument("--type", dest="event_type", help="only this event type")
    tail.add_argument("--from", dest="start", type=int, default=0, help="skip events below this log index")
    tail.add_argument("--limit", type=int, help="at most this many events")
    tail.add_argument("--follow", action="store_true", help="keep printing new events")
    tail.set_defaults(run=run_tail)

    checkpoint = commands.add_parser("checkpoint", help="print the latest signed checkpoint and verifier key")
    add_store_options(checkpoint)
    checkpoint.add_argument("--json", action="store_true", help="one JSON object per partition")
    checkpoint.set_defaults(run=run_checkpoint)

    receipt = commands.add_parser("receipt", help="the receipt of an event, with its inclusion proof")
    add_store_options(receipt)
    receipt.add_argument("event_id")
    receipt.add_argument("--tenant", required=True)
    receipt.set_defaults(run=run_receipt)

    rejections = commands.add_parser("rejections", help="recently refused submissions with their reasons")
    add_store_options(rejections)
    rejections.add_argument("--limit", type=int, default=20)
    rejections.set_defaults(run=run_rejections)


def run_tail(args: argparse.Namespace) -> int:
    if args.start < 0 or (args.limit is not None and args.limit < 0):
        raise UsageError("--from and --limit must not be negative")
    wanted = {k: v for k, v in (("tenant", args.tenant), ("stream", args.stream), ("type", args.event_type)) if v}
    printed = 0
    out = sys.stdout.buffer
    with open_ledger(args, read_only=True) as ledger:
        positions: dict[int, int | None] = dict.fromkeys(range(ledger.log.partition_count))
        while True:
            for partition, position in positions.items():
                while records := ledger.log.records_after(partition, position, 1000):
                    position = positions[partition] = records[-1].position
                    for record in records:
                        envelope = orjson.loads(record.envelope_bytes)
                        if envelope["log"]["index"] < args.start:
                            continue
                        if any(envelope.get(key) != value for key, value in wanted.items()):
                            continue
                        out.write(record.envelope_bytes + b"\n")
                        printed += 1
                        if args.limit is not None and printed >= args.limit:
                            return 0
            if not args.follow:
                return 0
            out.flush()
            time.sleep(0.5)


def run_checkpoint(args: argparse.Namespace) -> int:
    with open_ledger(args, read_only=True) as ledger:
        verifier = ledger.verifier_key().text()
        found = False
        for partition in range(ledger.log.partition_count):
            latest = ledger.log.latest_checkpoint(partition)
            if latest is None:
                continue
            found = True
            if args.json:
                print_json(
                    {
                        "partition": partition,
                        "tree_size": latest.tree_size,
                        "note": latest.note,
                        "recorded_at": latest.recorded_at,
                        "verifier_key": verifier,
                    }
                )
            else:
                sys.stdout.write(latest.note)
        if not found:
            raise UsageError("no checkpoint yet: the log is empty")
        if not args.json:
            print(f"\nverifier key: {verifier}")
    return 0


def run_receipt(args: argparse.Namespace) -> int:
    with open_ledger(args, read_only=True) as ledger:
        receipt = ledger.receipt(args.tenant, args.event_id)
    if receipt is None:
        raise UsageError(f"no event '{args.event_id}' for tenant '{args.tenant}'")
    print_json(receipt.model_dump(mode="json", exclude_none=True))
    return 0


def run_rejections(args: argparse.Namespace) -> int:
    with open_ledger(args, read_only=True) as ledger:
        for rejection in ledger.rejections(args.limit):
            print_json(
                {
                    "received_at": rejection.received_at,
                    "reason": rejection.reason_code,
                    "message": rejection.message,
                    "tenant": rejection.tenant,
                    "event_id": rejection.event_id,
                    "raw": rejection.raw.decode("utf-8", "replace")[:2000],
                }
            )
    return 0
