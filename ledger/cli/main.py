"""Entry point of the `agent-ledger` console script: builds the parser and turns errors into exit codes.

A `LedgerError` becomes one line on stderr and its exit code (2 bad input, 1 verification failed or refused);
argparse usage errors exit 2. Only a genuine bug shows a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import duckdb

from ledger.cli import (
    append,
    audit,
    authorize,
    bundle,
    consume,
    demo,
    export,
    kafka,
    keys,
    projections,
    read,
    sequencer,
    serve,
    verify,
)
from ledger.errors import LedgerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-ledger", description="Agent Ledger: the tamper-evident trust boundary for AI agents."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        demo,
        append,
        read,
        verify,
        keys,
        sequencer,
        kafka,
        consume,
        projections,
        authorize,
        audit,
        export,
        bundle,
        serve,
    ):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except LedgerError as error:
        print(f"agent-ledger: error: {error}", file=sys.stderr)
        return error.exit_code
    except duckdb.Error as error:  # an audit query that failed while its rows were read (a bad cast, say)
        print(f"agent-ledger: error: query failed: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
