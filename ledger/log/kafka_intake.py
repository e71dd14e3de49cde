"""The producer side of a Kafka ledger: submissions go to `ledger.intake`, answers come back from the log.

Each submission is keyed `tenant/stream` and sent to the intake partition that owns its stream (Kafka's default
partitioner, so producers in any language agree). The client assigns an `event_id` when there is none, then
waits for its answer: the sealed event in `ledger.events` (a receipt) or its refusal in `ledger.rejected`.
Input it cannot route (not JSON, no tenant or stream) is refused here and recorded in `ledger.rejected` too.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import orjson
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from ledger.clock import utc_now, uuid7
from ledger.errors import (
    ConfigError,
    LedgerError,
    SchemaViolation,
    SubmissionRefused,
    refusal_from,
)
from ledger.intake import Limits, check_producer_tenant, decode_submission, raw_bytes
from ledger.log.base import Rejection
from ledger.log.kafka import Topics, partition_of, reader, rejection_from_record, rejection_record, stream_key
from ledger.sequencer import Outcome, RawSubmission, receipt_for


class ReceiptTimeout(LedgerError):
    """No receipt or refusal arrived in time: the submission may still be sequenced (resend it: it is idempotent)."""

    reason_code = "receipt_timeout"
    exit_code = 1
    http_status = 504


class IntakeClient:
    """Append to a Kafka ledger and wait for receipts; thread-safe."""

    def __init__(
        self, bootstrap: str, *, topics: Topics | None = None, timeout_s: float = 30.0, limits: Limits | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.limits = limits or Limits()
        self.topics = topics or Topics()
        self.timeout_s = timeout_s
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                batch_size=1 << 20,
                max_block_ms=30_000,
            )
        except KafkaError as exc:
            raise ConfigError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
        self._answers = reader(bootstrap, fetch_max_wait_ms=20)
        intake = self._producer.partitions_for(self.topics.intake)
        if not intake:
            raise ConfigError(f"topic {self.topics.intake} does not exist; run `agent-ledger kafka init`")
        self.partition_count = len(intake)
        self._pending: dict[tuple[str, str], deque[Future[Outcome]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start_listening()

    def _start_listening(self) -> None:
        partitions = [
            TopicPartition(topic, p)
            for topic in (self.topics.events, self.topics.rejected)
            for p in sorted(self._answers.partitions_for_topic(topic) or ())
        ]
        self._answers.assign(partitions)
        for tp, offset in self._answers.end_offsets(partitions).items():
            self._answers.seek(tp, offset)  # only answers to what this client sends from now on
        for tp in partitions:
            self._answers.position(tp)  # resolve positions before the first send
        self._listener = threading.Thread(target=self._listen, name="agent-ledger-receipts", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            for tp, records in self._answers.poll(timeout_ms=100).items():
                for record in records:
                    self._answer(tp.topic, record.value)

    def _answer(self, topic: str, value: bytes) -> None:
        outcome: Outcome
        if topic == self.topics.events:
            envelope = orjson.loads(value)
            key, outcome = (envelope["tenant"], envelope["event_id"]), receipt_for(envelope)
        else:
            rejection = rejection_from_record(value)
            if rejection.tenant is None or rejection.event_id is None:
                return
            key = (rejection.tenant, rejection.event_id)
            outcome = refusal_from(rejection.reason_code, rejection.message, (rejection.detail or {}).get("receipt"))
        with self._lock:
            waiting = self._pending.get(key)
            if not waiting:
                return
            future = waiting.popleft()
            if not waiting:
                del self._pending[key]
        future.set_result(outcome)

    def submit(self, raw: RawSubmission, *, tenant: str | None = None) -> Future[Outcome]:
        """Send one submission; the future resolves to its receipt or refusal."""
        future: Future[Outcome] = Future()
        try:
            fields = self._routable(raw, tenant)
        except SubmissionRefused as refusal:
            self._record_local_refusal(raw, refusal)
            future.set_result(refusal)
            return future
        if not fields.get("event_id"):
            fields["event_id"] = uuid7()
        key = stream_key(fields["tenant"], fields["stream"])
        with self._lock:
            self._pending[(fields["tenant"], fields["event_id"])].append(future)
        self._producer.send(
            self.topics.intake, key=key, value=orjson.dumps(fields), partition=partition_of(key, self.partition_count)
        )
        return future

    def append_batch(self, raws: Sequence[RawSubmission], *, tenant: str | None = None) -> list[Outcome]:
        futures = [self.submit(raw, tenant=tenant) for raw in raws]
        self._producer.flush()
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=self.timeout_s))
            except FutureTimeout:
                raise ReceiptTimeout(
                    f"no receipt within {self.timeout_s:.0f} s: is `agent-ledger sequencer` running?"
                ) from None
        return outcomes

    def _routable(self, raw: RawSubmission, tenant: str | None) -> dict[str, Any]:
        """Just enough to route: a JSON object with string tenant and stream (the sequencer checks the rest)."""
        fields = dict(decode_submission(raw, self.limits))
        for name in ("tenant", "stream"):
            if not isinstance(fields.get(name), str):
                raise SchemaViolation(f"submission: '{name}' is required and must be a string")
        check_producer_tenant(fields["tenant"], tenant)
        return fields

    def _record_local_refusal(self, raw: RawSubmission, refusal: SubmissionRefused) -> None:
        fields = raw if isinstance(raw, dict) else {}
        rejection = Rejection(
            utc_now(),
            refusal.reason_code,
            refusal.message,
            fields.get("tenant"),
            fields.get("event_id"),
            raw_bytes(raw),
        )
        self._producer.send(self.topics.rejected, value=rejection_record(rejection))

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        self._producer.flush()
        self._stop.set()
        self._listener.join(timeout=5)
        self._producer.close()
        self._answers.close()
