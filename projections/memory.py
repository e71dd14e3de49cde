"""Memory views: every memory item with its provenance, scope, expiry, revocation and reads; the context packet.

The fold keeps one `MemoryItem` per (tenant, memory_id), built so that any order of the same events gives the
same item (a write, its reads and its revocation may sit on different log partitions). Which items an agent in a
mission may use at a time `at` is a pure query (`context_packet`), so staleness, supersession and time travel
need no clock (DESIGN guarantee 8). Keys and queries never reach another tenant's items (guarantee 9).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, get_args

from ledger.errors import UsageError
from projections.base import Decision, Envelope, Projection, entity_key
from projections.policy import Policy
from schemas.payloads.memory import MemoryRead, MemoryRevoked, MemoryScope, MemoryWritten

Exclusion = Literal["not_yet_written", "out_of_scope", "revoked", "stale", "superseded", "over_limit"]
"""Why an item of the tenant is not in a context packet, checked in this order (the first that applies)."""

EXCLUSIONS: tuple[Exclusion, ...] = get_args(Exclusion)
_SCOPES: tuple[MemoryScope, ...] = get_args(MemoryScope)

LogOrder = tuple[str, int, int]
"""(recorded_at, log partition, log index): the order of events across partitions, the same on every replay."""


@dataclass(frozen=True)
class MemoryWrite:
    """The `memory.written` event that made an item: content, scope, provenance and expiry.

    `written_at` is the sequencer's `recorded_at`, not the producer's `occurred_at`, so a producer cannot
    backdate an item into an earlier packet. `agent_id` and `mission_id` are the writing envelope's.
    """

    event_id: str
    written_at: str
    log_partition: int
    log_index: int
    actor_kind: str
    actor_id: str
    agent_id: str | None
    mission_id: str | None
    key: str
    scope: MemoryScope
    shared_with: tuple[str, ...]
    content: str | None
    content_digest: str | None
    content_uri: str | None
    source_event_ids: tuple[str, ...]
    expires_at: str | None

    @property
    def log_order(self) -> LogOrder:
        return (self.written_at, self.log_partition, self.log_index)


@dataclass(frozen=True)
class MemoryRevocation:
    """A `memory.revoked` event: the item is out of every packet from `revoked_at` on."""

    event_id: str
    revoked_at: str
    log_partition: int
    log_index: int
    actor_kind: str
    actor_id: str
    reason: str

    @property
    def log_order(self) -> LogOrder:
        return (self.revoked_at, self.log_partition, self.log_index)


@dataclass(frozen=True)
class MemoryReading:
    """A `memory.read` event that named the item: who read it, in which mission, when and what for."""

    event_id: str
    read_at: str
    log_partition: int
    log_index: int
    actor_kind: str
    actor_id: str
    agent_id: str | None
    mission_id: str | None
    purpose: str | None

    @property
    def log_order(self) -> LogOrder:
        return (self.read_at, self.log_partition, self.log_index)


@dataclass(frozen=True)
class MemoryItem:
    """One memory item of one tenant, keyed `<tenant>/memory/<memory_id>`.

    `write` is None while only reads or revocations of the id have been folded (they may arrive first from
    another partition). A memory_id is written once: the first write in log order counts and any other
    `memory.written` with that id is listed in `ignored_write_event_ids`, so a later writer can never change
    an item's content or widen its scope. All revocations are kept; the first one in log order counts.
    """

    tenant: str
    memory_id: str
    write: MemoryWrite | None = None
    ignored_write_event_ids: tuple[str, ...] = ()
    revocations: tuple[MemoryRevocation, ...] = ()
    reads: tuple[MemoryReading, ...] = ()

    @property
    def entity_key(self) -> str:
        return memory_key(self.tenant, self.memory_id)

    @property
    def revocation(self) -> MemoryRevocation | None:
        """The revocation that counts: the first in log order."""
        return self.revocations[0] if self.revocations else None


@dataclass(frozen=True)
class ExcludedItem:
    """An item of the tenant left out of a packet, and why. `superseded_by` names the newer item's memory_id."""

    item: MemoryItem
    reason: Exclusion
    superseded_by: str | None = None


@dataclass(frozen=True)
class ExplainedPacket:
    """A context packet with its exclusions, for operators.

    Items of other tenants are never listed, not even by id (guarantee 9: an explanation shown for one tenant
    must not reveal another's memory); `other_tenant_items` only counts those the caller passed in.
    """

    included: tuple[MemoryItem, ...]
    excluded: tuple[ExcludedItem, ...]
    other_tenant_items: int


def memory_key(tenant: str, memory_id: str) -> str:
    return entity_key(tenant, "memory", memory_id)


class MemoryProjection(Projection[MemoryItem]):
    """Folds `memory.written`, `memory.read` and `memory.revoked` into `MemoryItem` entities. Emits no decisions."""

    name = "memory"

    def keys(self, event: Envelope) -> Iterable[str]:
        tenant, payload = event["tenant"], event["payload"]
        match event["type"]:
            case "memory.written" | "memory.revoked":
                return [memory_key(tenant, payload["memory_id"])]
            case "memory.read":
                return [memory_key(tenant, memory_id) for memory_id in payload["memory_ids"]]
            case _:
                return []

    def apply(self, entities: dict[str, MemoryItem], event: Envelope, policy: Policy) -> list[Decision]:
        # The policy is not used: what an item is does not depend on it; only the packet queries read it.
        tenant = event["tenant"]
        match event["type"]:
            case "memory.written":
                written = MemoryWritten.model_validate(event["payload"])
                item = _item(entities, tenant, written.memory_id)
                entities[item.entity_key] = _with_write(item, _write_of(event, written))
            case "memory.revoked":
                revoked = MemoryRevoked.model_validate(event["payload"])
                item = _item(entities, tenant, revoked.memory_id)
                revocation = MemoryRevocation(
                    event_id=event["event_id"],
                    revoked_at=event["recorded_at"],
                    log_partition=event["log"]["partition"],
                    log_index=event["log"]["index"],
                    actor_kind=event["actor"]["kind"],
                    actor_id=event["actor"]["id"],
                    reason=revoked.reason,
                )
                entities[item.entity_key] = replace(item, revocations=_merged(item.revocations, revocation))
            case "memory.read":
                read = MemoryRead.model_validate(event["payload"])
                reading = MemoryReading(
                    event_id=event["event_id"],
                    read_at=event["recorded_at"],
                    log_partition=event["log"]["partition"],
                    log_index=event["log"]["index"],
                    actor_kind=event["actor"]["kind"],
                    actor_id=event["actor"]["id"],
                    agent_id=event.get("agent_id"),
                    mission_id=event.get("mission_id"),
                    purpose=read.purpose,
                )
                for memory_id in read.memory_ids:
                    item = _item(entities, tenant, memory_id)
                    entities[item.entity_key] = replace(item, reads=_merged(item.reads, reading))
        return []

    def encode(self, entity: MemoryItem) -> dict[str, Any]:
        write = entity.write
        return {
            "tenant": entity.tenant,
            "memory_id": entity.memory_id,
            "write": None if write is None else _encode_write(write),
            "ignored_write_event_ids": list(entity.ignored_write_event_ids),
            "revocations": [_encode_flat(revocation) for revocation in entity.revocations],
            "reads": [_encode_flat(reading) for reading in entity.reads],
        }

    def decode(self, data: dict[str, Any]) -> MemoryItem:
        write = data["write"]
        return MemoryItem(
            tenant=data["tenant"],
            memory_id=data["memory_id"],
            write=None if write is None else _decode_write(write),
            ignored_write_event_ids=tuple(data["ignored_write_event_ids"]),
            revocations=tuple(MemoryRevocation(**revocation) for revocation in data["revocations"]),
            reads=tuple(MemoryReading(**reading) for reading in data["reads"]),
        )


# -- queries ---------------------------------------------------------------------------------------------


def context_packet(
    items: Iterable[MemoryItem], *, tenant: str, agent_id: str, mission_id: str | None, at: str, policy: Policy
) -> list[MemoryItem]:
    """The memory `agent_id`, working on `mission_id` (None: no mission), may use at time `at` (RFC 3339).

    An item is in it when it belongs to `tenant`, was written at or before `at`, is in scope for the agent
    (see `in_scope`), was not revoked at or before `at`, is not stale at `at` (its `expires_at`, else
    `policy.memory.default_ttl_days` after it was written) and is not superseded: of the items left with the
    same key, scope and audience, only the newest counts. The packet is ordered newest first (written_at, then
    log partition and index, descending) and holds at most `policy.memory.max_items`: the oldest drop out.
    """
    return list(
        context_packet_explained(
            items, tenant=tenant, agent_id=agent_id, mission_id=mission_id, at=at, policy=policy
        ).included
    )


def context_packet_explained(
    items: Iterable[MemoryItem], *, tenant: str, agent_id: str, mission_id: str | None, at: str, policy: Policy
) -> ExplainedPacket:
    """`context_packet` plus every item of the tenant it leaves out, with the reason, in the packet's order
    (items never written come last, by memory_id)."""
    moment = _parse_time(at, "at")
    other_tenant_items = 0
    current: list[MemoryItem] = []
    excluded: dict[str, ExcludedItem] = {}
    for item in items:
        if item.tenant != tenant:
            other_tenant_items += 1
            continue
        reason = _exclusion(item, agent_id=agent_id, mission_id=mission_id, at=moment, policy=policy)
        if reason is None:
            current.append(item)
        else:
            excluded[item.memory_id] = ExcludedItem(item, reason)

    # Supersession runs only over items usable now: a revoked or stale replacement does not hide what it
    # replaced (revoking a poisoned overwrite restores the original; a short-lived override lapses).
    included: list[MemoryItem] = []
    newest: dict[tuple[str | None, ...], MemoryItem] = {}
    for item in _packet_order(current):
        winner = newest.setdefault(_supersession_group(_written(item)), item)
        if winner is item:
            included.append(item)
        else:
            excluded[item.memory_id] = ExcludedItem(item, "superseded", superseded_by=winner.memory_id)
    for item in included[policy.memory.max_items :]:
        excluded[item.memory_id] = ExcludedItem(item, "over_limit")
    return ExplainedPacket(
        included=tuple(included[: policy.memory.max_items]),
        excluded=tuple(excluded[item.memory_id] for item in _packet_order(entry.item for entry in excluded.values())),
        other_tenant_items=other_tenant_items,
    )


def in_scope(write: MemoryWrite, *, agent_id: str, mission_id: str | None) -> bool:
    """Whether an agent working on `mission_id` may see an item, by its scope (schemas/payloads/memory.py).

    tenant: every agent of the tenant. mission: agents working on the writing envelope's mission. agent: the
    writing envelope's agent only. shared: only the agents in `shared_with` (the writer too only if listed).
    A mission or agent item whose envelope named no mission or agent is visible to nobody: fail closed.
    """
    match write.scope:
        case "tenant":
            return True
        case "mission":
            return write.mission_id is not None and write.mission_id == mission_id
        case "agent":
            return write.agent_id is not None and write.agent_id == agent_id
        case "shared":
            return agent_id in write.shared_with


def stale_from(write: MemoryWrite, policy: Policy) -> datetime | None:
    """When the item becomes stale: its own `expires_at`, else the policy's TTL after writing; None: never."""
    if write.expires_at is not None:
        return _parse_time(write.expires_at, "expires_at")
    ttl_days = policy.memory.default_ttl_days
    if ttl_days is None:
        return None
    try:
        return _parse_time(write.written_at, "written_at") + timedelta(days=ttl_days)
    except OverflowError:  # past year 9999: it never becomes stale in any time a timestamp can name
        return None


def _exclusion(
    item: MemoryItem, *, agent_id: str, mission_id: str | None, at: datetime, policy: Policy
) -> Exclusion | None:
    write = item.write
    if write is None or _parse_time(write.written_at, "written_at") > at:
        return "not_yet_written"
    if not in_scope(write, agent_id=agent_id, mission_id=mission_id):
        return "out_of_scope"
    revocation = item.revocation
    if revocation is not None and _parse_time(revocation.revoked_at, "revoked_at") <= at:
        return "revoked"
    expiry = stale_from(write, policy)
    if expiry is not None and expiry <= at:
        return "stale"
    return None


def _supersession_group(write: MemoryWrite) -> tuple[str | None, ...]:
    """Items that replace each other: same key, same scope and the same audience within it. The audience must
    match, so a newer item never hides an older one from an agent who cannot see the newer one."""
    audience: tuple[str | None, ...]
    match write.scope:
        case "tenant":
            audience = ()
        case "mission":
            audience = (write.mission_id,)
        case "agent":
            audience = (write.agent_id,)
        case "shared":
            audience = tuple(sorted(write.shared_with))
    return (write.key, write.scope, *audience)


def _packet_order(items: Iterable[MemoryItem]) -> list[MemoryItem]:
    """Written items newest first by log order, then items never written by memory_id."""
    pending = list(items)
    written = sorted(
        (item for item in pending if item.write is not None), key=lambda item: _written(item).log_order, reverse=True
    )
    return written + sorted((item for item in pending if item.write is None), key=lambda item: item.memory_id)


def _written(item: MemoryItem) -> MemoryWrite:
    if item.write is None:  # _exclusion has left out every item without a write
        raise AssertionError(f"memory item {item.memory_id} was never written")
    return item.write


def _parse_time(text: str, name: str) -> datetime:
    """An RFC 3339 timestamp with an offset, as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise UsageError(f"{name} {text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise UsageError(f"{name} {text!r} must be an RFC 3339 timestamp with a UTC offset, e.g. 'Z'")
    return moment.astimezone(UTC)


# -- folding helpers -------------------------------------------------------------------------------------

_Logged = TypeVar("_Logged", MemoryRevocation, MemoryReading)


def _item(entities: dict[str, MemoryItem], tenant: str, memory_id: str) -> MemoryItem:
    return entities.get(memory_key(tenant, memory_id)) or MemoryItem(tenant=tenant, memory_id=memory_id)


def _write_of(event: Envelope, written: MemoryWritten) -> MemoryWrite:
    return MemoryWrite(
        event_id=event["event_id"],
        written_at=event["recorded_at"],
        log_partition=event["log"]["partition"],
        log_index=event["log"]["index"],
        actor_kind=event["actor"]["kind"],
        actor_id=event["actor"]["id"],
        agent_id=event.get("agent_id"),
        mission_id=event.get("mission_id"),
        key=written.key,
        scope=written.scope,
        shared_with=tuple(written.shared_with),
        content=written.content,
        content_digest=written.content_digest,
        content_uri=written.content_uri,
        source_event_ids=tuple(written.source_event_ids),
        expires_at=written.expires_at,
    )


def _with_write(item: MemoryItem, write: MemoryWrite) -> MemoryItem:
    """The first write in log order wins, whatever order the writes are folded in."""
    current = item.write
    if current is None:
        return replace(item, write=write)
    if current.log_order == write.log_order:  # the same event again
        return item
    first, other = (write, current) if write.log_order < current.log_order else (current, write)
    ignored = tuple(sorted({*item.ignored_write_event_ids, other.event_id}))
    return replace(item, write=first, ignored_write_event_ids=ignored)


def _merged(existing: tuple[_Logged, ...], new: _Logged) -> tuple[_Logged, ...]:
    """`existing` plus `new`, in log order and without repeats: the same set whatever the folding order."""
    if any(record.log_order == new.log_order for record in existing):
        return existing
    merged = list(existing)
    merged.append(new)
    return tuple(sorted(merged, key=lambda record: record.log_order))


# -- encoding --------------------------------------------------------------------------------------------


def _encode_write(write: MemoryWrite) -> dict[str, Any]:
    return {
        "event_id": write.event_id,
        "written_at": write.written_at,
        "log_partition": write.log_partition,
        "log_index": write.log_index,
        "actor_kind": write.actor_kind,
        "actor_id": write.actor_id,
        "agent_id": write.agent_id,
        "mission_id": write.mission_id,
        "key": write.key,
        "scope": write.scope,
        "shared_with": list(write.shared_with),
        "content": write.content,
        "content_digest": write.content_digest,
        "content_uri": write.content_uri,
        "source_event_ids": list(write.source_event_ids),
        "expires_at": write.expires_at,
    }


def _decode_write(data: dict[str, Any]) -> MemoryWrite:
    scope = data["scope"]
    if scope not in _SCOPES:
        raise ValueError(f"stored memory item has unknown scope {scope!r}")
    return MemoryWrite(
        event_id=data["event_id"],
        written_at=data["written_at"],
        log_partition=data["log_partition"],
        log_index=data["log_index"],
        actor_kind=data["actor_kind"],
        actor_id=data["actor_id"],
        agent_id=data["agent_id"],
        mission_id=data["mission_id"],
        key=data["key"],
        scope=scope,
        shared_with=tuple(data["shared_with"]),
        content=data["content"],
        content_digest=data["content_digest"],
        content_uri=data["content_uri"],
        source_event_ids=tuple(data["source_event_ids"]),
        expires_at=data["expires_at"],
    )


def _encode_flat(record: MemoryRevocation | MemoryReading) -> dict[str, Any]:
    """A record whose fields are all JSON scalars, as a JSON object (decoded by `Record(**data)`)."""
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
