"""Rebuild every projection from the log under a new policy into shadow stores, diff them, promote them.

`rebuild` folds the whole log in memory under a fixed policy (no per-batch store writes, so it is fast) and
writes the four stores of a new generation, with their positions at the end of the replayed log; the live
stores keep serving meanwhile. `diff` compares each entity's `summary` in the live and the shadow stores.
`promote` catches the shadow up to the log's end, switches the generation atomically, and appends
`policy.published` / `policy.activated` and the scope changes the new policy makes, as events.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson

from consumers.gc_paused import gc_paused
from consumers.generations import (
    SHADOW,
    live_dir,
    new_generation,
    point,
    promotion_lock,
    shadow_dir,
)
from consumers.policy_files import default_policy
from consumers.projection import (
    AppendBatch,
    OutboxPublisher,
    ProjectionConsumer,
    encode_entity,
    policy_submissions,
    read_entities,
)
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.errors import ConfigError, DuplicateEventId, SubmissionRefused, UsageError, VerificationFailed
from ledger.log.base import LogBackend
from projections.base import Projection, fold_event
from projections.policy import Policy, parse_policy
from schemas.payloads.base import LEVEL_ORDER

MANIFEST = "manifest.json"
RECORD = "promotion.json"  # the events that record a promotion, written before the switch
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


@dataclass(frozen=True)
class Change:
    projection: str
    tenant: str
    entity: str  # the entity key without its tenant
    field: str
    live: Any
    shadow: Any


@dataclass
class Diff:
    rebuild_id: str
    policy_id: str
    changes: list[Change] = field(default_factory=list)

    def by_projection(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.projection, []).append(change)
        return grouped

    def as_json(self) -> dict[str, Any]:
        return {
            "rebuild_id": self.rebuild_id,
            "policy_id": self.policy_id,
            "changes": [asdict(change) for change in self.changes],
        }


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
    (generation / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
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
    if len(groups) == 1 or opener is None:
        with gc_paused():
            return [_fold_and_write(log, ends, total, policy, groups[0], generation, on_progress)]
    with ProcessPoolExecutor(len(groups) - 1, mp_context=get_context("spawn")) as pool:
        kinds = [[type(projection) for projection in group] for group in groups[1:]]
        others = [pool.submit(_fold_elsewhere, opener, ends, policy.document, group, generation) for group in kinds]
        with gc_paused():
            here = _fold_and_write(log, ends, total, policy, groups[0], generation, on_progress)
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
            total = sum(log.size(partition) for partition in range(log.partition_count))
            return _fold_and_write(log, ends, total, policy, [kind() for kind in kinds], generation, None)
    finally:
        log.close()


def _fold_and_write(
    log: LogBackend,
    ends: dict[int, int | None],
    total: int,
    policy: Policy,
    projections: Sequence[Projection[Any]],
    generation: Path,
    on_progress: Progress | None,
) -> _Folded:
    """Fold the log up to `ends` into `projections` under `policy`, then write each one's store."""
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
                on_progress(replayed, total)
    if on_progress is not None:
        on_progress(replayed, total)
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


def _shadow(state_root: Path) -> tuple[Path, dict[str, Any]]:
    generation = shadow_dir(state_root)
    if generation is None:
        raise UsageError("no rebuild to compare or promote; run `agent-ledger projections rebuild --policy FILE`")
    return generation, read_manifest(generation)


def diff(state_root: Path, projections: Sequence[Projection[Any]]) -> Diff:
    """What the shadow generation would change, entity by entity, in the facts each projection summarises."""
    generation, manifest = _shadow(state_root)
    live = live_dir(state_root)
    result = Diff(manifest["rebuild_id"], manifest["policy_id"])
    for projection in projections:
        before = _summaries(store_path(live, projection.name), projection)
        after = _summaries(store_path(generation, projection.name), projection)
        for key in sorted(before.keys() | after.keys()):
            tenant, _, entity = key.partition("/")
            old, new = before.get(key, {}), after.get(key, {})
            for name in sorted(old.keys() | new.keys()):
                if old.get(name) != new.get(name):
                    result.changes.append(Change(projection.name, tenant, entity, name, old.get(name), new.get(name)))
    return result


def _summaries(path: Path, projection: Projection[Any]) -> dict[str, dict[str, Any]]:
    return {key: projection.summary(projection.decode(data)) for key, data in read_entities(path)}


@dataclass(frozen=True)
class Promotion:
    rebuild_id: str
    policy_id: str
    caught_up: int  # events applied to the shadow after the rebuild, before the switch
    decided: int  # events the live stores folded, deciding under the policy they ran, before the switch
    appended: int  # events recorded: policy.published / policy.activated and the scope changes
    scope_changes: int
    resumed: bool = False  # this call only finished recording an earlier promotion


def promote(
    log: LogBackend,
    state_root: Path,
    projections: Sequence[Projection[Any]],
    append_batch: AppendBatch,
    *,
    reason: str | None = None,
) -> Promotion:
    """Catch the live stores and then the shadow up to the same positions, switch the shadow live atomically,
    and record the activation and scope changes.

    The live stores go first, with their outboxes: an event the live projections had not folded yet is decided
    under the policy they run, as it would have been without the promotion. The shadow folds without deciding,
    so it stops exactly where each live store stopped; what arrives later is decided by the promoted stores.
    The events that record the promotion are written into the generation before the switch (`RECORD`) and
    marked once appended, so a promotion whose recording failed or was cut short is finished by the next one.
    """
    with promotion_lock(state_root):
        unfinished = _unrecorded(live_dir(state_root))
        if unfinished is not None:
            return _record(live_dir(state_root), append_batch, resumed=True)
        generation, manifest = _shadow(state_root)
        policy = parse_policy(manifest["policy"], f"{generation / MANIFEST}")
        fallback = default_policy()
        caught_up = decided = 0
        for projection in projections:
            live = ProjectionConsumer(projection, fallback)
            with ConsumerStore(store_path(live_dir(state_root), projection.name)) as store:
                live.publisher = OutboxPublisher(store, append_batch)
                decided += ConsumerRunner(log, live, store).catch_up()
                until = store.positions()
            consumer = ProjectionConsumer(projection, policy, fixed_policy=policy)
            with ConsumerStore(store_path(generation, projection.name)) as store:
                caught_up += ConsumerRunner(log, consumer, store, until=until).catch_up()
        changes = [c for c in diff(state_root, projections).changes if c.projection == "scope"]
        rebuild_id = manifest["rebuild_id"]
        submissions: list[dict[str, Any]] = []
        for tenant in manifest["tenants"]:
            published, activated = policy_submissions(tenant, policy, source=manifest.get("source"))
            activated["event_id"] = f"policy-activated:{rebuild_id}"
            activated["payload"]["rebuild_id"] = rebuild_id
            if reason:
                activated["payload"]["reason"] = reason[:500]
            submissions += [published, activated]
        submissions += [_scope_change(change, policy, rebuild_id) for change in changes]
        record = {"rebuild_id": rebuild_id, "policy_id": policy.policy_id, "scope_changes": len(changes)}
        _write_json(generation / RECORD, {**record, "submissions": submissions, "recorded": False})
        point(state_root, "projections", generation)
        promotion = _record(generation, append_batch, resumed=False)
    return replace(promotion, caught_up=caught_up, decided=decided)


def _unrecorded(generation: Path) -> dict[str, Any] | None:
    """The promotion record of `generation` if its events are not all in the log yet."""
    path = generation / RECORD
    if not path.exists():
        return None
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return None if record["recorded"] else record


def _record(generation: Path, append_batch: AppendBatch, *, resumed: bool) -> Promotion:
    """Append the events recording the promotion to `generation` (again: their ids are fixed), then mark them."""
    record = _unrecorded(generation)
    if record is None:
        raise ConfigError(f"{generation / RECORD}: nothing left to record")
    outcomes = append_batch(record["submissions"])
    refused = [o for o in outcomes if isinstance(o, SubmissionRefused) and not isinstance(o, DuplicateEventId)]
    if refused:
        raise ConfigError(
            f"promotion switched the stores, but recording it was refused: {refused[0]}; "
            "run `agent-ledger projections promote` again to record it"
        )
    _write_json(generation / RECORD, {**record, "recorded": True})
    appended = sum(not isinstance(o, SubmissionRefused) for o in outcomes)
    return Promotion(record["rebuild_id"], record["policy_id"], 0, 0, appended, record["scope_changes"], resumed)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Replace `path` atomically: a reader sees the old file or the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _scope_change(change: Change, policy: Policy, rebuild_id: str) -> dict[str, Any]:
    """The event that records one (agent, tool) level the promotion changed; the scope projection's own kind."""
    agent_id = change.entity.split("/", 1)[1]
    tool = change.field.removeprefix("tool:")
    activation = f"policy-activated:{rebuild_id}"
    common = {
        "tool": tool,
        "reason": f"policy {policy.name} v{policy.version} promoted (rebuild {rebuild_id})",
        "evidence_event_ids": [activation],
        "policy_id": policy.policy_id,
        "policy_version": policy.version,
    }
    if change.shadow is None:
        event_type, payload = "scope.revoked", common
    elif change.live is None:
        event_type, payload = "scope.granted", {**common, "level": change.shadow}
    else:
        widened = LEVEL_ORDER[str(change.shadow)] > LEVEL_ORDER[str(change.live)]
        event_type = "scope.widened" if widened else "scope.narrowed"
        payload = {**common, "level": change.shadow, "previous_level": change.live}
    digest = hashlib.sha256(f"{rebuild_id}\n{change.entity}\n{tool}".encode()).hexdigest()[:32]
    return {
        "event_id": f"promote:{digest}",
        "tenant": change.tenant,
        "stream": f"agent/{agent_id}",
        "type": event_type,
        "actor": {"kind": "policy", "id": "projection:scope"},
        "agent_id": agent_id,
        "causation_id": activation,
        "payload": payload,
    }
