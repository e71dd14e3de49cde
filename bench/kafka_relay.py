"""The floor of Kafka ingest: one relay process per partition doing only what any sequencer must do with Kafka.

It reads batch records from one source partition (read_committed, like intake), checks each submission with the
pydantic models the contract requires (the validation floor of `bench/embedded_append.py`), and writes each one as
its own record, keyed as it came, to the same partition of the target topic, one transaction per poll with the
source offset inside (`send_offsets_to_transaction`). No dedupe, no chain, no hash, no Merkle tree, no replica, no
checkpoint and no receipt. `bench/kafka_ingest.py` starts it; it prints `ready`, then one JSON line when done.

    python bench/kafka_relay.py --kafka HOST:PORT --source T --target T --partition P --count N --group G
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import common
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from ledger.intake import Limits
from ledger.log.kafka_sequencer import TRANSACTIONAL_PRODUCER
from ledger.producer_auth import split_record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--kafka", "--source", "--target", "--group"):
        parser.add_argument(name, required=True)
    parser.add_argument("--partition", type=int, required=True)
    parser.add_argument("--count", type=int, required=True, help="submissions to relay before stopping")
    args = parser.parse_args(argv)

    source = TopicPartition(args.source, args.partition)
    consumer = KafkaConsumer(
        bootstrap_servers=args.kafka,
        group_id=args.group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=500,
        fetch_max_wait_ms=20,
    )
    consumer.assign([source])
    producer = KafkaProducer(
        bootstrap_servers=args.kafka, transactional_id=f"{args.group}-p{args.partition}", **TRANSACTIONAL_PRODUCER
    )
    producer.init_transactions()
    consumer.position(source)
    print("ready", flush=True)
    limits = Limits()
    relayed, cpu_started = 0, time.process_time()
    while relayed < args.count:
        records = consumer.poll(timeout_ms=100).get(source, [])
        if not records:
            continue
        producer.begin_transaction()
        for record in records:
            for part in split_record(record.value, limits):
                common.check_submission(part if isinstance(part, dict) else orjson.loads(part))
                value = orjson.dumps(part) if isinstance(part, dict) else part
                producer.send(args.target, key=record.key, value=value, partition=args.partition)
                relayed += 1
        producer.send_offsets_to_transaction(
            {source: OffsetAndMetadata(records[-1].offset + 1, "", -1)}, consumer.group_metadata()
        )
        producer.commit_transaction()
    print(orjson.dumps({"done_at": time.time(), "cpu_s": time.process_time() - cpu_started}).decode(), flush=True)
    producer.close()
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
