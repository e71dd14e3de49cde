"""`agent-ledger kafka init | check`: create and check the ledger's Kafka topics.

A thin layer over `ledger.log.kafka_topics`: `init` creates what is missing and prints one line per topic;
both refuse with one line and exit 2 when existing topics would break the guarantees (DESIGN guarantees 1, 2, 3
and 6). It never alters or deletes an existing topic.
"""

from __future__ import annotations

import argparse
import os

from ledger.errors import UsageError
from ledger.log.kafka_topics import (
    SEVEN_DAYS_MS,
    TopicPlan,
    check_topics,
    ensure_topics,
    parse_bootstrap,
    partition_count,
)

KAFKA_ENV = "AGENT_LEDGER_KAFKA"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("kafka", help="create or check the ledger's Kafka topics")
    actions = parser.add_subparsers(dest="kafka_action", required=True, metavar="{init,check}")
    init = actions.add_parser(
        "init",
        help="create the missing topics (intake, events, checkpoints, rejected); refuse unsafe existing ones",
    )
    _add_kafka_option(init)
    _add_plan_options(init)
    init.set_defaults(run=run_init)
    check = actions.add_parser("check", help="refuse unless the four topics exist and keep the ledger's guarantees")
    _add_kafka_option(check)
    check.set_defaults(run=run_check)


def _add_kafka_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", metavar="HOST:PORT", default=None, help=f"Kafka bootstrap address (env {KAFKA_ENV})")
    parser.add_argument("--topic-prefix", default="", help="prefix of the four ledger topics (default none)")


def _add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="partitions of intake, events and checkpoints (default 4; cannot change later)",
    )
    parser.add_argument("--replication-factor", type=int, default=1, help="replicas of every topic (default 1)")
    parser.add_argument(
        "--min-insync-replicas", type=int, default=1, help="min.insync.replicas of every topic (default 1)"
    )
    parser.add_argument(
        "--intake-retention-ms",
        type=int,
        default=SEVEN_DAYS_MS,
        help=f"retention of ledger.intake in ms, -1 for forever (default {SEVEN_DAYS_MS}, 7 days)",
    )


def kafka_address(args: argparse.Namespace) -> str:
    """`--kafka`, else AGENT_LEDGER_KAFKA, validated as HOST:PORT."""
    value = args.kafka or os.environ.get(KAFKA_ENV)
    if not value:
        raise UsageError(f"no Kafka address: give --kafka HOST:PORT or set {KAFKA_ENV}")
    return parse_bootstrap(value)


def plan_from(args: argparse.Namespace) -> TopicPlan:
    return TopicPlan(
        partitions=args.partitions,
        replication_factor=args.replication_factor,
        min_insync_replicas=args.min_insync_replicas,
        intake_retention_ms=args.intake_retention_ms,
    )


def run_init(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    for line in ensure_topics(kafka_address(args), plan, prefix=args.topic_prefix):
        print(line)
    return 0


def run_check(args: argparse.Namespace) -> int:
    address = kafka_address(args)
    check_topics(address, prefix=args.topic_prefix)
    partitions = partition_count(address, prefix=args.topic_prefix)
    print(f"Kafka topics at {address} keep the ledger's guarantees ({partitions} partitions)")
    return 0
