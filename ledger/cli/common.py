"""Options every command shares (--data, --keys, --tenant) and the ways commands write their results."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.config import Settings
from ledger.errors import UsageError
from ledger.intake import Limits
from ledger.log.kafka_topics import Topics, parse_bootstrap
from ledger.sdk import Ledger


def add_store_options(parser: argparse.ArgumentParser, *, kafka: bool = True) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="embedded store dir (env AGENT_LEDGER_DATA, default ./.agent-ledger)",
    )
    parser.add_argument("--keys", type=Path, default=None, help="key dir (env AGENT_LEDGER_KEYS, default <data>/keys)")
    if kafka:
        add_kafka_options(parser)


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", default=None, help="Kafka bootstrap HOST:PORT (env AGENT_LEDGER_KAFKA)")
    parser.add_argument("--topic-prefix", default="", help="prefix of the four ledger topics (default none)")
    parser.add_argument(
        "--producer-key",
        type=Path,
        default=None,
        help="key that signs what goes to ledger.intake (env AGENT_LEDGER_PRODUCER_KEY; default the ledger key)",
    )


def kafka_from(args: argparse.Namespace, *, required: bool = False) -> tuple[str | None, Topics]:
    """The Kafka bootstrap named by --kafka or AGENT_LEDGER_KAFKA (None: embedded), and the topic names."""
    bootstrap = getattr(args, "kafka", None) or os.environ.get("AGENT_LEDGER_KAFKA") or None
    if required and not bootstrap:
        raise UsageError("this command needs --kafka HOST:PORT (or AGENT_LEDGER_KAFKA)")
    topics = Topics(getattr(args, "topic_prefix", "") or "")
    return (parse_bootstrap(bootstrap) if bootstrap else None), topics


def open_ledger(args: argparse.Namespace, *, read_only: bool) -> Ledger:
    """The ledger a command works on: Kafka when --kafka / AGENT_LEDGER_KAFKA names one, else embedded."""
    bootstrap, topics = kafka_from(args)
    return Ledger.open(settings_from(args), create=not read_only, read_only=read_only, kafka=bootstrap, topics=topics)


def settings_from(args: argparse.Namespace) -> Settings:
    base = Settings()
    max_payload = getattr(args, "max_payload_bytes", None)
    return Settings(
        data_dir=args.data or base.data_dir,
        keys_dir=args.keys,
        producer_key=getattr(args, "producer_key", None) or base.producer_key,
        limits=Limits(max_payload_bytes=max_payload) if max_payload else base.limits,
        checkpoint_policy=base.checkpoint_policy,
    )


def progress_bar(label: str) -> Progress:
    """The one progress bar of long commands: on stderr, only on a terminal, gone when done."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")


def warn(message: str) -> None:
    print(f"agent-ledger: {message}", file=sys.stderr)
