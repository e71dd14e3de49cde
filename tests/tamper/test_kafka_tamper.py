"""Tamper tests on a Kafka ledger: records produced straight into the ledger topics, bypassing the sequencer.

Kafka topics are append-only, so an attacker with write access can only add records: a forged event with a
correctly recomputed hash and chain, a modified or replayed copy of a real event, a checkpoint signed with
another key. Each case really produces the record with a plain kafka-python producer, then runs the real
`agent-ledger verify --kafka ... --topic-prefix ...` and expects exit 1 with one line naming the damage
(DESIGN guarantee 1).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from factories import step
from kafka import KafkaProducer
from kafka_support import BOOTSTRAP, SequencerThread, fresh_topics, requires_kafka, wait_sealed

from ledger.canonical import canonical_bytes, event_hash
from ledger.checkpoint import Checkpoint, origin_for, sign_checkpoint
from ledger.config import Settings
from ledger.errors import VerificationFailed
from ledger.keys import SignerKey, load_signer
from ledger.log.base import Checkpointed
from ledger.log.kafka import KafkaLog, checkpoint_record, stream_key
from ledger.log.kafka_intake import IntakeClient, ReceiptTimeout
from ledger.log.kafka_topics import Topics
from ledger.merkle import CompactRange, leaf_hash
from ledger.sdk import Ledger

pytestmark = requires_kafka

EVENTS = 30


@dataclass
class SealedKafkaLedger:
    settings: Settings
    topics: Topics
    events: list[dict[str, Any]]  # as stored, in log order (one partition)


@pytest.fixture
def sealed(tmp_path: Path) -> Iterator[SealedKafkaLedger]:
    """30 events on one partition, sealed by a signed checkpoint; the sequencer is stopped afterwards."""
    settings = make_settings(tmp_path, every_events=1000, interval_ms=200)
    topics = fresh_topics(partitions=1)
    sequencer = SequencerThread(settings, topics, tmp_path / "sequencer")
    try:
        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics) as ledger:
            ledger.append_batch(
                [
                    step(
                        mission=f"m-{i % 3}",
                        payload={"step_id": f"s-{i}", "summary": f"summary-{i:03d}", "status": "completed"},
                    )
                    for i in range(EVENTS)
                ]
            )
            wait_sealed(ledger)
    finally:
        sequencer.stop()
    log = KafkaLog(BOOTSTRAP, topics=topics)
    try:
        events = [record.envelope() for record in log.read(0)]
    finally:
        log.close()
    assert len(events) == EVENTS
    yield SealedKafkaLedger(settings, topics, events)


def verify(ledger: SealedKafkaLedger) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.main",
            "verify",
            "--kafka",
            BOOTSTRAP,
            "--topic-prefix",
            ledger.topics.prefix,
            "--keys",
            str(ledger.settings.key_dir),
            "--data",
            str(ledger.settings.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def failure(ledger: SealedKafkaLedger) -> str:
    result = verify(ledger)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def produce(topic: str, value: bytes, key: bytes | None = None) -> None:
    """What an attacker with write access to the topic does: a plain, non-transactional producer."""
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    try:
        producer.send(topic, key=key, value=value, partition=0).get(timeout=30)
    finally:
        producer.close()


def stored_bytes(envelope: dict[str, Any]) -> bytes:
    return canonical_bytes(envelope)


def forged_next_event(ledger: SealedKafkaLedger) -> dict[str, Any]:
    """A well-formed event that continues the chain of mission m-1 at the next log index, hash recomputed."""
    head = [e for e in ledger.events if e["stream"] == "mission/m-1"][-1]
    forged = {
        **head,
        "seq": head["seq"] + 1,
        "prev_hash": head["hash"],
        "event_id": "forged-approval",
        "payload": {"step_id": "s-forged", "summary": "approved by nobody", "status": "completed"},
        "log": {**head["log"], "index": EVENTS},
    }
    del forged["hash"]
    forged["hash"] = event_hash(forged)
    return forged


def signed_by_another_key(ledger: SealedKafkaLedger, events: list[dict[str, Any]]) -> Checkpointed:
    """A checkpoint of exactly these events, correct origin and root, signed by a key of the same name."""
    tree = CompactRange()
    for envelope in events:
        tree.append(leaf_hash(bytes.fromhex(envelope["hash"][7:])))
    log_id = ledger.events[0]["log"]["log_id"]
    checkpoint = Checkpoint(origin=origin_for(log_id, 0), size=tree.size, root_hash=tree.root())
    note = sign_checkpoint(checkpoint, SignerKey.generate("test-ledger"))
    return Checkpointed(0, tree.size, note, ledger.events[-1]["recorded_at"])


def test_untouched_kafka_ledger_verifies(sealed: SealedKafkaLedger) -> None:
    result = verify(sealed)
    assert result.returncode == 0, result.stderr
    assert f"verified {EVENTS} events in 3 streams" in result.stdout


def test_forged_event_with_a_valid_hash_and_chain_is_not_covered_by_a_signed_checkpoint(
    sealed: SealedKafkaLedger,
) -> None:
    forged = forged_next_event(sealed)
    produce(sealed.topics.events, stored_bytes(forged), stream_key("acme", "mission/m-1"))
    message = failure(sealed)
    assert f"1 event(s) from log index {EVENTS} on are not covered by a signed checkpoint" in message


def test_modified_copy_of_a_real_event_is_a_hash_mismatch(sealed: SealedKafkaLedger) -> None:
    original = sealed.events[7]
    modified = {**original, "payload": {**original["payload"], "summary": "rewritten history"}}
    produce(sealed.topics.events, stored_bytes(modified), stream_key(original["tenant"], original["stream"]))
    message = failure(sealed)
    assert f"log index {EVENTS} (" in message and original["event_id"] in message
    assert "stored hash does not match its content" in message


def test_replayed_copy_of_a_real_event_is_out_of_place(sealed: SealedKafkaLedger) -> None:
    original = sealed.events[7]
    produce(sealed.topics.events, stored_bytes(original), stream_key(original["tenant"], original["stream"]))
    message = failure(sealed)
    assert original["event_id"] in message
    assert f"found at log index {EVENTS} but sealed at" in message and "'index': 7" in message


def test_checkpoint_signed_with_another_key_is_refused(sealed: SealedKafkaLedger) -> None:
    forged = signed_by_another_key(sealed, sealed.events)  # a true statement, by the wrong signer
    produce(sealed.topics.checkpoints, checkpoint_record(forged))
    message = failure(sealed)
    assert message.startswith(f"agent-ledger: error: checkpoint of tree size {EVENTS}:")


def test_forged_event_covered_by_a_checkpoint_signed_with_another_key_is_refused(sealed: SealedKafkaLedger) -> None:
    forged_event = forged_next_event(sealed)
    produce(sealed.topics.events, stored_bytes(forged_event), stream_key("acme", "mission/m-1"))
    forged_checkpoint = signed_by_another_key(sealed, [*sealed.events, forged_event])
    produce(sealed.topics.checkpoints, checkpoint_record(forged_checkpoint))
    message = failure(sealed)
    assert message.startswith(f"agent-ledger: error: checkpoint of tree size {EVENTS + 1}:")


def test_forged_event_is_never_sealed_by_a_restarted_sequencer(sealed: SealedKafkaLedger, tmp_path: Path) -> None:
    forged = forged_next_event(sealed)
    produce(sealed.topics.events, stored_bytes(forged), stream_key("acme", "mission/m-1"))
    assert "not covered by a signed checkpoint" in failure(sealed)
    sequencer = SequencerThread(sealed.settings, sealed.topics, tmp_path / "restarted")
    signer = load_signer(sealed.settings.private_key_path)
    client = IntakeClient(BOOTSTRAP, topics=sealed.topics, timeout_s=10, signer=signer)
    try:  # the next sequencer may refuse to build on the forged tail (no receipt) or append after it
        with contextlib.suppress(ReceiptTimeout):
            client.append_batch([step(mission="m-1")])
    finally:
        client.close()
        sequencer.stop()  # a clean stop seals what it owns
    assert isinstance(sequencer.error, VerificationFailed)  # it refused to build on the forged tail
    assert "not covered by a signed checkpoint" in str(sequencer.error)
    message = failure(sealed)
    assert f"log index {EVENTS}" in message
