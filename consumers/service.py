"""The projections of one ledger in process: catch them up, query their state, authorize a tool call.

The SDK (`Ledger.projections()`) and the CLI (`agent-ledger authorize`, `projections show`) use this. It
reads the live generation of stores under `<state>/projections`; catching up runs the same `ProjectionConsumer`
as `agent-ledger consume NAME`, with the outbox publishing decisions through the ledger's append path.
`authorize` answers from the scope grants and records the answer as a `policy.decision` event.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from consumers.generations import live_dir, state_root_of
from consumers.policy_files import default_policy
from consumers.projection import (
    OutboxPublisher,
    PolicyBook,
    ProjectionConsumer,
    active_policy_id,
    default_publication,
)
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.clock import utc_now
from ledger.errors import SubmissionRefused, UsageError
from projections.authorize import Authorization, authorize, authorize_at, decision_payload
from projections.base import entity_key
from projections.memory import MemoryProjection, context_packet
from projections.missions import MissionProjection, mission_view
from projections.policy import Policy
from projections.registry import PROJECTIONS
from projections.scope import ScopeProjection

if TYPE_CHECKING:
    from ledger.sdk import Ledger
    from schemas.envelope import Receipt


@dataclass(frozen=True)
class Answer:
    """An authorization and, when it was recorded, the receipt of its `policy.decision` event."""

    authorization: Authorization
    policy_id: str
    policy_version: int
    receipt: Receipt | None = None

    def as_json(self) -> dict[str, Any]:
        answer = asdict(self.authorization)
        answer.update(policy_id=self.policy_id, policy_version=self.policy_version)
        if self.receipt is not None:
            answer["recorded"] = self.receipt.model_dump(mode="json", exclude_none=True)
        return answer


class ProjectionService:
    """Live projection state of `ledger`, kept under `state_root` (default `<data>/consumers`)."""

    def __init__(self, ledger: Ledger, state_root: Path | None = None) -> None:
        self.ledger = ledger
        self.state_root = state_root_of(ledger.settings.data_dir, state_root)
        self.fallback = default_policy()
        self._stores: dict[str, ConsumerStore] = {}
        self._runners: dict[str, ConsumerRunner[sqlite3.Cursor]] = {}
        self._policies = PolicyBook(self.fallback)

    def store(self, name: str) -> ConsumerStore:
        if name not in PROJECTIONS:
            raise UsageError(f"unknown projection '{name}' (known: {', '.join(sorted(PROJECTIONS))})")
        if name not in self._stores:
            store = ConsumerStore(live_dir(self.state_root) / f"{name}.sqlite")
            store.prepare(self._consumer(name), self.ledger.log.log_id)  # tables exist before any read
            self._stores[name] = store
        return self._stores[name]

    def _consumer(self, name: str) -> ProjectionConsumer[Any]:
        return ProjectionConsumer(PROJECTIONS[name](), self.fallback)

    def catch_up(self, *names: str) -> int:
        """Fold what the log has that the stores do not (all four by default); decisions are appended."""
        applied = 0
        for name in names or sorted(PROJECTIONS):
            if name not in self._runners:
                store = self.store(name)
                consumer = self._consumer(name)
                if not self.ledger.read_only:
                    consumer.publisher = OutboxPublisher(store, self.ledger.append_batch)
                self._runners[name] = ConsumerRunner(self.ledger.log, consumer, store)
            applied += self._runners[name].catch_up()
        return applied

    # -- queries ----------------------------------------------------------------------------------------

    def _entity(self, name: str, key: str) -> dict[str, Any] | None:
        with self.store(name).read() as cursor:
            cursor.execute("SELECT data FROM entities WHERE key=?", (key,))
            row = cursor.fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def policy(self, tenant: str) -> Policy:
        """The policy in force for `tenant` as the scope store has seen it (the shipped default before any)."""
        with self.store("scope").read() as cursor:
            return self._policies.active(cursor, tenant)

    def mission(self, tenant: str, mission_id: str) -> dict[str, Any] | None:
        data = self._entity("mission", entity_key(tenant, "mission", mission_id))
        return None if data is None else mission_view(MissionProjection().decode(data))

    def trust(self, tenant: str, agent_id: str) -> dict[str, Any] | None:
        return self._entity("trust", entity_key(tenant, "agent", agent_id))

    def scope(self, tenant: str, agent_id: str) -> dict[str, Any] | None:
        return self._entity("scope", entity_key(tenant, "agent", agent_id))

    def context_packet(
        self, tenant: str, agent_id: str, mission_id: str | None, at: str | None = None
    ) -> list[dict[str, Any]]:
        projection = MemoryProjection()
        with self.store("memory").read() as cursor:
            cursor.execute("SELECT data FROM entities WHERE tenant=?", (tenant,))
            items = [projection.decode(orjson.loads(row[0])) for row in cursor.fetchall()]
        packet = context_packet(
            items,
            tenant=tenant,
            agent_id=agent_id,
            mission_id=mission_id,
            at=at or utc_now(),
            policy=self.policy(tenant),
        )
        return [projection.encode(item) for item in packet]

    # -- authorization ----------------------------------------------------------------------------------

    def authorize(
        self,
        tenant: str,
        agent_id: str,
        tool: str,
        level: str = "sandbox",
        *,
        at: str | None = None,
        record: bool = True,
        call_id: str | None = None,
        request_event_id: str | None = None,
    ) -> Answer:
        """Allow, deny or escalate a call from the scope grants. Without `at` it is a decision now, recorded
        as `policy.decision` unless `record=False`; with `at` it asks the history and records nothing."""
        data = self.scope(tenant, agent_id)
        scope = None if data is None else ScopeProjection().decode(data)
        policy = self.policy(tenant)
        try:
            if at is not None:
                past = authorize_at(scope, tool=tool, level=level, at=at, policy=policy)
                return Answer(past, policy.policy_id, policy.version)
            answer = authorize(scope, tool=tool, level=level, at=utc_now(), policy=policy)
        except ValueError as exc:  # an unknown level, or a time that is not RFC 3339
            raise UsageError(f"cannot authorize: {exc}") from None
        receipt = None
        if record:
            decision = {
                "tenant": tenant,
                "stream": f"agent/{agent_id}",
                "type": "policy.decision",
                "actor": {"kind": "policy", "id": "authorizer"},
                "agent_id": agent_id,
                "causation_id": request_event_id,
                "payload": decision_payload(answer, policy, call_id=call_id, request_event_id=request_event_id),
            }
            *_, outcome = self.ledger.append_batch([*self._unpublished(tenant), decision])
            if isinstance(outcome, SubmissionRefused):
                raise outcome
            receipt = outcome
        return Answer(answer, policy.policy_id, policy.version, receipt)

    def _unpublished(self, tenant: str) -> list[dict[str, Any]]:
        """What must enter the log before a decision in `tenant` cites its policy: nothing once the scope store
        has seen a policy activated there; else the shipped default's two events, unless the store, caught up
        first, finds them in the log after all (no backend is scanned for them)."""
        with self.store("scope").read() as cursor:
            if active_policy_id(cursor, tenant) is not None:
                return []
        self.catch_up("scope")
        with self.store("scope").read() as cursor:
            return default_publication(cursor, tenant, self.fallback)

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self._runners.clear()
