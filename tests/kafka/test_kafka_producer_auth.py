"""Producer authentication against a real broker: records produced straight into `ledger.intake`.

A plain kafka-python producer writes each case with its own headers: a signed submission and a batch signed once
are sequenced; an unsigned record, a flipped byte of the value or of the signature, a key registered to another
tenant, an unknown key id, a batch smuggling another tenant's submission, a misrouted batch element and a producer
key registering keys are refused, each found in `ledger.rejected` with its reason. Every submission ends in
exactly one place, the sequencer never stops, and the log verifies (DESIGN guarantees 6 and 9).
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import make_settings
from factories import step
from kafka import KafkaProducer
from kafka_support import BOOTSTRAP, SequencerThread, fresh_topics, requires_kafka

from ledger.cli.main import main
from ledger.config import Settings
from ledger.errors import SubmissionRefused, UnsignedSubmission, WrongTenant
from ledger.keys import SignerKey, load_signer
from ledger.log.kafka import KafkaLog, partition_of, stream_key
from ledger.log.kafka_intake import IntakeClient
from ledger.log.kafka_topics import Topics
from ledger.producer_auth import RecordSigner, batch_value
from ledger.sdk import Ledger
from ledger.verify import verify_log
from schemas.envelope import Receipt

pytestmark = requires_kafka

PARTITIONS = 2
KEY_REFRESH_S = 1.0


def start_worker(settings: Settings, topics: Topics, state_dir: Path) -> SequencerThread:
    """An in-process sequencer with a short key refresh (revocations show within a second)."""
    return SequencerThread(settings, topics, state_dir, key_refresh_s=KEY_REFRESH_S)


@dataclass
class KafkaLedger:
    settings: Settings
    topics: Topics
    worker: SequencerThread
    tmp_path: Path

    def cli(self, *arguments: str) -> int:
        common = ["--data", str(self.settings.data_dir), "--keys", str(self.settings.key_dir)]
        return main([*arguments, *common, "--kafka", BOOTSTRAP, "--topic-prefix", self.topics.prefix])

    def producer_key(self, tenant: str, name: str, *extra: str) -> SignerKey:
        assert self.cli("keys", "producer", "generate", "--tenant", tenant, "--name", name, *extra) == 0
        return load_signer(self.settings.key_dir / "producers" / f"{tenant}-{name}.key")


@pytest.fixture
def kafka_ledger(tmp_path: Path) -> Iterator[KafkaLedger]:
    settings = make_settings(tmp_path, every_events=1000, interval_ms=200)
    topics = fresh_topics(partitions=PARTITIONS)
    worker = start_worker(settings, topics, tmp_path / "sequencer")
    try:
        yield KafkaLedger(settings, topics, worker, tmp_path)
    finally:
        worker.stop()


def mission_in(partition: int, tenant: str = "acme") -> str:
    """A mission whose stream lives in `partition`."""
    for number in range(1000):
        if partition_of(stream_key(tenant, f"mission/m-{number}"), PARTITIONS) == partition:
            return f"m-{number}"
    raise AssertionError("no mission found")


class RawIntake:
    """Writes records into ledger.intake exactly as given: value, headers, partition."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)

    def send(self, value: bytes, headers: list[tuple[str, bytes]], partition: int = 0) -> None:
        self.producer.send(self.topics.intake, value=value, headers=headers, partition=partition)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def sub(event_id: str, tenant: str = "acme", partition: int = 0, **fields: Any) -> dict[str, Any]:
    return step(tenant=tenant, mission=mission_in(partition, tenant), event_id=event_id, **fields)


def encoded(*submissions: dict[str, Any]) -> bytes:
    return batch_value([orjson.dumps(submission) for submission in submissions])


def outcomes(topics: Topics, expected: set[str], timeout_s: float = 60.0) -> tuple[Counter[str], dict[str, str]]:
    """Wait until every expected event_id is sealed or refused; (event counts, reason of each refusal)."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = KafkaLog(BOOTSTRAP, topics=topics)
        try:
            events = Counter(
                record.envelope()["event_id"] for p in range(log.partition_count) for record in log.read(p)
            )
            refused = {r.event_id: r.reason_code for r in log.rejections(limit=10_000) if r.event_id is not None}
        finally:
            log.close()
        if expected <= set(events) | set(refused) or time.monotonic() > deadline:
            return events, refused
        time.sleep(0.3)


def sealed(log: KafkaLog, partition: int) -> bool:
    checkpoints = log.checkpoints(partition)
    return log.size(partition) == (checkpoints[-1].tree_size if checkpoints else 0)


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_each_intake_record_is_sequenced_or_refused_with_its_reason(kafka_ledger: KafkaLedger) -> None:
    acme = kafka_ledger.producer_key("acme", "ci")  # registered after the sequencer started: found on first use
    globex = kafka_ledger.producer_key("globex", "ci")
    stranger = SignerKey.generate("acme-stranger")  # never registered
    acme_signer, globex_signer = RecordSigner(acme), RecordSigner(globex)
    intake = RawIntake(kafka_ledger.topics)

    def signed(value: bytes, by: RecordSigner = acme_signer, partition: int = 0) -> None:
        intake.send(value, by.headers(value), partition)

    signed(encoded(sub("signed")))
    signed(encoded(sub("signed-p1", partition=1)), partition=1)
    intake.send(encoded(sub("unsigned")), [])
    value = encoded(sub("flipped-value", payload={"step_id": "s", "summary": "a", "status": "completed"}))
    intake.send(value.replace(b'"summary":"a"', b'"summary":"b"'), acme_signer.headers(value))
    value = encoded(sub("flipped-signature"))
    key_header, (name, signature) = acme_signer.headers(value)
    forged = bytearray(base64.b64decode(signature))
    forged[0] ^= 0x80
    intake.send(value, [key_header, (name, base64.b64encode(bytes(forged)))])
    signed(encoded(sub("other-tenants-key")), by=globex_signer)
    signed(encoded(sub("unknown-key")), by=RecordSigner(stranger))
    signed(encoded(sub("batch-1"), sub("batch-2"), sub("batch-3")))
    signed(encoded(sub("mixed-ok-1"), sub("mixed-globex", tenant="globex"), sub("mixed-ok-2")))
    signed(encoded(sub("routed-ok"), sub("misrouted", partition=1)))
    registration = {
        "tenant": "acme",
        "stream": "keys/producers",
        "type": "key.registered",
        "actor": {"kind": "human", "id": "mallory"},
        "event_id": "self-registration",
        "payload": {
            "key_id": stranger.verifier().key_hash_text,
            "purpose": "producer",
            "algorithm": "ed25519",
            "public_key": stranger.verifier().text(),
        },
    }
    signed(encoded(registration))
    intake.close()

    accepted = {"signed", "signed-p1", "batch-1", "batch-2", "batch-3", "mixed-ok-1", "mixed-ok-2", "routed-ok"}
    expected_refusals = {
        "unsigned": "unsigned_submission",
        "flipped-value": "bad_signature",
        "flipped-signature": "bad_signature",
        "other-tenants-key": "wrong_tenant",
        "unknown-key": "unknown_producer_key",
        "mixed-globex": "wrong_tenant",
        "misrouted": "wrong_partition",
        "self-registration": "key_registration_forbidden",
    }
    events, refused = outcomes(kafka_ledger.topics, accepted | set(expected_refusals))
    assert {event_id: count for event_id, count in events.items() if event_id in accepted} == dict.fromkeys(accepted, 1)
    assert not set(expected_refusals) & set(events)  # nothing refused was appended
    assert {event_id: refused.get(event_id) for event_id in expected_refusals} == expected_refusals
    assert kafka_ledger.worker.error is None

    log = KafkaLog(BOOTSTRAP, topics=kafka_ledger.topics)
    try:
        wait_for(lambda: all(sealed(log, p) for p in range(PARTITIONS)))
        report = verify_log(log, load_signer(kafka_ledger.settings.private_key_path).verifier())
        raw = {r.event_id: r.raw for r in log.rejections(limit=10_000)}
    finally:
        log.close()
    assert report.unsealed == 0
    assert orjson.loads(raw["mixed-globex"])["tenant"] == "globex"  # the refused submission, as sent


def test_sdk_and_cli_with_a_producer_key_write_its_tenant_only(
    kafka_ledger: KafkaLedger, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka_ledger.producer_key("acme", "sdk")
    settings = Settings(
        data_dir=kafka_ledger.settings.data_dir,
        keys_dir=kafka_ledger.tmp_path / "no-ledger-key-here",  # a producer machine holds only its own key
        producer_key=kafka_ledger.settings.key_dir / "producers" / "acme-sdk.key",
    )
    with Ledger.open(settings, kafka=BOOTSTRAP, topics=kafka_ledger.topics) as ledger:
        outcomes_ = ledger.append_batch([step(event_id="sdk-acme"), step(tenant="globex", event_id="sdk-globex")])
    assert isinstance(outcomes_[0], Receipt)
    assert isinstance(outcomes_[1], WrongTenant)

    key = str(settings.producer_key)
    submission = ("--stream", "mission/m-1", "--type", "mission.step.recorded", "--actor", "agent:a-1")
    context = (
        "--agent-id",
        "a-1",
        "--mission-id",
        "m-1",
        "--payload",
        '{"step_id":"s","summary":"x","status":"completed"}',
    )
    capsys.readouterr()
    assert kafka_ledger.cli("append", "--tenant", "acme", *submission, *context, "--producer-key", key) == 0
    assert kafka_ledger.cli("append", "--tenant", "globex", *submission, *context, "--producer-key", key) == 2
    assert "refused (wrong_tenant)" in capsys.readouterr().err


def test_unsigned_client_gets_its_refusal_back(kafka_ledger: KafkaLedger) -> None:
    client = IntakeClient(BOOTSTRAP, topics=kafka_ledger.topics, timeout_s=30)
    try:
        (outcome,) = client.append_batch([step(event_id="no-key")])
    finally:
        client.close()
    assert isinstance(outcome, UnsignedSubmission)
    assert outcome.http_status == 401


def test_expired_and_revoked_keys_are_refused_and_registrations_survive_a_restart(
    kafka_ledger: KafkaLedger, capsys: pytest.CaptureFixture[str]
) -> None:
    expired = RecordSigner(kafka_ledger.producer_key("acme", "old", "--expires-at", "2020-01-01T00:00:00Z"))
    current = RecordSigner(kafka_ledger.producer_key("acme", "current"))
    intake = RawIntake(kafka_ledger.topics)
    for event_id, signer in (("by-expired", expired), ("before-revoke", current)):
        value = encoded(sub(event_id))
        intake.send(value, signer.headers(value))
    intake.producer.flush()
    events, refused = outcomes(kafka_ledger.topics, {"by-expired", "before-revoke"})
    assert refused.get("by-expired") == "producer_key_not_valid" and events["before-revoke"] == 1

    # A restarted sequencer rebuilds the registry from the log.
    kafka_ledger.worker.stop()
    kafka_ledger.worker = start_worker(kafka_ledger.settings, kafka_ledger.topics, kafka_ledger.tmp_path / "sequencer")
    value = encoded(sub("after-restart"))
    intake.send(value, current.headers(value))
    intake.producer.flush()
    events, _ = outcomes(kafka_ledger.topics, {"after-restart"})
    assert events["after-restart"] == 1

    capsys.readouterr()
    assert kafka_ledger.cli("keys", "producer", "list", "--tenant", "acme") == 0
    listed = {row["key_id"]: row["status"] for row in map(orjson.loads, capsys.readouterr().out.splitlines())}
    assert listed == {expired.key_id: "expired", current.key_id: "valid"}
    assert kafka_ledger.cli("keys", "producer", "revoke", current.key_id, "--tenant", "acme") == 0
    time.sleep(KEY_REFRESH_S * 2)  # the running sequencer learns revocations on its key refresh
    value = encoded(sub("after-revoke"))
    intake.send(value, current.headers(value))
    intake.close()
    _, refused = outcomes(kafka_ledger.topics, {"after-revoke"})
    assert refused.get("after-revoke") == "producer_key_not_valid"
    assert kafka_ledger.worker.error is None


def test_refusal_reasons_are_rebuilt_as_their_exceptions_by_the_client(kafka_ledger: KafkaLedger) -> None:
    globex = kafka_ledger.producer_key("globex", "ci")
    client = IntakeClient(BOOTSTRAP, topics=kafka_ledger.topics, timeout_s=30, signer=globex)
    try:
        (outcome,) = client.append_batch([step(event_id="globex-writes-acme")])
    finally:
        client.close()
    assert isinstance(outcome, SubmissionRefused) and outcome.reason_code == "wrong_tenant"
