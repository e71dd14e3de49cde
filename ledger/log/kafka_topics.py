"""The four Kafka topics of the ledger, the settings each must have, and the admin calls that create and check them.

`ledger.events`, `ledger.checkpoints` and `ledger.rejected` keep everything forever and are never compacted
(DESIGN guarantees 1, 2 and 6); intake and checkpoints have as many partitions as events, so the sequencer owning
intake partition p is the single writer of events partition p (guarantee 3). Existing topics that would break
this are refused with one precise line; this module never alters or deletes a topic.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import (
    BrokerResponseError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from ledger.errors import ConfigError, UsageError

INTAKE = "ledger.intake"
EVENTS = "ledger.events"
CHECKPOINTS = "ledger.checkpoints"
REJECTED = "ledger.rejected"
TOPICS = (INTAKE, EVENTS, CHECKPOINTS, REJECTED)
KEPT_FOREVER = (EVENTS, CHECKPOINTS, REJECTED)
"""Topics whose records are the ledger itself or its evidence: retention -1, never compacted."""

SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000
DEFAULT_TIMEOUT_MS = 15_000

# the settings read back and checked on every topic (effective values, whatever their source)
CLEANUP_POLICY = "cleanup.policy"
RETENTION_MS = "retention.ms"
RETENTION_BYTES = "retention.bytes"
MIN_INSYNC_REPLICAS = "min.insync.replicas"
UNCLEAN_LEADER_ELECTION = "unclean.leader.election.enable"
CHECKED_SETTINGS = (CLEANUP_POLICY, RETENTION_MS, RETENTION_BYTES, MIN_INSYNC_REPLICAS, UNCLEAN_LEADER_ELECTION)

_UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,200}$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class TopicPlan:
    """What `agent-ledger kafka init` asks for: one partition count for intake, events and checkpoints."""

    partitions: int = 4
    replication_factor: int = 1
    min_insync_replicas: int = 1
    intake_retention_ms: int = SEVEN_DAYS_MS

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise UsageError(f"partitions must be at least 1, not {self.partitions}")
        if self.replication_factor < 1:
            raise UsageError(f"replication factor must be at least 1, not {self.replication_factor}")
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise UsageError(
                f"min.insync.replicas must be between 1 and the replication factor {self.replication_factor}, "
                f"not {self.min_insync_replicas}"
            )
        if self.intake_retention_ms != -1 and self.intake_retention_ms < 60_000:
            raise UsageError(
                f"intake retention must be -1 (forever) or at least 60000 ms, not {self.intake_retention_ms}"
            )

    def topic_configs(self, topic: str) -> dict[str, str]:
        """The topic-level settings `ensure_topics` creates `topic` with."""
        if topic not in TOPICS:
            raise ValueError(f"not a ledger topic: {topic}")
        retention_ms = self.intake_retention_ms if topic == INTAKE else -1
        return {
            CLEANUP_POLICY: "delete",
            RETENTION_MS: str(retention_ms),
            RETENTION_BYTES: "-1",
            MIN_INSYNC_REPLICAS: str(self.min_insync_replicas),
            UNCLEAN_LEADER_ELECTION: "false",
        }


@dataclass(frozen=True)
class TopicState:
    """One existing topic as the broker describes it: partition count, replication and effective settings."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]
    inherited: frozenset[str] = frozenset()
    """Checked settings not pinned on the topic (their value comes from a broker default that may change)."""

    def summary(self, role: str) -> str:
        retention = self.configs.get(RETENTION_MS, "?")
        retention_text = "retention forever" if retention == "-1" else f"retention.ms {retention}"
        text = (
            f"{self.partitions} partitions, replication factor {self.replication_factor}, "
            f"min.insync.replicas {self.configs.get(MIN_INSYNC_REPLICAS, '?')}, {retention_text}, "
            f"cleanup.policy {self.configs.get(CLEANUP_POLICY, '?')}"
        )
        guarded = sorted(self.inherited & {CLEANUP_POLICY, RETENTION_MS, RETENTION_BYTES, UNCLEAN_LEADER_ELECTION})
        if guarded and role in KEPT_FOREVER:
            text += f" (note: {', '.join(guarded)} inherited from broker defaults, not pinned on the topic)"
        return text


def parse_bootstrap(bootstrap: str) -> str:
    """Validate `HOST:PORT[,HOST:PORT...]` and return it stripped; a bad value is a `UsageError`."""
    value = bootstrap.strip()
    servers = value.split(",") if value else []
    for server in servers:
        match = _HOST_PORT.match(server.strip())
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise UsageError(
                f"Kafka address must be HOST:PORT (comma-separated for several brokers), not {bootstrap!r}"
            )
    if not servers:
        raise UsageError("Kafka address is empty; give --kafka HOST:PORT or set AGENT_LEDGER_KAFKA")
    return ",".join(server.strip() for server in servers)


def _one_line(error: BaseException) -> str:
    """A Kafka error as one short line (broker errors otherwise carry the whole request and response)."""
    if isinstance(error, BrokerResponseError):
        name = type(error).__name__
        return f"{name} ({error.description})" if error.description else name
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def _admin(bootstrap: str, timeout_ms: int) -> Iterator[KafkaAdminClient]:
    """An admin client with bounded timeouts; every Kafka failure inside becomes a one-line `ConfigError`."""
    servers = parse_bootstrap(bootstrap)
    # constructed in two steps so a failed bootstrap (raised by __init__) still leaves us the object to clean up
    client: Any = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        try:
            client.__init__(
                bootstrap_servers=servers.split(","),
                client_id="agent-ledger-admin",
                request_timeout_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
                reconnect_backoff_max_ms=1_000,
            )
        except BaseException:
            _abandon(client)
            raise
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.close()
    except _UNREACHABLE as error:
        raise ConfigError(f"cannot reach Kafka at {servers}: {_one_line(error)}") from None
    except KafkaError as error:
        raise ConfigError(f"Kafka at {servers} refused the request: {_one_line(error)}") from None
    except OSError as error:
        raise ConfigError(f"cannot reach Kafka at {servers}: {error}") from None


def _abandon(client: Any) -> None:
    """Stop the I/O thread of a client whose constructor failed: kafka-python 3 starts it before bootstrapping,
    and it would otherwise keep reconnecting in the background for the life of the process."""
    for owner, method in (("_metrics", "close"), ("_client", "close"), ("_net", "stop")):
        target = getattr(client, owner, None)
        if target is not None:
            with contextlib.suppress(Exception):
                getattr(target, method)()


@dataclass(frozen=True)
class Topics:
    """The four topic names of one ledger: prefix + role. A prefix lets several ledgers (or test runs) share one
    cluster; `--topic-prefix` sets it."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if not _TOPIC_PREFIX.match(self.prefix):
            raise UsageError(
                f"topic prefix may hold only letters, digits, '.', '_' and '-' (at most 200), not {self.prefix!r}"
            )

    def name(self, role: str) -> str:
        return f"{self.prefix}{role}"

    @property
    def intake(self) -> str:
        return self.name(INTAKE)

    @property
    def events(self) -> str:
        return self.name(EVENTS)

    @property
    def checkpoints(self) -> str:
        return self.name(CHECKPOINTS)

    @property
    def rejected(self) -> str:
        return self.name(REJECTED)


def topic_names(prefix: str = "") -> dict[str, str]:
    """The actual topic name of each role (INTAKE, EVENTS, ...)."""
    topics = Topics(prefix)
    return {role: topics.name(role) for role in TOPICS}


def _init_hint(servers: str, prefix: str) -> str:
    option = f" --topic-prefix {prefix}" if prefix else ""
    return f"run `agent-ledger kafka init --kafka {servers}{option}`"


def _describe(admin: KafkaAdminClient, names: Mapping[str, str]) -> dict[str, TopicState]:
    """The ledger topics that exist, keyed by role, with their effective settings; missing ones are absent."""
    role_of = {name: role for role, name in names.items()}
    existing: dict[str, tuple[int, int]] = {}
    for topic in admin.describe_topics(list(names.values())):
        error = for_code(topic["error_code"])
        if error is UnknownTopicOrPartitionError:
            continue
        if topic["error_code"] != 0:
            raise error()
        partitions = topic["partitions"]
        replication = min((len(p["replica_nodes"]) for p in partitions), default=0)
        existing[topic["name"]] = (len(partitions), replication)
    if not existing:
        return {}
    # config_filter="all": the default ("modified") hides every setting that comes from a broker default
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, list(CHECKED_SETTINGS)) for name in existing],
        config_filter="all",
    )
    by_topic: Mapping[str, Mapping[str, Mapping[str, Any]]] = described.get("topic", {})
    states: dict[str, TopicState] = {}
    for name, (partitions, replication) in existing.items():
        entries = by_topic.get(name, {})
        configs = {key: str(entry["value"]) for key, entry in entries.items() if entry.get("value") is not None}
        inherited = frozenset(
            key for key, entry in entries.items() if entry.get("config_source") != "DYNAMIC_TOPIC_CONFIG"
        )
        states[role_of[name]] = TopicState(name, partitions, replication, configs, inherited)
    return states


def topic_problems(states: Mapping[str, TopicState], plan: TopicPlan | None = None) -> list[str]:
    """Every way the existing topics in `states` (keyed by role) would break the guarantees, or differ from `plan`.

    Pure: the admin calls gather `states`; this decides. Missing topics are not problems here.
    """
    problems: list[str] = []
    for role in TOPICS:
        state = states.get(role)
        if state is None:
            continue
        name = state.name
        policy = {part.strip() for part in state.configs.get(CLEANUP_POLICY, "delete").split(",")}
        if "compact" in policy:
            problems.append(
                f"{name} has cleanup.policy={state.configs[CLEANUP_POLICY]}: compaction would drop ledger records; "
                f"it must be cleanup.policy=delete"
            )
        if role in KEPT_FOREVER:
            for key in (RETENTION_MS, RETENTION_BYTES):
                value = state.configs.get(key)
                if value is not None and value != "-1":
                    problems.append(f"{name} has {key}={value}: the ledger must keep it forever ({key}=-1)")
        if state.configs.get(UNCLEAN_LEADER_ELECTION, "false").lower() != "false":
            problems.append(
                f"{name} has {UNCLEAN_LEADER_ELECTION}=true: an unclean leader could lose acknowledged records"
            )
        if plan is not None:
            if state.replication_factor < plan.replication_factor:
                problems.append(
                    f"{name} has replication factor {state.replication_factor}, below the "
                    f"{plan.replication_factor} asked"
                )
            min_isr = state.configs.get(MIN_INSYNC_REPLICAS)
            if min_isr is not None and int(min_isr) < plan.min_insync_replicas:
                problems.append(f"{name} has min.insync.replicas={min_isr}, below the {plan.min_insync_replicas} asked")
    events = states.get(EVENTS)
    if events is not None:
        for role in (INTAKE, CHECKPOINTS):
            other = states.get(role)
            if other is not None and other.partitions != events.partitions:
                problems.append(
                    f"{other.name} has {other.partitions} partitions but {events.name} has {events.partitions}: "
                    f"they must be equal (one sequencer and one checkpoint stream per events partition)"
                )
        if plan is not None and events.partitions != plan.partitions:
            problems.append(
                f"{events.name} has {events.partitions} partitions but {plan.partitions} were asked: the partition "
                f"count of an existing ledger cannot change (use --partitions {events.partitions})"
            )
    elif plan is not None:
        for role in (INTAKE, CHECKPOINTS):
            other = states.get(role)
            if other is not None and other.partitions != plan.partitions:
                problems.append(
                    f"{other.name} has {other.partitions} partitions but {plan.partitions} were asked for the "
                    f"events topic: they must be equal"
                )
    return problems


def _refuse(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ConfigError(f"refusing the Kafka topics: {problems[0]}{more}")


def check_topics(
    bootstrap: str, plan: TopicPlan | None = None, *, prefix: str = "", timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> None:
    """Refuse (`ConfigError`, one line) unless all four topics exist and keep the guarantees (and match `plan`)."""
    servers, names = parse_bootstrap(bootstrap), topic_names(prefix)
    with _admin(servers, timeout_ms) as admin:
        states = _describe(admin, names)
    missing = [names[role] for role in TOPICS if role not in states]
    if missing:
        raise ConfigError(f"Kafka topic(s) {', '.join(missing)} missing at {servers}; {_init_hint(servers, prefix)}")
    _refuse(topic_problems(states, plan))


def ensure_topics(
    bootstrap: str, plan: TopicPlan, *, prefix: str = "", timeout_ms: int = DEFAULT_TIMEOUT_MS
) -> list[str]:
    """Create the missing ledger topics per `plan`; idempotent. Returns one line per topic: created / already correct.

    Existing topics are checked first and the whole call is refused (nothing created) when one of them would
    break the guarantees or differs from `plan`; existing topics are never altered.
    """
    servers, names = parse_bootstrap(bootstrap), topic_names(prefix)
    with _admin(servers, timeout_ms) as admin:
        before = _describe(admin, names)
        _refuse(topic_problems(before, plan))
        missing = [role for role in TOPICS if role not in before]
        created: list[str] = []
        raced: list[str] = []
        if missing:
            request = {
                names[role]: {
                    "num_partitions": plan.partitions,
                    "replication_factor": plan.replication_factor,
                    "configs": plan.topic_configs(role),
                }
                for role in missing
            }
            response = admin.create_topics(request, timeout_ms=timeout_ms, raise_errors=False)
            for result in response["topics"]:
                error = for_code(result["error_code"])
                if result["error_code"] == 0:
                    created.append(result["name"])
                elif error is TopicAlreadyExistsError:  # a concurrent init won the race: checked below
                    raced.append(result["name"])
                else:
                    detail = result.get("error_message") or error.description or error.__name__
                    raise ConfigError(f"cannot create {result['name']} at {servers}: {error.__name__}: {detail}")
            # CreateTopics returns before the topics are in every broker's metadata with a leader per partition
            # (KRaft): wait until they are usable, also those a concurrent init has just created
            admin.wait_for_topics(created + raced, timeout_ms=timeout_ms)
        after = _describe(admin, names)
    still_missing = [names[role] for role in TOPICS if role not in after]
    if still_missing:
        raise ConfigError(f"Kafka topic(s) {', '.join(still_missing)} still missing at {servers} after creating them")
    _refuse(topic_problems(after, plan))
    lines = []
    for role in TOPICS:
        state = after[role]
        lines.append(
            f"{state.name}: {'created' if state.name in created else 'already correct'}, {state.summary(role)}"
        )
    return lines


def partition_count(bootstrap: str, *, prefix: str = "", timeout_ms: int = DEFAULT_TIMEOUT_MS) -> int:
    """The number of partitions of `ledger.events` (= intake = checkpoints once `check_topics` passed)."""
    servers, events = parse_bootstrap(bootstrap), topic_names(prefix)[EVENTS]
    with _admin(servers, timeout_ms) as admin:
        [topic] = admin.describe_topics([events])
    if topic["error_code"] != 0:
        if for_code(topic["error_code"]) is UnknownTopicOrPartitionError:
            raise ConfigError(f"{events} does not exist at {servers}; {_init_hint(servers, prefix)}")
        raise ConfigError(f"cannot describe {events} at {servers}: {for_code(topic['error_code']).__name__}")
    return len(topic["partitions"])


def cluster_id(bootstrap: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> str:
    """The Kafka cluster id (KRaft), e.g. to name the log in checkpoints or to detect a swapped cluster."""
    servers = parse_bootstrap(bootstrap)
    with _admin(servers, timeout_ms) as admin:
        described = admin.describe_cluster()
    identifier = described.get("cluster_id")
    if not identifier:
        raise ConfigError(f"Kafka at {servers} reported no cluster id")
    return str(identifier)
