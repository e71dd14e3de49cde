"""`agent-ledger demo`: placeholder, replaced by the scenario runner."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("demo", help="run a realistic multi-agent workload end to end")
    parser.set_defaults(run=lambda args: 0)
