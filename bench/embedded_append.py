"""Events appended per second through the whole embedded write path, against a raw eventsourcing insert.

Ledger: `Ledger.append_batch` (validate, dedupe, chain, Merkle, checkpoint, one SQLite commit per batch)
into a fresh data dir with a generated key. Baseline, same run, same payload bytes: the `eventsourcing` SQLite
application recorder inserting `StoredEvent`s (originator_id = UUIDv5 of the stream, version = running seq)
in batches of the same size into a fresh file. Repetitions alternate which side runs first.

Floors, same run: what five parts the contract requires cost on their own, per event, so the JSON shows how
much of the ratio target's budget is left for everything else (dedupe, stream heads, building the envelope,
checkpoints):
- storage: the ledger's own writer persisting the batches the ledger sealed (events, idempotency index, Merkle
  tiles; no checkpoints), one fsync'd commit per batch, into a fresh data dir; nothing validated or hashed;
- validation: JSON parse plus the pydantic checks of the submission and of its payload model;
- canonical: the RFC 8785 bytes of each sealed envelope without its hash (what the hash is over), as the sequencer
  makes them: the payload checked for exact scalars, encoded, and spliced into the encoded envelope;
- hashing: the event hash of each canonical envelope and the Merkle tree's growth by it (leaf and interior nodes);
- receipt: the `Receipt` each producer gets back, built by the sequencer's own `receipt_for`.

    python bench/embedded_append.py [--events 50000] [--repeat 5] [--batch-size 100] [--profile FILE]
"""

from __future__ import annotations

import cProfile
import hashlib
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from consumers.audit.rows import canonical_of
from ledger.canonical import EVENT_HASH_PREFIX, canonical_bytes, canonical_with_payload, has_only_exact_scalars
from ledger.errors import SubmissionRefused
from ledger.log.base import SealedBatch
from ledger.log.embedded import EmbeddedLog
from ledger.merkle import CompactRange, event_leaf, leaf_hash
from ledger.sdk import Ledger
from ledger.sequencer import receipt_for

RATIO_TARGET = 0.5
BASELINE_NAMESPACE = uuid.UUID("0b3c4d5e-6f70-4182-93a4-b5c6d7e8f901")


def run_ledger(
    submissions: Sequence[bytes],
    batch_size: int,
    work_dir: Path,
    profiler: cProfile.Profile | None = None,
    sealed: list[bytes] | None = None,
) -> float:
    """Seconds to append every submission through `Ledger.append_batch` (open and close not timed). `sealed`,
    when given, receives the stored envelope bytes in log order (read after the timing)."""
    settings = common.fresh_settings(work_dir / "ledger")
    with Ledger.open(settings) as ledger:
        refused = 0
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for batch in common.batches(submissions, batch_size):
            outcomes = ledger.append_batch(batch)
            refused += sum(isinstance(outcome, SubmissionRefused) for outcome in outcomes)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
        if sealed is not None:
            sealed.extend(record.envelope_bytes for record in ledger.log.read(0))
    if refused:
        raise SystemExit(f"embedded_append: {refused} submissions were refused; the workload is invalid")
    return elapsed


def run_baseline(submissions: Sequence[bytes], batch_size: int, work_dir: Path) -> float:
    """Seconds for a raw `SQLiteApplicationRecorder.insert_events` of the same bytes (setup not timed)."""
    keys = [common.stream_of(submission) for submission in submissions]
    datastore = SQLiteDatastore(str(work_dir / "baseline.sqlite"))
    try:
        recorder = SQLiteApplicationRecorder(datastore)
        recorder.create_table()
        heads: dict[str, int] = {}
        started = time.perf_counter()
        for start in range(0, len(submissions), batch_size):
            stored = []
            for (tenant, stream, topic), state in zip(
                keys[start : start + batch_size], submissions[start : start + batch_size], strict=True
            ):
                name = f"{tenant}/{stream}"
                seq = heads[name] = heads.get(name, 0) + 1
                stored.append(
                    StoredEvent(
                        originator_id=uuid.uuid5(BASELINE_NAMESPACE, name),
                        originator_version=seq,
                        topic=topic,
                        state=state,
                    )
                )
            recorder.insert_events(stored)
        return time.perf_counter() - started
    finally:
        datastore.close()


def sealed_batches(sealed: Sequence[bytes], batch_size: int) -> list[SealedBatch]:
    """The ledger's sealed events regrouped into its batches, with their Merkle nodes (built here, not timed)."""
    tree = CompactRange()
    batches = []
    for start in range(0, len(sealed), batch_size):
        batch = SealedBatch()
        for state in sealed[start : start + batch_size]:
            envelope = orjson.loads(state)
            batch.events.append((envelope, state))
            batch.merkle_nodes.extend(tree.append(event_leaf(envelope["hash"])))
        batches.append(batch)
    return batches


def floor_storage(batches: Sequence[SealedBatch], work_dir: Path) -> float:
    """Seconds for the ledger's writer to persist already sealed batches, one fsync'd commit each."""
    log = EmbeddedLog(work_dir / "storage-floor")
    try:
        started = time.perf_counter()
        for batch in batches:
            with log.writer(0) as writer:
                writer.write(SealedBatch(events=batch.events, merkle_nodes=batch.merkle_nodes))
        return time.perf_counter() - started
    finally:
        log.close()


def floor_validation(submissions: Sequence[bytes]) -> float:
    """Seconds to parse each submission and run the pydantic checks of the submission and of its payload."""
    started = time.perf_counter()
    for raw in submissions:
        common.check_submission(orjson.loads(raw))
    return time.perf_counter() - started


def floor_canonical(sealed: Sequence[bytes]) -> float:
    """Seconds to encode each sealed envelope, without its hash, as RFC 8785 bytes the way the sequencer does:
    check the payload holds only exact scalars, encode it, and splice it into the encoded envelope."""
    envelopes = [orjson.loads(state) for state in sealed]
    for envelope in envelopes:
        del envelope["hash"]
    started = time.perf_counter()
    for envelope in envelopes:
        exact = has_only_exact_scalars(envelope["payload"])
        canonical_with_payload(envelope, canonical_bytes(envelope["payload"], exact=exact), exact=exact)
    return time.perf_counter() - started


def floor_receipts(sealed: Sequence[bytes]) -> float:
    """Seconds to build each event's `Receipt` as the sequencer does."""
    envelopes = [orjson.loads(state) for state in sealed]
    started = time.perf_counter()
    for envelope in envelopes:
        receipt_for(envelope)
    return time.perf_counter() - started


def floor_hashing(sealed: Sequence[bytes]) -> float:
    """Seconds for each event's hash over its canonical bytes and the Merkle tree's growth by it (its leaf hash
    and the interior nodes it completes)."""
    canonical = [canonical_of(state, orjson.loads(state)) for state in sealed]
    tree = CompactRange()
    started = time.perf_counter()
    for encoded in canonical:
        tree.append(leaf_hash(hashlib.sha256(EVENT_HASH_PREFIX + encoded).digest()))
    return time.perf_counter() - started


def floors_report(events: int, baseline_s: Sequence[float], floors: dict[str, list[float]]) -> dict[str, Any]:
    """Each floor per event, their sum, and what the sum leaves of the ratio target's time per event."""
    per_event = {name: common.median(runs) / events * 1e6 for name, runs in floors.items()}
    baseline_us = common.median(baseline_s) / events * 1e6
    floor_us = sum(per_event.values())
    allowed_us = baseline_us / RATIO_TARGET
    return {
        **{f"{name}_us_per_event": round(value, 2) for name, value in per_event.items()},
        "sum_us_per_event": round(floor_us, 2),
        "baseline_us_per_event": round(baseline_us, 2),
        "ratio_target_allows_us_per_event": round(allowed_us, 2),
        "left_for_the_rest_us_per_event": round(allowed_us - floor_us, 2),
        "ceiling_ratio": round(baseline_us / floor_us, 4),
        "meaning": "ceiling_ratio is the ratio if the ledger did nothing but these parts; the rest (dedupe, "
        "stream heads, building the envelope, checkpoints) must fit in left_for_the_rest_us_per_event for the "
        "ratio target to be met",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.run_parser(__doc__, events=50_000, repeat=5, tmp="the fresh stores", profiled="the ledger runs")
    parser.add_argument("--batch-size", type=int, default=100, help="submissions per append_batch (default 100)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1 or args.batch_size < 1 or args.missions < 1:
        parser.error("--events, --repeat, --batch-size and --missions must be positive")

    submissions = common.submissions(args.events, missions=args.missions)
    profiler = cProfile.Profile() if args.profile else None
    ledger_seconds: list[float] = []
    baseline_seconds: list[float] = []
    floors: dict[str, list[float]] = {"storage": [], "validation": [], "canonical": [], "hashing": [], "receipt": []}
    sealed: list[bytes] = []
    with common.progress() as bar:
        task = bar.add_task("embedded append", total=args.repeat * 3)
        for repetition in range(args.repeat):
            # Alternate the order so neither side always runs on a warmer (or busier) machine.
            order = ("baseline", "ledger") if repetition % 2 == 0 else ("ledger", "baseline")
            for side in order:
                with tempfile.TemporaryDirectory(prefix=f"bench-{side}-", dir=args.tmp_dir) as work_dir:
                    if side == "ledger":
                        keep = sealed if not sealed else None
                        ledger_seconds.append(run_ledger(submissions, args.batch_size, Path(work_dir), profiler, keep))
                    else:
                        baseline_seconds.append(run_baseline(submissions, args.batch_size, Path(work_dir)))
                bar.advance(task)
            with tempfile.TemporaryDirectory(prefix="bench-floors-", dir=args.tmp_dir) as work_dir:
                floors["storage"].append(floor_storage(sealed_batches(sealed, args.batch_size), Path(work_dir)))
            floors["validation"].append(floor_validation(submissions))
            floors["canonical"].append(floor_canonical(sealed))
            floors["hashing"].append(floor_hashing(sealed))
            floors["receipt"].append(floor_receipts(sealed))
            bar.advance(task)
    if profiler is not None:
        profiler.dump_stats(args.profile)

    sizes = sorted(len(submission) for submission in submissions)
    common.print_result(
        "embedded_append",
        params={
            "events": args.events,
            "repeat": args.repeat,
            "batch_size": args.batch_size,
            "missions": args.missions,
            "tmp_dir": str(args.tmp_dir or tempfile.gettempdir()),
            "submission_bytes_median": sizes[len(sizes) // 2],
            "event_types": list(common.CYCLE),
            "timed": "append_batch calls only; Ledger.open/close and key generation excluded",
        },
        figures={"path": "Ledger.append_batch", **common.rate_figures(args.events, ledger_seconds)},
        baseline={
            "path": "eventsourcing SQLiteApplicationRecorder.insert_events",
            **common.rate_figures(args.events, baseline_seconds),
        },
        targets={"events_per_s": 20_000, "ratio": RATIO_TARGET},
        extra={"floors": floors_report(args.events, baseline_seconds, floors)},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
