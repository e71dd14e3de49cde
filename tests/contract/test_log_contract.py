"""Contract tests every log backend must pass: embedded, and Kafka against a real broker.

They hold the guarantees of DESIGN.md: gapless chains and indexes (2), idempotent append across restarts (4),
optimistic concurrency (5), refusals recorded (6), tenant-scoped idempotency (9), and signed checkpoints with
inclusion proofs a client can check. A behaviour that holds on one backend and not the other is a bug.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import step
from kafka_support import SequencerThread, fresh_topics, requires_kafka, wait_sealed

from ledger.checkpoint import open_checkpoint
from ledger.config import Settings
from ledger.errors import (
    DuplicateEventId,
    EventIdConflict,
    MalformedJson,
    SchemaViolation,
    StaleExpectedSeq,
    SubmissionRefused,
    WrongTenant,
)
from ledger.log.base import LogRecord
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.sdk import Ledger
from ledger.sequencer import CheckpointPolicy
from schemas.envelope import ZERO_HASH, Receipt


class EmbeddedBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self) -> Ledger:
        return Ledger.open(self.settings)

    def reader(self) -> Ledger:
        return Ledger.open(self.settings, read_only=True)

    def restart(self) -> None:
        """The embedded sequencer lives in the Ledger object: reopening is the restart."""

    def seal(self, ledger: Ledger) -> None:
        ledger.seal()

    def stop(self) -> None:
        pass


class KafkaBackend:
    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        from kafka_support import BOOTSTRAP

        self.settings = settings
        self.bootstrap = BOOTSTRAP
        self.topics = fresh_topics()
        self.tmp_path = tmp_path
        self.sequencer = SequencerThread(settings, self.topics, tmp_path / "sequencer")

    def open(self) -> Ledger:
        return Ledger.open(self.settings, kafka=self.bootstrap, topics=self.topics)

    def reader(self) -> Ledger:
        return Ledger.open(self.settings, kafka=self.bootstrap, topics=self.topics, read_only=True)

    def restart(self) -> None:
        """Stop the worker (it seals) and start a new one on the same replica dir."""
        self.sequencer.stop()
        self.sequencer = SequencerThread(self.settings, self.topics, self.tmp_path / "sequencer")

    def seal(self, ledger: Ledger) -> None:
        wait_sealed(ledger)

    def stop(self) -> None:
        self.sequencer.stop()


Backend = EmbeddedBackend | KafkaBackend


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=requires_kafka)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    from conftest import make_settings

    settings = make_settings(tmp_path, every_events=50, interval_ms=200)
    opened: Backend = EmbeddedBackend(settings) if request.param == "embedded" else KafkaBackend(settings, tmp_path)
    yield opened
    opened.stop()


def size(ledger: Ledger) -> int:
    return sum(ledger.log.size(p) for p in range(ledger.log.partition_count))


def envelopes(ledger: Ledger) -> list[dict[str, object]]:
    return [r.envelope() for p in range(ledger.log.partition_count) for r in ledger.log.read(p)]


def receipts_of(outcomes: list[Receipt | SubmissionRefused]) -> list[Receipt]:
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, Receipt)]


def test_seq_is_gapless_and_prev_hash_links_each_stream(backend: Backend) -> None:
    with backend.open() as ledger:
        receipts_of(ledger.append_batch([step(mission=f"m-{i % 3}") for i in range(30)]))
        stored = envelopes(ledger)
    for mission in ("m-0", "m-1", "m-2"):
        chain = [e for e in stored if e["stream"] == f"mission/{mission}"]
        assert [e["seq"] for e in chain] == list(range(1, 11))
        assert chain[0]["prev_hash"] == ZERO_HASH
        assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(chain))


def test_log_index_is_gapless_per_partition_across_restarts(backend: Backend) -> None:
    with backend.open() as ledger:
        first = receipts_of(ledger.append_batch([step(mission=f"m-{i % 4}") for i in range(12)]))
    backend.restart()
    with backend.open() as ledger:
        second = receipts_of(ledger.append_batch([step(mission=f"m-{i % 4}") for i in range(12)]))
    by_partition: dict[int, list[int]] = {}
    for receipt in first + second:
        by_partition.setdefault(receipt.log.partition, []).append(receipt.log.index)
    for indexes in by_partition.values():
        assert sorted(indexes) == list(range(len(indexes)))
    assert sorted(r.seq for r in first + second if r.stream == "mission/m-0") == list(range(1, 7))


def test_resend_after_restart_returns_original_receipt(backend: Backend) -> None:
    submission = step(event_id="evt-resend-1")
    with backend.open() as ledger:
        original = ledger.append(submission)
    backend.restart()
    with backend.open() as ledger:
        with pytest.raises(DuplicateEventId) as refused:
            ledger.append(submission)
        assert size(ledger) == 1
        assert ledger.rejections()[0].reason_code == "duplicate_event_id"
    assert refused.value.original_receipt["hash"] == original.hash
    assert refused.value.original_receipt["seq"] == original.seq
    assert refused.value.original_receipt["duplicate"] is True


def test_resend_without_defaulted_fields_is_still_a_duplicate(backend: Backend) -> None:
    submission = step(event_id="evt-v", occurred_at="2026-11-25T14:00:00+02:00")
    with backend.open() as ledger:
        ledger.append({**submission, "schema_version": 1})
        with pytest.raises(DuplicateEventId):
            ledger.append({**submission, "occurred_at": "2026-11-25T12:00:00.000000Z"})


def test_duplicate_inside_one_batch_returns_the_first_receipt(backend: Backend) -> None:
    submission = step(event_id="evt-twice")
    with backend.open() as ledger:
        first, second = ledger.append_batch([submission, submission])
        assert isinstance(first, Receipt)
        assert isinstance(second, DuplicateEventId)
        assert second.original_receipt["hash"] == first.hash
        assert size(ledger) == 1


def test_event_id_reused_for_different_content_is_refused(backend: Backend) -> None:
    with backend.open() as ledger:
        ledger.append(step(event_id="evt-x"))
        with pytest.raises(EventIdConflict, match="already used for a different submission"):
            ledger.append(step(event_id="evt-x"))
        assert size(ledger) == 1
        assert ledger.rejections()[0].reason_code == "event_id_conflict"


@pytest.mark.parametrize(
    "change",
    [
        {"stream": "mission/m-other"},
        {"actor": {"kind": "agent", "id": "a-2"}},
        {"agent_id": "a-2"},
        {"causation_id": "evt-cause"},
        {"correlation": {"trace_id": "0" * 32}},
        {"occurred_at": "2026-11-25T12:00:01Z"},
        {"payload": {"step_id": "s-other", "summary": "another step", "status": "completed"}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_resend_must_match_the_original_in_every_field_the_producer_set(
    backend: Backend, change: dict[str, Any]
) -> None:
    if "stream" in change and isinstance(backend, KafkaBackend):
        pytest.skip("Kafka indexes event_id per partition; another stream may live in another partition")
    original = step(event_id="evt-same")
    with backend.open() as ledger:
        ledger.append(original)
        with pytest.raises(EventIdConflict, match="already used for a different submission"):
            ledger.append({**original, **change})
        without_time = {key: value for key, value in original.items() if key != "occurred_at"}
        with pytest.raises(DuplicateEventId):  # occurred_at left out: the original's time stands
            ledger.append(without_time)
        assert size(ledger) == 1


def test_same_event_id_in_another_tenant_is_independent(backend: Backend) -> None:
    with backend.open() as ledger:
        a = ledger.append(step(tenant="acme", event_id="shared-id"))
        b = ledger.append(step(tenant="globex", event_id="shared-id"))
        assert a.tenant == "acme" and b.tenant == "globex"
        assert not b.duplicate and size(ledger) == 2


def test_expected_seq_appends_at_head_and_refuses_a_stale_one(backend: Backend) -> None:
    with backend.open() as ledger:
        first = ledger.append(step(expected_seq=0))
        second = ledger.append(step(expected_seq=1))
        assert (first.seq, second.seq) == (1, 2)
        with pytest.raises(StaleExpectedSeq, match="is at seq 2, not the expected_seq 1"):
            ledger.append(step(expected_seq=1))
        assert ledger.rejections()[0].reason_code == "stale_expected_seq"
        assert size(ledger) == 2


def test_an_event_id_that_is_not_an_id_is_refused_not_replaced(backend: Backend) -> None:
    """A non-string or empty event_id is a schema violation on both backends: never swapped for a generated id,
    and on Kafka refused with an answer the caller gets at once (its refusal could not be paired otherwise)."""
    with backend.open() as ledger:
        not_a_string, empty = ledger.append_batch([step(event_id=123), step(event_id="")])
        assert isinstance(not_a_string, SchemaViolation)
        assert "'event_id' must be a string (got integer)" in not_a_string.message
        assert isinstance(empty, SchemaViolation) and "'event_id'" in empty.message
        assert size(ledger) == 0
        recorded = [rejection.message for rejection in ledger.rejections()]
        assert not_a_string.message in recorded and empty.message in recorded  # both kept with their reason


def test_producer_tenant_is_enforced(backend: Backend) -> None:
    with backend.open() as ledger:
        with pytest.raises(WrongTenant, match="this producer writes 'acme'"):
            ledger.append(step(tenant="globex"), tenant="acme")
        assert size(ledger) == 0
        assert ledger.rejections()[0].tenant == "globex"


def assert_proven(ledger: Ledger, original: Receipt) -> None:
    """The ledger's receipt of `original` carries an inclusion proof that checks against its signed checkpoint."""
    receipt = ledger.receipt(original.tenant, original.event_id)
    assert receipt is not None and receipt.checkpoint is not None and receipt.inclusion_proof is not None
    checkpoint = open_checkpoint(receipt.checkpoint, ledger.verifier_key())
    proof = [base64.b64decode(node) for node in receipt.inclusion_proof]
    leaf = leaf_hash(bytes.fromhex(receipt.hash.removeprefix("sha256:")))
    verify_inclusion(leaf, receipt.log.index, checkpoint.size, proof, checkpoint.root_hash)


def test_receipt_carries_an_inclusion_proof_against_the_signed_checkpoint(backend: Backend) -> None:
    with backend.open() as ledger:
        receipts = receipts_of(ledger.append_batch([step(mission=f"m-{i % 4}") for i in range(37)]))
        backend.seal(ledger)
        for original in (receipts[0], receipts[17], receipts[36]):
            assert_proven(ledger, original)


def test_receipts_stay_provable_as_the_log_grows(backend: Backend) -> None:
    """A reader that proved early events proves later ones against newer checkpoints. On Kafka the reader's
    cached tree is extended from where it stopped: the second round reads only the records after it."""
    with backend.open() as ledger:
        # one stream, so one partition on Kafka too: its tree is the one cached and then extended
        first = receipts_of(ledger.append_batch([step(mission="m-0") for _ in range(23)]))
        backend.seal(ledger)
    with backend.reader() as reader:
        assert_proven(reader, first[-1])
        with backend.open() as ledger:
            later = receipts_of(ledger.append_batch([step(mission="m-0") for _ in range(31)]))
            backend.seal(ledger)
        read_from: list[int | None] = []
        records_after = reader.log.records_after

        def watched(partition: int, position: int | None, limit: int) -> list[LogRecord]:
            read_from.append(position)
            return records_after(partition, position, limit)

        reader.log.records_after = watched  # type: ignore[method-assign]
        assert_proven(reader, later[-1])
        assert_proven(reader, first[0])
    if isinstance(backend, KafkaBackend):
        assert read_from and None not in read_from  # extended from a known offset, never re-read from the start


def test_latest_and_covering_checkpoints_agree_with_the_full_list(backend: Backend) -> None:
    with backend.open() as ledger:
        for _ in range(3):  # several checkpoints per partition (every 50 events, and on the timer)
            receipts_of(ledger.append_batch([step(mission=f"m-{i % 5}") for i in range(60)]))
            backend.seal(ledger)
    with backend.reader() as ledger:
        log = ledger.log
        partitions_with_checkpoints = 0
        for partition in range(log.partition_count):
            stored = list(log.checkpoints(partition))
            assert log.latest_checkpoint(partition) == (stored[-1] if stored else None)
            partitions_with_checkpoints += bool(stored)
            if len(stored) > 1:
                assert stored[0].tree_size < stored[-1].tree_size
            for index in range(log.size(partition)):
                covering = [cp for cp in stored if cp.tree_size > index]
                assert log.covering_checkpoint(partition, index) == min(covering, key=lambda cp: cp.tree_size)
            assert log.covering_checkpoint(partition, log.size(partition)) is None
        assert partitions_with_checkpoints >= 1


def test_whole_log_verifies_after_mixed_traffic(backend: Backend) -> None:
    with backend.open() as ledger:
        ledger.append_batch([step(mission=f"m-{i % 7}", tenant=("acme", "globex")[i % 2]) for i in range(120)])
        ledger.append_batch([step(), "{not json", step(type="tool.call.complete")])
        backend.seal(ledger)
    with backend.reader() as ledger:
        report = ledger.verify()
    assert report.events == 121
    assert report.streams == 14  # 7 missions in each of 2 tenants
    assert report.unsealed == 0


def test_checkpoint_every_n_events_and_on_close(tmp_path: Path) -> None:
    from conftest import make_settings

    settings = make_settings(tmp_path, every_events=10)
    with Ledger.open(settings) as ledger:
        for _ in range(25):
            ledger.append(step())
        assert [cp.tree_size for cp in ledger.checkpoints()] == [1, 11, 21]
    with Ledger.open(settings, read_only=True) as ledger:
        assert [cp.tree_size for cp in ledger.checkpoints()] == [1, 11, 21, 25]


def test_checkpoint_policy_defaults_are_what_the_docs_say() -> None:
    assert (CheckpointPolicy().every_events, CheckpointPolicy().interval_ms) == (1000, 1000)


def test_submit_keeps_many_in_flight_and_each_gets_its_own_answer(backend: Backend) -> None:
    with backend.open() as ledger:
        futures = [ledger.submit(step(mission=f"m-{i % 5}")) for i in range(100)]
        futures.append(ledger.submit(b'{"tenant": "acme", '))
        ledger.flush()
        outcomes = [future.result(timeout=60) for future in futures]
    receipts = receipts_of(outcomes[:-1])
    assert isinstance(outcomes[-1], MalformedJson)
    for mission in range(5):
        assert sorted(r.seq for r in receipts if r.stream == f"mission/m-{mission}") == list(range(1, 21))
    assert len({r.event_id for r in receipts}) == 100
