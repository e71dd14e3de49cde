"""`agent-ledger verify`: check the whole log; print the count, or exit 1 naming the first bad event."""

from __future__ import annotations

import argparse

from ledger.cli.common import add_store_options, open_ledger, progress_bar
from ledger.keys import load_verifier


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("verify", help="verify hashes, chains, indexes, Merkle roots and signatures")
    add_store_options(parser)
    parser.add_argument("--verifier-key", help="pinned verifier key (file or text); default <keys>/ledger.pub")
    parser.add_argument(
        "--allow-unsealed", action="store_true", help="accept events after the latest signed checkpoint"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_ledger(args, read_only=True) as ledger:
        verifier = load_verifier(args.verifier_key) if args.verifier_key else ledger.verifier_key()
        total = sum(ledger.log.size(p) for p in range(ledger.log.partition_count))
        with progress_bar("verifying") as progress:
            task = progress.add_task("verify", total=total)
            report = ledger.verify(
                verifier,
                allow_unsealed=args.allow_unsealed,
                on_progress=lambda done: progress.update(task, completed=done),
            )
    sealed = ", ".join(f"partition {p} sealed at {size}" for p, size in sorted(report.sealed.items()))
    print(
        f"verified {report.events} events in {report.streams} streams against {report.checkpoints} signed "
        f"checkpoints ({sealed})" + (f"; {report.unsealed} unsealed" if report.unsealed else "")
    )
    return 0
