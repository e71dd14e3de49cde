"""A producer process for fault tests: appends to one stream in batches and prints each receipt as it lands.

Usage: writer_process.py DATA KEYS STREAM_MISSION BATCHES BATCH_SIZE [--expected-seq N] [--wait-for FILE]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factories import step

from ledger.config import Settings
from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger
from ledger.sequencer import CheckpointPolicy


def main() -> int:
    data, keys, mission, batches, batch_size = sys.argv[1:6]
    options = dict(zip(sys.argv[6::2], sys.argv[7::2], strict=True))
    if "--wait-for" in options:
        while not Path(options["--wait-for"]).exists():
            time.sleep(0.005)
    settings = Settings(
        data_dir=Path(data),
        keys_dir=Path(keys),
        checkpoint_policy=CheckpointPolicy(every_events=1_000_000, interval_ms=3_600_000),
    )
    expected = options.get("--expected-seq")
    with Ledger.open(settings) as ledger:
        for _ in range(int(batches)):
            extra = {"expected_seq": int(expected)} if expected is not None else {}
            outcomes = ledger.append_batch([step(mission=mission, **extra) for _ in range(int(batch_size))])
            for outcome in outcomes:
                if isinstance(outcome, SubmissionRefused):
                    print(f"refused {outcome.reason_code}", flush=True)
                else:
                    print(f"receipt {outcome.event_id} {outcome.seq} {outcome.hash}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
