"""Compare a rebuilt shadow generation with the live stores, and promote it.

`diff` compares each entity's `summary` in the live and the shadow stores. `promote` catches the live stores and
then the shadow up to the same positions, switches the generation atomically, and appends `policy.published` /
`policy.activated` and the scope changes the new policy makes, as events; a promotion cut short after the switch
is finished by the next `promote`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from consumers.generations import live_dir, point, promotion_lock, shadow_dir, write_json
from consumers.policy_files import default_policy
from consumers.projection import AppendBatch, OutboxPublisher, ProjectionConsumer, policy_submissions, read_entities
from consumers.rebuild import MANIFEST, read_manifest, store_path
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.errors import ConfigError, DuplicateEventId, SubmissionRefused, UsageError
from ledger.log.base import LogBackend
from projections.base import Projection
from projections.policy import Policy, parse_policy
from schemas.payloads.base import LEVEL_ORDER

RECORD = "promotion.json"  # the events that record a promotion, written before the switch


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
            return _record(live_dir(state_root), unfinished, append_batch, resumed=True)
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
        record = {
            "rebuild_id": rebuild_id,
            "policy_id": policy.policy_id,
            "scope_changes": len(changes),
            "submissions": submissions,
            "recorded": False,
        }
        write_json(generation / RECORD, record)
        point(state_root, "projections", generation)
        promotion = _record(generation, record, append_batch, resumed=False)
    return replace(promotion, caught_up=caught_up, decided=decided)


def _unrecorded(generation: Path) -> dict[str, Any] | None:
    """The promotion record of `generation` if its events are not all in the log yet."""
    path = generation / RECORD
    if not path.exists():
        return None
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return None if record["recorded"] else record


def _record(generation: Path, record: dict[str, Any], append_batch: AppendBatch, *, resumed: bool) -> Promotion:
    """Append the events of `generation`'s promotion `record` (again: their ids are fixed), then mark them."""
    outcomes = append_batch(record["submissions"])
    refused = [o for o in outcomes if isinstance(o, SubmissionRefused) and not isinstance(o, DuplicateEventId)]
    if refused:
        raise ConfigError(
            f"promotion switched the stores, but recording it was refused: {refused[0]}; "
            "run `agent-ledger projections promote` again to record it"
        )
    write_json(generation / RECORD, {**record, "recorded": True})
    appended = sum(not isinstance(o, SubmissionRefused) for o in outcomes)
    return Promotion(record["rebuild_id"], record["policy_id"], 0, 0, appended, record["scope_changes"], resumed)


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
