"""Rebuild every projection from the log under a new policy into the shadow stores of a new generation.

`rebuild` folds the whole log in memory under a fixed policy (no per-batch store writes, so it is fast) and
writes the four stores of a new generation, with their positions at the end of the replayed log; the live
stores keep serving meanwhile. On a large log the projections are shared out over one process per core.
`consumers.promotion` compares the shadow with the live stores and switches to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson

from consumers.gc_paused import gc_paused
from consumers.generations import SHADOW, new_generation, point, write_json
from consumers.projection import (
    ProjectionConsumer,
    encode_entity,
)
from consumers.store import ConsumerStore
from ledger.errors import ConfigError, VerificationFailed
from ledger.log.base import LogBackend
from projections.base import Projection, fold_event
from projections.policy import Policy, parse_policy

MANIFEST = "manifest.json"
Progress = Callable[[int, int], None]  # (events replayed, events in the log)


@dataclass(frozen=True)
class RebuildResult:
    rebuild_id: str
    policy_id: str
    policy_version: int
    generation: str
    events: int
    seconds: float
    entities: dict[str, int]
    tenants: list[str]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def store_path(generation: Path, name: str) -> Path:
    return generation / f"{name}.sqlite"


PARALLEL_FROM = 50_000  # events; below this, starting another interpreter costs more than it saves


@dataclass(frozen=True)
class _Folded:
    """What one process replayed and wrote: its stores' entity counts, and the log range it read."""

    entities: dict[str, int]
    positions: dict[int, tuple[int, int]]
    tenants: set[str]
    replayed: int


def rebuild(
    log: LogBackend,
    state_root: Path,
    policy: Policy,
    projections: Sequence[Projection[Any]],
    *,
    source: str | None = None,
    on_progress: Progress | None = None,
    workers: int | None = None,
) -> RebuildResult:
    """Replay the whole log under `policy` into a new shadow generation; the live stores are not touched.

    The projections are independent folds, so on a large log (`PARALLEL_FROM`) they are shared out over up to
    one process per core (`workers` overrides); each process reads the same log range through its own reader
    and writes its own stores. A backend with no `reader_opener` is replayed in this process.
    """
    started = time.perf_counter()
    ends = {partition: log.end_position(partition) for partition in range(log.partition_count)}
    total = sum(log.size(partition) for partition in range(log.partition_count))
    material = f"{log.log_id}\n{policy.policy_id}\n{sorted(ends.items())}"
    rebuild_id = "rb-" + hashlib.sha256(material.encode()).hexdigest()[:16]
    opener = log.reader_opener()
    if workers is None:
        workers = (os.cpu_count() or 1) if total >= PARALLEL_FROM else 1
    workers = max(1, min(workers, len(projections))) if opener is not None else 1
    groups = [list(projections[index::workers]) for index in range(workers)]
    generation = new_generation(state_root, f"gen-{rebuild_id}")
    try:
        parts = _fold_everywhere(log, opener, ends, total, policy, groups, generation, on_progress)
    except BaseException:
        shutil.rmtree(generation, ignore_errors=True)  # a failed rebuild leaves no half-written generation
        raise
    first = parts[0]
    for part in parts[1:]:
        if (part.positions, part.tenants, part.replayed) != (first.positions, first.tenants, first.replayed):
            shutil.rmtree(generation, ignore_errors=True)
            raise VerificationFailed("rebuild: two processes read different events from the same log range")
    counts = {name: count for part in parts for name, count in part.entities.items()}
    result = RebuildResult(
        rebuild_id=rebuild_id,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        generation=generation.name,
        events=first.replayed,
        seconds=time.perf_counter() - started,
        entities={projection.name: counts[projection.name] for projection in projections},
        tenants=sorted(first.tenants),
    )
    manifest = {**asdict(result), "policy": policy.document, "source": source}
    write_json(generation / MANIFEST, manifest)
    point(state_root, SHADOW, generation)
    return result


def _fold_everywhere(
    log: LogBackend,
    opener: Callable[[], LogBackend] | None,
    ends: dict[int, int | None],
    total: int,
    policy: Policy,
    groups: list[list[Projection[Any]]],
    generation: Path,
    on_progress: Progress | None,
) -> list[_Folded]:
    """The first group here (with progress), every other group in a process of its own, at the same time."""
    report = None if on_progress is None else lambda replayed: on_progress(replayed, total)
    if len(groups) == 1 or opener is None:
        with gc_paused():
            return [_fold_and_write(log, ends, policy, groups[0], generation, report)]
    with ProcessPoolExecutor(len(groups) - 1, mp_context=get_context("spawn")) as pool:
        kinds = [[type(projection) for projection in group] for group in groups[1:]]
        others = [pool.submit(_fold_elsewhere, opener, ends, policy.document, group, generation) for group in kinds]
        with gc_paused():
            here = _fold_and_write(log, ends, policy, groups[0], generation, report)
        return [here, *(future.result() for future in others)]


def _fold_elsewhere(
    opener: Callable[[], LogBackend],
    ends: dict[int, int | None],
    document: dict[str, Any],
    kinds: list[type[Projection[Any]]],
    generation: Path,
) -> _Folded:
    """The part of a rebuild that runs in another process: its own reader, the same range, its own stores."""
    log = opener()
    try:
        with gc_paused():
            policy = parse_policy(document, "the rebuild's policy")
            return _fold_and_write(log, ends, policy, [kind() for kind in kinds], generation, None)
    finally:
        log.close()


def _fold_and_write(
    log: LogBackend,
    ends: dict[int, int | None],
    policy: Policy,
    projections: Sequence[Projection[Any]],
    generation: Path,
    on_progress: Callable[[int], None] | None,
) -> _Folded:
    """Fold the log up to `ends` into `projections` under `policy` (`on_progress(events replayed)` every 5,000),
    then write each one's store."""
    consumers = [ProjectionConsumer(projection, policy, fixed_policy=policy) for projection in projections]
    states: list[dict[str, Any]] = [{} for _ in consumers]
    positions: dict[int, tuple[int, int]] = {}
    tenants: set[str] = set()
    replayed = 0
    for partition, end in ends.items():
        if end is None:
            continue
        for expected, record in enumerate(log.read(partition)):
            if record.position > end:
                break
            event = orjson.loads(record.envelope_bytes)
            index = event["log"]["index"]
            if index != expected:
                raise VerificationFailed(
                    f"rebuild: partition {partition} has log index {index} where {expected} was due"
                )
            tenants.add(event["tenant"])
            for consumer, entities in zip(consumers, states, strict=True):
                fold_event(consumer.projection, entities, event, policy)
            positions[partition] = (record.position, index)
            replayed += 1
            if on_progress is not None and replayed % 5000 == 0:
                on_progress(replayed)
    if on_progress is not None:
        on_progress(replayed)
    for consumer, entities in zip(consumers, states, strict=True):
        _write_store(store_path(generation, consumer.name), consumer, log.log_id, entities, positions, tenants, policy)
    return _Folded({c.name: len(e) for c, e in zip(consumers, states, strict=True)}, positions, tenants, replayed)


def _write_store(
    path: Path,
    consumer: ProjectionConsumer[Any],
    log_id: str,
    entities: dict[str, Any],
    positions: dict[int, tuple[int, int]],
    tenants: set[str],
    policy: Policy,
) -> None:
    encode = consumer.projection.encode
    document = encode_entity(policy.document)
    with ConsumerStore(path) as store:
        store.prepare(consumer, log_id)
        with store.transaction() as cursor:
            cursor.executemany(
                "INSERT INTO entities VALUES (?, ?, ?)",
                [
                    (key, key.split("/", 1)[0], encode_entity(encode(entity)))
                    for key, entity in sorted(entities.items())
                ],
            )
            # The live consumer continues under this policy once the generation is promoted.
            cursor.executemany(
                "INSERT INTO policies VALUES (?, ?, ?)", [(t, policy.policy_id, document) for t in sorted(tenants)]
            )
            cursor.executemany(
                "INSERT INTO active_policies VALUES (?, ?, NULL)", [(t, policy.policy_id) for t in sorted(tenants)]
            )
            for partition, (position, index) in sorted(positions.items()):
                store.save_position(cursor, partition, position, index)


def read_manifest(generation: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((generation / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{generation} is not a finished rebuild ({MANIFEST}: {exc})") from None
    return manifest
