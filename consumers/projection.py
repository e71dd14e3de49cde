"""Runs a pure projection (`projections/`) as a consumer: its entities, the policy in force and an outbox.

Per batch it loads the entities the events name, folds each event under the policy in force for its tenant
(the last `policy.activated` seen in the log, the shipped default before any), stores the entities back and
queues the projection's decisions in an outbox, all in the transaction that stores the position (guarantee 7).
After the commit the outbox is appended through the normal append path; a decision's event id is derived from
its cause, so a crash between append and bookkeeping, a restart or a replay appends nothing twice. A shadow
rebuild runs the same fold under a fixed policy and queues nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from consumers.base import Consumer, Envelope
from consumers.store import ConsumerStore
from ledger.errors import ConfigError, DuplicateEventId, LedgerError, SubmissionRefused
from projections.base import Decision, Projection, fold_event
from projections.policy import Policy, parse_policy

log = logging.getLogger(__name__)

E = TypeVar("E")
AppendBatch = Callable[[list[dict[str, Any]]], Sequence[object]]

PROJECTION_TABLES = [
    "CREATE TABLE entities (key TEXT PRIMARY KEY, tenant TEXT NOT NULL, data BLOB NOT NULL) WITHOUT ROWID",
    "CREATE INDEX entities_by_tenant ON entities (tenant, key)",
    "CREATE TABLE policies (tenant TEXT NOT NULL, policy_id TEXT NOT NULL, document BLOB NOT NULL,"
    " PRIMARY KEY (tenant, policy_id)) WITHOUT ROWID",
    "CREATE TABLE active_policies (tenant TEXT PRIMARY KEY, policy_id TEXT NOT NULL, event_id TEXT) WITHOUT ROWID",
    "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, tenant TEXT NOT NULL,"
    " submission BLOB NOT NULL, state TEXT NOT NULL DEFAULT 'pending', detail TEXT, UNIQUE (tenant, event_id))",
]
CHUNK = 500  # bound parameters per IN (...)


def encode_entity(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def read_entities(path: Path, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """The entities of a projection store file whose key starts with `prefix`, in key order, read without
    taking any lock a running consumer needs (a missing file holds none)."""
    if not path.exists():
        return []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT key, data FROM entities WHERE key >= ? AND key < ? ORDER BY key", (prefix, prefix + "\uffff")
        ).fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read projection store {path}: {exc}") from None
    finally:
        connection.close()
    return [(str(key), orjson.loads(data)) for key, data in rows]


def initial_activation_id(policy_id: str) -> str:
    """The event id of `policy.activated` as `policy_submissions` derives it from the policy id."""
    return f"policy-activated:{policy_id.removeprefix('sha256:')[:40]}"


def policy_submissions(tenant: str, policy: Policy, *, source: str | None = None) -> list[dict[str, Any]]:
    """`policy.published` then `policy.activated` for `policy` in `tenant`, with ids derived from the policy id,
    so every projection (and every restart) that publishes the same policy appends it once."""
    digest = policy.policy_id.removeprefix("sha256:")[:40]
    actor = {"kind": "system", "id": "agent-ledger"}
    published: dict[str, Any] = {
        "event_id": f"policy-published:{digest}",
        "tenant": tenant,
        "stream": f"policy/{policy.name}",
        "type": "policy.published",
        "actor": actor,
        "payload": {
            "policy_id": policy.policy_id,
            "name": policy.name,
            "version": policy.version,
            "content": policy.document,
            **({"source": source} if source else {}),
        },
    }
    activated: dict[str, Any] = {
        "event_id": initial_activation_id(policy.policy_id),
        "tenant": tenant,
        "stream": f"policy/{policy.name}",
        "type": "policy.activated",
        "actor": actor,
        "causation_id": published["event_id"],
        "payload": {"policy_id": policy.policy_id, "name": policy.name, "version": policy.version},
    }
    return [published, activated]


def active_policy_id(cursor: sqlite3.Cursor, tenant: str) -> str | None:
    """The id of the policy a projection store has seen activated for `tenant` (None: none yet)."""
    cursor.execute("SELECT policy_id FROM active_policies WHERE tenant=?", (tenant,))
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def default_publication(cursor: sqlite3.Cursor, tenant: str, fallback: Policy) -> list[dict[str, Any]]:
    """What must enter the log before a decision citing the shipped default in `tenant`: its `policy.published`
    and `policy.activated`, unless the store has seen a policy activated there."""
    return [] if active_policy_id(cursor, tenant) is not None else policy_submissions(tenant, fallback)


class PolicyBook:
    """The policies a projection store holds, each parsed once (a policy never changes under its id)."""

    def __init__(self, fallback: Policy) -> None:
        self.fallback = fallback
        self._parsed: dict[str, Policy] = {fallback.policy_id: fallback}

    def remember(self, policy: Policy) -> None:
        self._parsed[policy.policy_id] = policy

    def stored(self, cursor: sqlite3.Cursor, tenant: str, policy_id: str) -> Policy | None:
        """The published policy `policy_id` of `tenant`, or None if the store has not seen it."""
        cursor.execute("SELECT document FROM policies WHERE tenant=? AND policy_id=?", (tenant, policy_id))
        row = cursor.fetchone()
        if row is None:
            return None
        if policy_id not in self._parsed:
            self._parsed[policy_id] = parse_policy(orjson.loads(row[0]), f"stored policy {policy_id}")
        return self._parsed[policy_id]

    def active(self, cursor: sqlite3.Cursor, tenant: str) -> Policy:
        """The policy in force for `tenant` as the store has seen it (the fallback before any activation)."""
        policy_id = active_policy_id(cursor, tenant)
        found = None if policy_id is None else self.stored(cursor, tenant, policy_id)
        return found or self.fallback


class ProjectionConsumer(Consumer[sqlite3.Cursor], Generic[E]):
    """A projection fed by the runner. `fixed_policy` (a shadow rebuild) folds every tenant under that policy,
    ignores activations in the log and queues no decisions."""

    def __init__(self, projection: Projection[E], fallback: Policy, *, fixed_policy: Policy | None = None) -> None:
        self.projection = projection
        self.name = projection.name
        self.version = projection.version
        self.fallback = fallback
        self.fixed_policy = fixed_policy
        self.publisher: OutboxPublisher | None = None
        self.policies = PolicyBook(fallback)

    def schema(self) -> list[str]:
        return list(PROJECTION_TABLES)

    # -- folding ----------------------------------------------------------------------------------------

    def apply(self, cursor: sqlite3.Cursor, events: list[Envelope]) -> None:
        keys_per_event = [list(self.projection.keys(event)) for event in events]
        entities = self._load(cursor, {key for keys in keys_per_event for key in keys})
        touched_keys: set[str] = set()
        decisions: list[Decision] = []
        active: dict[str, Policy] = {}
        for event, keys in zip(events, keys_per_event, strict=True):
            if self.fixed_policy is None and event["type"] in ("policy.published", "policy.activated"):
                self._track_policy(cursor, event, active)
            if not keys:
                continue
            policy = self._policy_for(cursor, event["tenant"], active)
            decisions.extend(fold_event(self.projection, entities, event, policy, keys))
            touched_keys.update(key for key in keys if key in entities)
        cursor.executemany(
            "INSERT INTO entities VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET data = excluded.data",
            [
                (key, key.split("/", 1)[0], encode_entity(self.projection.encode(entities[key])))
                for key in sorted(touched_keys)
            ],
        )
        if self.fixed_policy is None and decisions:
            self._queue(cursor, decisions)

    def _load(self, cursor: sqlite3.Cursor, keys: set[str]) -> dict[str, E]:
        loaded: dict[str, E] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            cursor.execute(f"SELECT key, data FROM entities WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, data in cursor.fetchall():
                loaded[key] = self.projection.decode(orjson.loads(data))
        return loaded

    # -- policies ---------------------------------------------------------------------------------------

    def _track_policy(self, cursor: sqlite3.Cursor, event: Envelope, active: dict[str, Policy]) -> None:
        tenant, payload = event["tenant"], event["payload"]
        if event["type"] == "policy.published":
            try:
                policy = parse_policy(payload["content"], f"policy.published {event['event_id']}")
            except LedgerError as exc:  # in the log already; a projection cannot use it, and says so once
                log.warning("%s: %s", self.projection.name, exc)
                return
            if policy.policy_id != payload["policy_id"]:
                log.warning(
                    "%s: policy.published %s names the wrong policy_id", self.projection.name, event["event_id"]
                )
                return
            self.policies.remember(policy)
            cursor.execute(
                "INSERT OR IGNORE INTO policies VALUES (?, ?, ?)",
                (tenant, policy.policy_id, encode_entity(policy.document)),
            )
            return
        policy_id = payload["policy_id"]
        if self.policies.stored(cursor, tenant, policy_id) is None:
            log.warning(
                "%s: policy.activated %s names unpublished %s", self.projection.name, event["event_id"], policy_id
            )
            return
        # The shipped default, activated by whichever projection decided first, only fills a gap: on Kafka it can
        # arrive after an operator's activation that sat on another partition, and must not undo it.
        initial = event["event_id"] == initial_activation_id(self.fallback.policy_id)
        if initial and active_policy_id(cursor, tenant) not in (None, policy_id):
            return
        cursor.execute(
            "INSERT INTO active_policies VALUES (?, ?, ?) ON CONFLICT (tenant) DO UPDATE"
            " SET policy_id = excluded.policy_id, event_id = excluded.event_id",
            (tenant, policy_id, event["event_id"]),
        )
        active.pop(tenant, None)

    def _policy_for(self, cursor: sqlite3.Cursor, tenant: str, active: dict[str, Policy]) -> Policy:
        if self.fixed_policy is not None:
            return self.fixed_policy
        if tenant not in active:  # once per tenant and batch; an activation in the batch clears it
            active[tenant] = self.policies.active(cursor, tenant)
        return active[tenant]

    # -- the outbox -------------------------------------------------------------------------------------

    def _queue(self, cursor: sqlite3.Cursor, decisions: list[Decision]) -> None:
        rows: list[tuple[str, str, bytes]] = []
        for tenant in sorted({d.tenant for d in decisions if d.policy_id == self.fallback.policy_id}):
            # A policy enters the log before a decision cites it.
            rows.extend(
                (s["event_id"], tenant, orjson.dumps(s)) for s in default_publication(cursor, tenant, self.fallback)
            )
        rows.extend((d.event_id, d.tenant, orjson.dumps(d.submission())) for d in decisions)
        cursor.executemany("INSERT OR IGNORE INTO outbox (event_id, tenant, submission) VALUES (?, ?, ?)", rows)

    def after_commit(self) -> None:
        if self.publisher is not None:
            self.publisher.publish()

    def on_caught_up(self) -> None:
        # Also on arrival: a restart after a crash between commit and append finds the rows still pending.
        self.after_commit()


class OutboxPublisher:
    """Appends a projection store's pending decisions through the ledger's append path, in queue order."""

    def __init__(self, store: ConsumerStore, append_batch: AppendBatch, batch_size: int = 200) -> None:
        self.store = store
        self.append_batch = append_batch
        self.batch_size = batch_size

    def publish(self) -> int:
        """Append every pending decision; return how many were appended now (duplicates count as done)."""
        appended = 0
        while True:
            with self.store.read() as cursor:
                cursor.execute(
                    "SELECT id, submission FROM outbox WHERE state='pending' ORDER BY id LIMIT ?", (self.batch_size,)
                )
                pending = [(int(row[0]), orjson.loads(row[1])) for row in cursor.fetchall()]
            if not pending:
                return appended
            outcomes = self.append_batch([submission for _, submission in pending])
            marks: list[tuple[str, str | None, int]] = []
            for (row_id, _), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, DuplicateEventId) or not isinstance(outcome, SubmissionRefused):
                    marks.append(("appended", None, row_id))
                    appended += not isinstance(outcome, DuplicateEventId)
                else:  # a bug in a projection, not in the input: keep it, with the reason, for an operator
                    log.error("decision refused by the ledger: %s: %s", outcome.reason_code, outcome)
                    marks.append(("refused", f"{outcome.reason_code}: {outcome}", row_id))
            with self.store.transaction() as cursor:
                cursor.executemany("UPDATE outbox SET state=?, detail=? WHERE id=?", marks)

    def pending(self) -> int:
        with self.store.read() as cursor:
            cursor.execute("SELECT COUNT(*) FROM outbox WHERE state='pending'")
            return int(cursor.fetchone()[0])
