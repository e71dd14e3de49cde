"""Options every command shares (--data, --keys, --tenant) and the ways commands write their results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from ledger.config import Settings
from ledger.intake import Limits


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="embedded store dir (env AGENT_LEDGER_DATA, default ./.agent-ledger)",
    )
    parser.add_argument("--keys", type=Path, default=None, help="key dir (env AGENT_LEDGER_KEYS, default <data>/keys)")


def settings_from(args: argparse.Namespace) -> Settings:
    base = Settings()
    max_payload = getattr(args, "max_payload_bytes", None)
    return Settings(
        data_dir=args.data or base.data_dir,
        keys_dir=args.keys,
        limits=Limits(max_payload_bytes=max_payload) if max_payload else base.limits,
        checkpoint_policy=base.checkpoint_policy,
    )


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")


def warn(message: str) -> None:
    print(f"agent-ledger: {message}", file=sys.stderr)
