"""Memory views: the context packet leaves out stale, revoked, out-of-scope and superseded items, answers for any
earlier time, and never crosses tenants (DESIGN guarantees 8 and 9). Events go through the real write path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support import Fold, sequence

from consumers.policy_files import default_policy
from ledger.errors import UsageError
from projections.base import Envelope
from projections.memory import (
    ExplainedPacket,
    MemoryItem,
    MemoryProjection,
    context_packet,
    context_packet_explained,
)
from projections.policy import Policy, parse_policy

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def written(
    memory_id: str,
    key: str,
    scope: str = "tenant",
    *,
    tenant: str = "acme",
    agent: str | None = "a-1",
    mission: str | None = "m-1",
    **payload: Any,
) -> dict[str, Any]:
    """A `memory.written` submission by `agent` in `mission` (its stream is the mission's, else the agent's)."""
    return {
        "tenant": tenant,
        "stream": f"mission/{mission}" if mission else f"agent/{agent or 'system'}",
        "type": "memory.written",
        "actor": {"kind": "agent", "id": agent} if agent else {"kind": "system", "id": "importer"},
        "agent_id": agent,
        "mission_id": mission,
        "payload": {"memory_id": memory_id, "key": key, "scope": scope, "content": f"{key} says {memory_id}"} | payload,
    }


def read(memory_ids: list[str], *, tenant: str = "acme", agent: str = "a-1", mission: str = "m-1") -> dict[str, Any]:
    return {
        "tenant": tenant,
        "stream": f"mission/{mission}",
        "type": "memory.read",
        "actor": {"kind": "agent", "id": agent},
        "agent_id": agent,
        "mission_id": mission,
        "payload": {"memory_ids": memory_ids, "purpose": "context"},
    }


def revoked(memory_id: str, *, tenant: str = "acme", reason: str = "poisoned") -> dict[str, Any]:
    return {
        "tenant": tenant,
        "stream": "memory/review",
        "type": "memory.revoked",
        "actor": {"kind": "human", "id": "h-1"},
        "payload": {"memory_id": memory_id, "reason": reason},
    }


def fold(events: list[Envelope], policy: Policy | None = None) -> Fold[MemoryItem]:
    folded = Fold(MemoryProjection(), policy or default_policy())
    folded.apply(events)
    return folded


def ids(items: list[MemoryItem] | tuple[MemoryItem, ...]) -> list[str]:
    return [item.memory_id for item in items]


def reasons(explained: ExplainedPacket) -> dict[str, str]:
    return {entry.item.memory_id: entry.reason for entry in explained.excluded}


def shifted(timestamp: str, **delta: float) -> str:
    return (datetime.strptime(timestamp, FORMAT).replace(tzinfo=UTC) + timedelta(**delta)).strftime(FORMAT)


def written_at(events: list[Envelope], memory_id: str) -> str:
    return next(
        event["recorded_at"]
        for event in events
        if event["type"] == "memory.written" and event["payload"]["memory_id"] == memory_id
    )


def with_memory(**memory: Any) -> Policy:
    policy = default_policy()
    return parse_policy({**policy.document, "memory": {**policy.document["memory"], **memory}})


def test_packet_excludes_stale_revoked_and_out_of_scope_items_and_includes_the_rest(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [
            written("everyone", "runbook"),
            written("our-mission", "ci-flake", "mission"),
            written("other-mission", "ci-flake", "mission", agent="a-2", mission="m-2"),
            written("mine", "style", "agent"),
            written("theirs", "style", "agent", agent="a-2"),
            written("shared-with-me", "handoff", "shared", agent="a-2", mission="m-2", shared_with=["a-1", "a-3"]),
            written("shared-away", "handoff", "shared", shared_with=["a-3"]),  # the writer is not listed
            written("poisoned", "payments"),
            written("expired", "oncall", expires_at="2020-01-01T00:00:00.000000Z"),
            revoked("poisoned"),
        ],
    )
    items = fold(events).entities.values()
    at = events[-1]["recorded_at"]
    policy = default_policy()

    packet = context_packet(items, tenant="acme", agent_id="a-1", mission_id="m-1", at=at, policy=policy)
    explained = context_packet_explained(items, tenant="acme", agent_id="a-1", mission_id="m-1", at=at, policy=policy)

    # Newest first, in log order of writing.
    assert ids(packet) == ["shared-with-me", "mine", "our-mission", "everyone"]
    assert ids(explained.included) == ids(packet)
    assert reasons(explained) == {
        "other-mission": "out_of_scope",
        "theirs": "out_of_scope",
        "shared-away": "out_of_scope",
        "poisoned": "revoked",
        "expired": "stale",
    }
    assert explained.other_tenant_items == 0

    # The same items seen by a-3 outside any mission: tenant items and what was shared with it.
    third = context_packet(items, tenant="acme", agent_id="a-3", mission_id=None, at=at, policy=policy)
    assert ids(third) == ["shared-away", "shared-with-me", "everyone"]


def test_mission_or_agent_item_without_that_context_is_visible_to_nobody(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [
            written("orphan-mission", "notes", "mission", mission=None),
            written("orphan-agent", "notes", "agent", agent=None, mission=None),
        ],
    )
    items = fold(events).entities.values()
    for agent_id, mission_id in [("a-1", None), ("a-1", "m-1"), ("system", None)]:
        explained = context_packet_explained(
            items,
            tenant="acme",
            agent_id=agent_id,
            mission_id=mission_id,
            at=events[-1]["recorded_at"],
            policy=default_policy(),
        )
        assert explained.included == ()
        assert reasons(explained) == {"orphan-mission": "out_of_scope", "orphan-agent": "out_of_scope"}


def test_a_later_item_with_the_same_key_and_scope_supersedes_the_earlier(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [
            written("target-v1", "deploy/target"),
            written("mission-m1", "deploy/target", "mission"),
            written("mission-m2", "deploy/target", "mission", mission="m-2"),
            written("private", "deploy/target", "agent"),
            written("target-v2", "deploy/target", agent="a-2", mission="m-2"),
            written("mission-m1-v2", "deploy/target", "mission", agent="a-3"),
        ],
    )
    items = fold(events).entities.values()
    policy = default_policy()
    explained = context_packet_explained(
        items, tenant="acme", agent_id="a-1", mission_id="m-1", at=events[-1]["recorded_at"], policy=policy
    )

    # Same key, different scope or audience: each stands; same key, scope and audience: the newest wins.
    assert ids(explained.included) == ["mission-m1-v2", "target-v2", "private"]
    assert {e.item.memory_id: (e.reason, e.superseded_by) for e in explained.excluded} == {
        "mission-m2": ("out_of_scope", None),
        "mission-m1": ("superseded", "mission-m1-v2"),
        "target-v1": ("superseded", "target-v2"),
    }

    # Before the newer items were written the older ones are current.
    before = shifted(written_at(events, "target-v2"), microseconds=-1)
    assert ids(context_packet(items, tenant="acme", agent_id="a-1", mission_id="m-1", at=before, policy=policy)) == [
        "private",
        "mission-m1",
        "target-v1",
    ]


def test_revoking_or_expiry_of_the_newer_item_brings_back_the_one_it_replaced(tmp_path: Path) -> None:
    first = sequence(tmp_path, [written("original", "customer/channel"), written("temporary", "freeze")])
    later = shifted(first[-1]["recorded_at"], days=1)
    events = sequence(
        tmp_path,
        [
            written("overwrite", "customer/channel", agent="a-9"),
            written("override", "freeze", expires_at=later),
            revoked("overwrite", reason="prompt injection"),
        ],
    )
    items = fold(events).entities.values()
    policy = default_policy()

    def packet(at: str) -> list[str]:
        return ids(context_packet(items, tenant="acme", agent_id="a-1", mission_id="m-1", at=at, policy=policy))

    assert packet(shifted(events[-1]["recorded_at"], microseconds=-1)) == ["override", "overwrite"]
    # The poisoned overwrite is withdrawn, and the short-lived override has lapsed: what they hid is back.
    assert packet(events[-1]["recorded_at"]) == ["override", "original"]
    assert packet(later) == ["temporary", "original"]


def test_time_travel_gives_the_earlier_view(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [written("fact", "api/limits"), read(["fact"], agent="a-2"), revoked("fact", reason="wrong")],
    )
    items = fold(events).entities.values()
    item = next(iter(items))
    policy = default_policy()
    revoked_at = events[-1]["recorded_at"]
    assert item.write is not None and item.revocation is not None
    assert item.write.written_at < revoked_at == item.revocation.revoked_at

    def explain(at: str) -> ExplainedPacket:
        return context_packet_explained(items, tenant="acme", agent_id="a-1", mission_id="m-1", at=at, policy=policy)

    assert reasons(explain(shifted(item.write.written_at, microseconds=-1))) == {"fact": "not_yet_written"}
    assert ids(explain(item.write.written_at).included) == ["fact"]
    assert ids(explain(shifted(revoked_at, microseconds=-1)).included) == ["fact"]
    assert reasons(explain(revoked_at)) == {"fact": "revoked"}
    assert reasons(explain(shifted(revoked_at, days=400))) == {"fact": "revoked"}

    # The entity keeps the whole story: provenance, who read it, who revoked it and why.
    assert item.write.event_id == events[0]["event_id"]
    assert (item.write.agent_id, item.write.mission_id) == ("a-1", "m-1")
    assert [(r.event_id, r.agent_id) for r in item.reads] == [(events[1]["event_id"], "a-2")]
    assert (item.revocation.event_id, item.revocation.reason) == (events[2]["event_id"], "wrong")


def test_ttl_from_policy_applies_only_without_an_explicit_expiry(tmp_path: Path) -> None:
    first = sequence(tmp_path, [written("default-ttl", "a")])
    start = first[0]["recorded_at"]
    events = sequence(
        tmp_path,
        [
            written("long-lived", "b", expires_at=shifted(start, days=365)),
            written("short-lived", "c", expires_at=shifted(start, days=1)),
        ],
    )
    items = fold(events).entities.values()

    def packet(policy: Policy, **after: float) -> list[str]:
        at = shifted(start, **after)
        return sorted(ids(context_packet(items, tenant="acme", agent_id="a-1", mission_id="m-1", at=at, policy=policy)))

    policy = default_policy()
    assert policy.memory.default_ttl_days == 90
    assert packet(policy, days=2) == ["default-ttl", "long-lived"]
    assert packet(policy, days=91) == ["long-lived"]
    assert packet(policy, days=366) == []
    # A shorter TTL stales only the item without its own expiry; no TTL keeps it for good.
    assert packet(with_memory(default_ttl_days=1.5), days=2) == ["long-lived"]
    assert packet(with_memory(default_ttl_days=None), days=10_000) == ["default-ttl"]


def test_packet_holds_at_most_max_items_the_newest(tmp_path: Path) -> None:
    events = sequence(tmp_path, [written(f"m{n}", f"key-{n}") for n in range(5)])
    items = fold(events).entities.values()
    explained = context_packet_explained(
        items,
        tenant="acme",
        agent_id="a-1",
        mission_id="m-1",
        at=events[-1]["recorded_at"],
        policy=with_memory(max_items=2),
    )
    assert ids(explained.included) == ["m4", "m3"]
    assert reasons(explained) == {"m2": "over_limit", "m1": "over_limit", "m0": "over_limit"}


def test_tenants_with_the_same_memory_id_and_key_never_see_each_other(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [
            written("mem-1", "db/password-hint", tenant="acme", content="acme secret"),
            written("mem-1", "db/password-hint", tenant="globex", content="globex secret"),
            written("mem-2", "db/password-hint", "shared", tenant="globex", shared_with=["a-1"]),
            read(["mem-1", "mem-2"], tenant="globex"),
            revoked("mem-1", tenant="globex"),
        ],
    )
    folded = fold(events)
    assert sorted(folded.entities) == ["acme/memory/mem-1", "globex/memory/mem-1", "globex/memory/mem-2"]
    acme = folded.entities["acme/memory/mem-1"]
    assert acme.write is not None and acme.write.content == "acme secret"
    assert acme.reads == () and acme.revocations == ()  # globex's read and revocation stayed in globex

    items = list(folded.entities.values())
    policy = default_policy()
    for at in [event["recorded_at"] for event in events] + [shifted(events[-1]["recorded_at"], days=30)]:
        for agent_id, mission_id in [("a-1", "m-1"), ("a-1", None), ("a-2", "m-2")]:
            for tenant in ("acme", "globex"):
                explained = context_packet_explained(
                    items, tenant=tenant, agent_id=agent_id, mission_id=mission_id, at=at, policy=policy
                )
                shown = [*explained.included, *(entry.item for entry in explained.excluded)]
                assert all(item.tenant == tenant for item in shown)
                assert explained.other_tenant_items == len(items) - len(shown)

    final = events[-1]["recorded_at"]
    acme_packet = context_packet(items, tenant="acme", agent_id="a-1", mission_id="m-1", at=final, policy=policy)
    assert [(item.tenant, item.memory_id) for item in acme_packet] == [("acme", "mem-1")]
    globex_packet = context_packet(items, tenant="globex", agent_id="a-1", mission_id="m-1", at=final, policy=policy)
    assert [(item.tenant, item.memory_id) for item in globex_packet] == [("globex", "mem-2")]


def test_encode_decode_round_trips_exactly(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [
            read(["not-yet"]),
            written(
                "full",
                "k",
                "shared",
                shared_with=["a-1", "a-2"],
                content=None,
                content_digest="sha256:" + "ab" * 32,
                content_uri="s3://memory/full",
                source_event_ids=["e-1", "e-2"],
                expires_at="2099-01-01T00:00:00.000000Z",
            ),
            written("full", "k", content="a rewrite that must not count"),
            read(["full", "not-yet"], agent="a-2"),
            revoked("full"),
            revoked("full", reason="again"),
            written("plain", "p", agent=None, mission=None),
        ],
    )
    projection = MemoryProjection()
    entities = fold(events).entities
    assert len(entities) == 3
    for entity in entities.values():
        encoded = projection.encode(entity)
        assert projection.decode(encoded) == entity
        stored = json.loads(json.dumps(encoded))  # what a store keeps
        assert projection.encode(projection.decode(stored)) == encoded

    full = entities["acme/memory/full"]
    assert full.write is not None and full.write.scope == "shared" and full.write.content is None
    assert full.ignored_write_event_ids == (events[2]["event_id"],)
    assert [revocation.reason for revocation in full.revocations] == ["poisoned", "again"]
    assert full.revocation is not None and full.revocation.reason == "poisoned"  # the first one counts
    assert entities["acme/memory/not-yet"].write is None
    assert len(entities["acme/memory/not-yet"].reads) == 2


def test_folding_order_does_not_change_the_state(tmp_path: Path) -> None:
    """Writes, reads and revocations of one item may come from different partitions, in any interleaving."""
    events = sequence(
        tmp_path,
        [
            written("x", "k"),
            read(["x"]),
            written("x", "k", content="second write"),
            revoked("x"),
            read(["x"], agent="a-2"),
            revoked("x", reason="again"),
        ],
    )
    in_order = fold(events).encoded()
    assert fold(list(reversed(events))).encoded() == in_order
    assert fold(events[3:] + events[:3]).encoded() == in_order
    twice = Fold(MemoryProjection(), default_policy())
    twice.apply(events)
    twice.apply(events[1:4])
    assert twice.encoded() == in_order


def test_projection_emits_no_decisions_and_ignores_other_events(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [
            {
                "tenant": "acme",
                "stream": "mission/m-1",
                "type": "mission.step.recorded",
                "actor": {"kind": "agent", "id": "a-1"},
                "agent_id": "a-1",
                "mission_id": "m-1",
                "payload": {"step_id": "s-1", "summary": "step", "status": "completed"},
            },
            written("x", "k"),
            revoked("x"),
        ],
    )
    projection = MemoryProjection()
    assert list(projection.keys(events[0])) == []
    folded = fold(events)
    assert folded.decisions == []
    assert sorted(folded.entities) == ["acme/memory/x"]


@pytest.mark.parametrize("at", ["yesterday", "2026-01-01T00:00:00", ""])
def test_packet_refuses_a_time_that_is_not_rfc3339_with_offset(at: str) -> None:
    with pytest.raises(UsageError, match="at"):
        context_packet([], tenant="acme", agent_id="a-1", mission_id=None, at=at, policy=default_policy())


def test_packet_accepts_any_rfc3339_offset(tmp_path: Path) -> None:
    events = sequence(tmp_path, [written("x", "k")])
    items = fold(events).entities.values()
    written_utc = datetime.strptime(events[0]["recorded_at"], FORMAT).replace(tzinfo=UTC)
    at = (written_utc + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert at.endswith("-05:00")
    packet = context_packet(items, tenant="acme", agent_id="a-1", mission_id=None, at=at, policy=default_policy())
    assert ids(packet) == ["x"]
