"""A consumer process for fault tests: runs `counts` slowly enough to be killed mid-catch-up.

Usage: consumer_process.py DATA STATE_FILE BATCH_SIZE [--sleep-ms N] [--hang-after N] [--kafka H:P --topic-prefix P]
Prints `committed APPLIED` after every committed batch. With --hang-after, the first batch that goes past N
events is written into the open transaction, then it prints `hanging LAST_LOG_INDEX` and waits to be killed.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from consumers.base import Envelope
from consumers.counts import EventCounts
from consumers.runner import ConsumerRunner, RunnerProgress
from consumers.store import ConsumerStore
from ledger.config import Settings
from ledger.log.kafka_topics import Topics
from ledger.sdk import Ledger


class SlowCounts(EventCounts):
    def __init__(self, sleep_s: float, hang_after: int | None) -> None:
        self.sleep_s = sleep_s
        self.hang_after = hang_after
        self.seen = 0

    def apply(self, cursor: sqlite3.Cursor, events: list[Envelope]) -> None:
        super().apply(cursor, events)
        self.seen += len(events)
        if self.hang_after is not None and self.seen > self.hang_after:
            print(f"hanging {events[-1]['log']['index']}", flush=True)
            while True:  # inside the transaction, with this batch's rows written but not committed
                time.sleep(1)
        time.sleep(self.sleep_s)


def report(progress: RunnerProgress) -> None:
    print(f"committed {progress.applied}", flush=True)


def main() -> int:
    data, state, batch_size = sys.argv[1:4]
    options = dict(zip(sys.argv[4::2], sys.argv[5::2], strict=True))
    hang_after = int(options["--hang-after"]) if "--hang-after" in options else None
    consumer = SlowCounts(int(options.get("--sleep-ms", "0")) / 1000, hang_after)
    settings = Settings(data_dir=Path(data), keys_dir=Path(data) / "keys")
    kafka, topics = options.get("--kafka"), Topics(options.get("--topic-prefix", ""))
    opened = Ledger.open(settings, create=False, read_only=True, kafka=kafka, topics=topics)
    with opened as ledger, ConsumerStore(Path(state)) as store:
        runner = ConsumerRunner(ledger.log, consumer, store, batch_size=int(batch_size), on_progress=report)
        runner.catch_up()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
