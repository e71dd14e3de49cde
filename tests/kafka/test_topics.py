"""`agent-ledger kafka init` and the topic checks: the four topics keep the guarantees, unsafe ones are refused.

The decision logic (`topic_problems`, `TopicPlan`) is tested without a broker. The rest needs a real broker at
AGENT_LEDGER_KAFKA=host:port (e.g. from ``scripts/kafka-local start``) and is skipped when it is unset; every
test uses its own topic prefix and deletes its topics, so it never touches a ledger's `ledger.*` topics.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger.cli.main import main
from ledger.errors import ConfigError, UsageError
from ledger.log.kafka_topics import (
    CHECKPOINTS,
    EVENTS,
    INTAKE,
    REJECTED,
    SEVEN_DAYS_MS,
    TOPICS,
    TopicPlan,
    TopicState,
    check_topics,
    cluster_id,
    ensure_topics,
    parse_bootstrap,
    partition_count,
    topic_names,
    topic_problems,
)

BOOTSTRAP = os.environ.get("AGENT_LEDGER_KAFKA", "")
TIMEOUT_MS = 30_000

needs_kafka = pytest.mark.skipif(
    not BOOTSTRAP,
    reason="AGENT_LEDGER_KAFKA (host:port of a real Kafka broker) is not set; "
    "start one with `scripts/kafka-local start` and export AGENT_LEDGER_KAFKA=127.0.0.1:19092",
)

FOREVER = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "min.insync.replicas": "1",
    "unclean.leader.election.enable": "false",
}


def _state(role: str, partitions: int = 4, replication: int = 1, **configs: str) -> TopicState:
    settings = {**FOREVER, **({"retention.ms": str(SEVEN_DAYS_MS)} if role == INTAKE else {})}
    settings.update({key.replace("_", "."): value for key, value in configs.items()})
    return TopicState(role, partitions, replication, settings)


def _healthy(partitions: int = 4) -> dict[str, TopicState]:
    return {role: _state(role, partitions) for role in TOPICS}


# ---------------------------------------------------------------- decisions, no broker


def test_default_topic_names_are_the_designed_ones() -> None:
    assert topic_names() == {
        name: name for name in ("ledger.intake", "ledger.events", "ledger.checkpoints", "ledger.rejected")
    }
    assert topic_names("staging.")[EVENTS] == "staging.ledger.events"


def test_plan_pins_forever_retention_and_delete_policy_on_the_ledger_topics() -> None:
    plan = TopicPlan(partitions=6, replication_factor=3, min_insync_replicas=2)
    for role in (EVENTS, CHECKPOINTS, REJECTED):
        assert plan.topic_configs(role) == {**FOREVER, "min.insync.replicas": "2"}
    assert plan.topic_configs(INTAKE)["retention.ms"] == str(SEVEN_DAYS_MS)
    assert plan.topic_configs(INTAKE)["cleanup.policy"] == "delete"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"partitions": 0}, "partitions must be at least 1"),
        ({"replication_factor": 0}, "replication factor must be at least 1"),
        ({"replication_factor": 1, "min_insync_replicas": 2}, "min.insync.replicas must be between 1 and"),
        ({"intake_retention_ms": 5}, "intake retention must be -1"),
    ],
)
def test_impossible_plans_are_usage_errors(fields: dict[str, int], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TopicPlan(**fields)


@pytest.mark.parametrize("bad", ["", "kafka", "kafka:", "kafka:99999", "http://kafka:9092", "a:1,,b:2"])
def test_bad_kafka_addresses_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_bootstrap(bad)


def test_kafka_addresses_accept_several_brokers_and_ipv6() -> None:
    assert parse_bootstrap(" k1:9092, k2:9092 ") == "k1:9092,k2:9092"
    assert parse_bootstrap("[::1]:19092") == "[::1]:19092"


def test_healthy_topics_have_no_problems() -> None:
    assert topic_problems(_healthy(), TopicPlan()) == []
    assert topic_problems({}, TopicPlan()) == []


@pytest.mark.parametrize("policy", ["compact", "compact,delete", "delete, compact"])
def test_compacted_events_are_a_problem(policy: str) -> None:
    states = {**_healthy(), EVENTS: _state(EVENTS, cleanup_policy=policy)}
    assert topic_problems(states) == [
        f"ledger.events has cleanup.policy={policy}: compaction would drop ledger records; "
        f"it must be cleanup.policy=delete"
    ]


def test_compacted_intake_is_a_problem_because_it_drops_submissions_with_the_same_key() -> None:
    states = {**_healthy(), INTAKE: _state(INTAKE, cleanup_policy="compact")}
    assert [p for p in topic_problems(states) if p.startswith("ledger.intake has cleanup.policy=compact")]


@pytest.mark.parametrize("role", [EVENTS, CHECKPOINTS, REJECTED])
@pytest.mark.parametrize("key", ["retention.ms", "retention.bytes"])
def test_finite_retention_of_a_kept_forever_topic_is_a_problem(role: str, key: str) -> None:
    states = {**_healthy(), role: _state(role, **{key.replace(".", "_"): "604800000"})}
    assert topic_problems(states) == [f"{role} has {key}=604800000: the ledger must keep it forever ({key}=-1)"]


def test_finite_intake_retention_is_fine() -> None:
    assert topic_problems({**_healthy(), INTAKE: _state(INTAKE, retention_ms="3600000")}, TopicPlan()) == []


def test_unclean_leader_election_is_a_problem() -> None:
    states = {**_healthy(), CHECKPOINTS: _state(CHECKPOINTS, unclean_leader_election_enable="true")}
    assert topic_problems(states) == [
        "ledger.checkpoints has unclean.leader.election.enable=true: an unclean leader could lose acknowledged records"
    ]


@pytest.mark.parametrize("role", [INTAKE, CHECKPOINTS])
def test_partition_count_differing_from_events_is_a_problem(role: str) -> None:
    states = {**_healthy(), role: _state(role, partitions=2)}
    assert topic_problems(states) == [
        f"{role} has 2 partitions but ledger.events has 4: they must be equal "
        f"(one sequencer and one checkpoint stream per events partition)"
    ]


def test_rejected_may_have_any_partition_count() -> None:
    assert topic_problems({**_healthy(), REJECTED: _state(REJECTED, partitions=1)}) == []


def test_existing_events_partition_count_cannot_change() -> None:
    assert topic_problems(_healthy(partitions=4), TopicPlan(partitions=8)) == [
        "ledger.events has 4 partitions but 8 were asked: the partition count of an existing ledger cannot change "
        "(use --partitions 4)"
    ]


def test_replication_and_min_insync_below_the_plan_are_problems() -> None:
    states = {EVENTS: _state(EVENTS, replication=2, min_insync_replicas="1")}
    assert topic_problems(states, TopicPlan(replication_factor=3, min_insync_replicas=2)) == [
        "ledger.events has replication factor 2, below the 3 asked",
        "ledger.events has min.insync.replicas=1, below the 2 asked",
    ]
    assert topic_problems(states) == [], "without a plan only the guarantees are checked"


def test_intake_without_events_must_match_the_planned_partitions() -> None:
    assert topic_problems({INTAKE: _state(INTAKE, partitions=3)}, TopicPlan(partitions=4)) == [
        "ledger.intake has 3 partitions but 4 were asked for the events topic: they must be equal"
    ]


def test_an_unreachable_broker_is_one_config_line_within_the_timeout() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = {thread.ident for thread in threading.enumerate()}
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^cannot reach Kafka at 127\.0\.0\.1:{port}: ") as refused:
        check_topics(f"127.0.0.1:{port}", timeout_ms=1_500)
    assert time.monotonic() - started < 10
    assert "\n" not in str(refused.value)
    time.sleep(0.2)
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("kafka-io")]
    assert leaked == [], "the failed admin client left its I/O thread running"


def test_cli_without_a_kafka_address_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENT_LEDGER_KAFKA", raising=False)
    assert main(["kafka", "init"]) == 2
    assert capsys.readouterr().err == (
        "agent-ledger: error: no Kafka address: give --kafka HOST:PORT or set AGENT_LEDGER_KAFKA\n"
    )


# ---------------------------------------------------------------- against a real broker

Admin = Any
MakeTopic = Callable[..., None]


@pytest.fixture
def admin() -> Iterator[Admin]:
    from kafka import KafkaAdminClient

    client = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="test-topics", request_timeout_ms=TIMEOUT_MS)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def prefix(admin: Admin) -> Iterator[str]:
    """A fresh topic prefix; its topics are deleted afterwards."""
    value = f"t{uuid.uuid4().hex[:10]}."
    yield value
    mine = [name for name in admin.list_topics() if name.startswith(value)]
    if mine:
        with contextlib.suppress(Exception):
            admin.delete_topics(mine, timeout_ms=TIMEOUT_MS)


@pytest.fixture
def make_topic(admin: Admin, prefix: str) -> MakeTopic:
    """Create `<prefix><role>` by hand, as an operator (or an auto-create) might have done."""

    def make(role: str, partitions: int = 4, **configs: str) -> None:
        spec = {"num_partitions": partitions, "replication_factor": 1, "configs": configs}
        admin.create_topics({prefix + role: spec}, timeout_ms=TIMEOUT_MS, wait_for_metadata=True)

    return make


def _existing(admin: Admin, prefix: str) -> set[str]:
    return {name.removeprefix(prefix) for name in admin.list_topics() if name.startswith(prefix)}


def _configs(admin: Admin, topic: str) -> dict[str, dict[str, Any]]:
    from kafka.admin import ConfigResource, ConfigResourceType

    keys = list(FOREVER)
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, keys)], config_filter="all")
    result: dict[str, dict[str, Any]] = described["topic"][topic]
    return result


@needs_kafka
def test_init_creates_the_four_topics_with_the_guarantee_settings(admin: Admin, prefix: str) -> None:
    lines = ensure_topics(BOOTSTRAP, TopicPlan(partitions=4), prefix=prefix, timeout_ms=TIMEOUT_MS)

    assert [line.split(":")[0] for line in lines] == [prefix + role for role in TOPICS]
    assert all(": created, 4 partitions, replication factor 1" in line for line in lines), lines
    described = {t["name"]: t for t in admin.describe_topics([prefix + role for role in TOPICS])}
    for role in TOPICS:
        assert len(described[prefix + role]["partitions"]) == 4, role
        configs = _configs(admin, prefix + role)
        expected = {**FOREVER, **({"retention.ms": str(SEVEN_DAYS_MS)} if role == INTAKE else {})}
        assert {key: configs[key]["value"] for key in expected} == expected, role
        # pinned on the topic itself, so a changed broker default cannot weaken it later
        assert {configs[key]["config_source"] for key in expected} == {"DYNAMIC_TOPIC_CONFIG"}, role


@needs_kafka
def test_init_twice_is_idempotent_and_keeps_the_same_topics(admin: Admin, prefix: str) -> None:
    ensure_topics(BOOTSTRAP, TopicPlan(), prefix=prefix, timeout_ms=TIMEOUT_MS)
    ids = {t["name"]: t["topic_id"] for t in admin.describe_topics([prefix + role for role in TOPICS])}

    again = ensure_topics(BOOTSTRAP, TopicPlan(), prefix=prefix, timeout_ms=TIMEOUT_MS)

    assert all(": already correct, " in line for line in again), again
    assert {t["name"]: t["topic_id"] for t in admin.describe_topics(list(ids))} == ids


@needs_kafka
def test_two_concurrent_inits_both_succeed(prefix: str) -> None:
    outcomes: list[object] = []

    def init() -> None:
        try:
            outcomes.append(ensure_topics(BOOTSTRAP, TopicPlan(), prefix=prefix, timeout_ms=TIMEOUT_MS))
        except Exception as error:  # reported below
            outcomes.append(error)

    threads = [threading.Thread(target=init) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [type(outcome) for outcome in outcomes] == [list, list], outcomes
    check_topics(BOOTSTRAP, TopicPlan(), prefix=prefix, timeout_ms=TIMEOUT_MS)


@needs_kafka
def test_precreated_compacted_events_is_refused_and_left_alone(
    admin: Admin, prefix: str, make_topic: MakeTopic
) -> None:
    make_topic(EVENTS, **{**FOREVER, "cleanup.policy": "compact"})

    with pytest.raises(ConfigError) as refused:
        ensure_topics(BOOTSTRAP, TopicPlan(), prefix=prefix, timeout_ms=TIMEOUT_MS)

    assert str(refused.value) == (
        f"refusing the Kafka topics: {prefix}ledger.events has cleanup.policy=compact: compaction would drop "
        f"ledger records; it must be cleanup.policy=delete"
    )
    assert _existing(admin, prefix) == {EVENTS}, "nothing may be created when an existing topic is refused"
    assert _configs(admin, prefix + EVENTS)["cleanup.policy"]["value"] == "compact", "never altered"


@needs_kafka
def test_precreated_events_with_finite_retention_is_refused(prefix: str, make_topic: MakeTopic) -> None:
    make_topic(EVENTS, **{**FOREVER, "retention.ms": "86400000"})

    with pytest.raises(
        ConfigError, match=r"ledger\.events has retention\.ms=86400000: the ledger must keep it forever"
    ):
        ensure_topics(BOOTSTRAP, TopicPlan(), prefix=prefix, timeout_ms=TIMEOUT_MS)


@needs_kafka
def test_precreated_events_inheriting_the_broker_retention_is_refused(
    admin: Admin, prefix: str, make_topic: MakeTopic
) -> None:
    make_topic(EVENTS)  # as `kafka-topics.sh --create` without configs: the broker's log.retention (7 days here)
    inherited = _configs(admin, prefix + EVENTS)["retention.ms"]
    assert inherited["config_source"] != "DYNAMIC_TOPIC_CONFIG"

    with pytest.raises(ConfigError, match=rf"ledger\.events has retention\.ms={inherited['value']}: the ledger"):
        ensure_topics(BOOTSTRAP, TopicPlan(), prefix=prefix, timeout_ms=TIMEOUT_MS)


@needs_kafka
def test_intake_and_events_with_differing_partition_counts_are_refused(
    admin: Admin, prefix: str, make_topic: MakeTopic
) -> None:
    make_topic(EVENTS, partitions=4, **FOREVER)
    make_topic(INTAKE, partitions=2)

    with pytest.raises(ConfigError) as refused:
        ensure_topics(BOOTSTRAP, TopicPlan(partitions=4), prefix=prefix, timeout_ms=TIMEOUT_MS)

    assert str(refused.value) == (
        f"refusing the Kafka topics: {prefix}ledger.intake has 2 partitions but {prefix}ledger.events has 4: they "
        f"must be equal (one sequencer and one checkpoint stream per events partition)"
    )
    assert _existing(admin, prefix) == {EVENTS, INTAKE}


@needs_kafka
def test_asking_another_partition_count_for_an_existing_ledger_is_refused(prefix: str) -> None:
    ensure_topics(BOOTSTRAP, TopicPlan(partitions=4), prefix=prefix, timeout_ms=TIMEOUT_MS)

    with pytest.raises(ConfigError, match=r"has 4 partitions but 8 were asked: .* \(use --partitions 4\)$"):
        ensure_topics(BOOTSTRAP, TopicPlan(partitions=8), prefix=prefix, timeout_ms=TIMEOUT_MS)
    assert partition_count(BOOTSTRAP, prefix=prefix, timeout_ms=TIMEOUT_MS) == 4


@needs_kafka
def test_replication_factor_above_the_existing_topics_is_refused(prefix: str) -> None:
    ensure_topics(BOOTSTRAP, TopicPlan(replication_factor=1), prefix=prefix, timeout_ms=TIMEOUT_MS)

    with pytest.raises(ConfigError, match=r"ledger\.intake has replication factor 1, below the 2 asked"):
        ensure_topics(BOOTSTRAP, TopicPlan(replication_factor=2), prefix=prefix, timeout_ms=TIMEOUT_MS)


@needs_kafka
def test_replication_factor_the_cluster_cannot_hold_is_one_config_line(admin: Admin, prefix: str) -> None:
    brokers = len(admin.describe_cluster()["brokers"])

    with pytest.raises(ConfigError, match=r"^cannot create t\w+\.ledger\.\w+ at .*: InvalidReplicationFactorError"):
        ensure_topics(BOOTSTRAP, TopicPlan(replication_factor=brokers + 1), prefix=prefix, timeout_ms=TIMEOUT_MS)


@needs_kafka
def test_check_refuses_missing_topics_and_passes_after_init(prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"missing at .*; run `agent-ledger kafka init --kafka .* --topic-prefix"):
        check_topics(BOOTSTRAP, prefix=prefix, timeout_ms=TIMEOUT_MS)
    with pytest.raises(ConfigError, match=r"ledger\.events does not exist at"):
        partition_count(BOOTSTRAP, prefix=prefix, timeout_ms=TIMEOUT_MS)

    ensure_topics(BOOTSTRAP, TopicPlan(partitions=3), prefix=prefix, timeout_ms=TIMEOUT_MS)

    check_topics(BOOTSTRAP, prefix=prefix, timeout_ms=TIMEOUT_MS)
    check_topics(BOOTSTRAP, TopicPlan(partitions=3), prefix=prefix, timeout_ms=TIMEOUT_MS)
    assert partition_count(BOOTSTRAP, prefix=prefix, timeout_ms=TIMEOUT_MS) == 3


@needs_kafka
def test_cluster_id_is_stable(admin: Admin) -> None:
    assert cluster_id(BOOTSTRAP) == cluster_id(BOOTSTRAP) == admin.describe_cluster()["cluster_id"]


@needs_kafka
def test_cli_init_prints_each_topic_and_refuses_with_one_line_and_exit_2(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kafka", "init", "--kafka", BOOTSTRAP, "--topic-prefix", prefix, "--partitions", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [prefix + role for role in TOPICS]

    assert main(["kafka", "check", "--kafka", BOOTSTRAP, "--topic-prefix", prefix]) == 0
    assert "keep the ledger's guarantees (2 partitions)" in capsys.readouterr().out

    assert main(["kafka", "init", "--kafka", BOOTSTRAP, "--topic-prefix", prefix, "--partitions", "4"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"agent-ledger: error: refusing the Kafka topics: {prefix}ledger.events has 2")
