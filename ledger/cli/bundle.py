"""`agent-ledger verify-bundle FILE`: check a compliance bundle offline; print what it proves, or exit 1 with why.

A thin layer over `ledger.bundle.verify.verify_bundle` (DESIGN.md, "Audit and compliance"). It opens no ledger:
with --verifier-key it needs nothing but the bundle; without, it reads only `<keys>/ledger.pub`. Exit codes
follow the CLI: 0 verified, 1 the bundle does not verify, 2 unreadable input or a bad option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from ledger.bundle.verify import BundleReport, verify_bundle
from ledger.cli.common import add_store_options, print_json, settings_from
from ledger.errors import UsageError
from ledger.keys import VerifierKey, load_verifier

MAX_LISTED_STREAMS = 20


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "verify-bundle",
        help="verify a compliance bundle offline against the pinned verifier key",
        description="Verify a compliance bundle (DSSE-signed in-toto Statement) with no access to the ledger.",
    )
    parser.add_argument("file", metavar="FILE", help="the bundle (JSON), or - for standard input")
    add_store_options(parser, kafka=False)
    parser.add_argument(
        "--verifier-key", help="pinned verifier key (file or text); default <keys>/ledger.pub of the store options"
    )
    parser.add_argument(
        "--known-checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint seen before: a signed note, or `agent-ledger checkpoint` output (--json too); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pinned = _pinned_key(args)
    known = [note for path in args.known_checkpoint for note in _known_notes(Path(path))]
    report = verify_bundle(_read_bundle(args.file), pinned, known_checkpoints=known)
    if args.json:
        print_json(report.to_json())
    else:
        sys.stdout.write(summary(report))
    return 0


def _pinned_key(args: argparse.Namespace) -> VerifierKey:
    if args.verifier_key:
        return load_verifier(args.verifier_key)
    path = settings_from(args).verifier_key_path
    if not path.exists():
        raise UsageError(f"no verifier key at {path}; pin the ledger's key with --verifier-key KEY (file or text)")
    return load_verifier(path)


def _read_bundle(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read bundle {name}: {error.strerror}") from None


def _known_notes(path: Path) -> list[str]:
    """The signed notes in a known-checkpoint file: the note itself, or JSON lines each with a "note"."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read known checkpoint {path}: {reason}") from None
    if not text.lstrip().startswith("{"):
        # `agent-ledger checkpoint` prints the note, then a blank line and the verifier key: keep the note.
        note, _, _ = text.partition("\n\nverifier key: ")
        return [note if note.endswith("\n") else note + "\n"]
    notes = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise UsageError(f"known checkpoint {path} line {number}: not JSON") from None
        if not isinstance(value, dict) or not isinstance(value.get("note"), str):
            raise UsageError(f'known checkpoint {path} line {number}: no "note" string')
        notes.append(value["note"])
    return notes


def summary(report: BundleReport) -> str:
    """The readable account of a verified bundle that `verify-bundle` prints."""
    selection = orjson.dumps(report.selection, option=orjson.OPT_SORT_KEYS).decode()
    lines = [
        f"verified bundle: {_count(report.events, 'event')} in {_count(report.streams, 'stream')} of log "
        f"{report.log_id}",
        f"  signed by {report.signed_by}; selection {selection}",
    ]
    for partition, sizes in report.tree_sizes.items():
        if len(sizes) == 1:
            lines.append(f"  partition {partition}: signed checkpoint at tree size {sizes[0]}")
        else:
            chain = " -> ".join(str(size) for size in sizes)
            lines.append(f"  partition {partition}: signed checkpoints at tree sizes {chain}, proven consistent")
    for number, (name, runs) in enumerate(report.stream_seqs.items()):
        if number == MAX_LISTED_STREAMS:
            lines.append(f"  … and {_count(len(report.stream_seqs) - MAX_LISTED_STREAMS, 'more stream')}")
            break
        seqs = ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)
        lines.append(f"  {name} seq {seqs}")
    return "".join(line + "\n" for line in lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
