"""The producer side of a Kafka ledger: submissions go to `ledger.intake`, answers come back from the log.

Each submission is keyed `tenant/stream` and sent to the intake partition that owns its stream (Kafka's default
partitioner, so producers in any language agree). Submissions for one partition that arrive within `linger_ms`
travel as one batch record, signed once with the producer's key (`ledger/producer_auth.py`, guarantee 9).
The client assigns an `event_id` when there is none, then waits for its answer: the sealed event in
`ledger.events` (a receipt) or its refusal in `ledger.rejected`. Input it cannot route (not JSON, no tenant or
stream) is refused here and recorded in `ledger.rejected` too.
"""

from __future__ import annotations

import threading
import time
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
from ledger.intake import Limits, check_producer_tenant, decode_submission, raw_bytes, text_field
from ledger.keys import SignerKey
from ledger.log.base import Rejection
from ledger.log.kafka import Topics, partition_of, reader, rejection_from_record, rejection_record, stream_key
from ledger.producer_auth import BATCH_MAX_BYTES, BATCH_MAX_SUBMISSIONS, RecordSigner, batch_value
from ledger.sequencer import Outcome, RawSubmission, receipt_for
from schemas.registry import json_type

AnswerKey = tuple[str, str, str]  # (tenant, event_id, stream)
INTAKE_PRODUCER: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 2, "batch_size": 1 << 20}


class ReceiptTimeout(LedgerError):
    """No receipt or refusal arrived in time: the submission may still be sequenced (resend it: it is idempotent)."""

    reason_code = "receipt_timeout"
    exit_code = 1
    http_status = 504


class IntakeClient:
    """Append to a Kafka ledger and wait for receipts; thread-safe."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topics: Topics | None = None,
        timeout_s: float = 30.0,
        limits: Limits | None = None,
        signer: SignerKey | None = None,
        linger_ms: float = 5.0,
    ) -> None:
        """`signer` signs every intake record (the ledger key, or a producer key registered to the tenants this
        client writes); without it records go unsigned and a sequencer refuses them (`unsigned_submission`)."""
        self.bootstrap = bootstrap
        self.limits = limits or Limits()
        self.topics = topics or Topics()
        self.timeout_s = timeout_s
        self._record_signer = RecordSigner(signer) if signer is not None else None
        self._linger_s = linger_ms / 1000
        try:
            self._producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=30_000, **INTAKE_PRODUCER)
        except KafkaError as exc:
            raise ConfigError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
        self._answers = reader(bootstrap, fetch_max_wait_ms=20)
        intake = self._producer.partitions_for(self.topics.intake)
        if not intake:
            raise ConfigError(f"topic {self.topics.intake} does not exist; run `agent-ledger kafka init`")
        self.partition_count = len(intake)
        # Answers pair by (tenant, event_id, stream): one stream is one intake partition, whose answers come back
        # in submission order, so a resend of an event id (or the same id on two streams) never swaps answers.
        self._pending: dict[AnswerKey, deque[Future[Outcome]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Per intake partition: encoded submissions waiting to leave as one record, their bytes, the record key.
        self._outbox: dict[int, list[tuple[bytes, AnswerKey]]] = {}
        self._outbox_bytes: dict[int, int] = {}
        self._outbox_keys: dict[int, bytes] = {}
        self._outbox_changed = threading.Condition()
        self._closing = False
        self._start_listening()
        self._sender = threading.Thread(target=self._send_lingering, name="agent-ledger-intake", daemon=True)
        self._sender.start()

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
            key, outcome = (envelope["tenant"], envelope["event_id"], envelope["stream"]), receipt_for(envelope)
        else:
            rejection = rejection_from_record(value)
            stream = text_field(rejection.raw, "stream")
            if rejection.tenant is None or rejection.event_id is None or stream is None:
                return  # not a refusal of a submission this client could have routed
            key = (rejection.tenant, rejection.event_id, stream)
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
        encoded: bytes
        if fields.get("event_id") is None:
            fields["event_id"] = uuid7()
            encoded = orjson.dumps(fields)
        elif isinstance(raw, dict):
            encoded = orjson.dumps(fields)
        else:  # sent as it came: the sequencer parses the very bytes this client routed by
            encoded = raw.encode("utf-8") if isinstance(raw, str) else raw
        key = stream_key(fields["tenant"], fields["stream"])
        answer_key = (fields["tenant"], fields["event_id"], fields["stream"])
        with self._lock:
            self._pending[answer_key].append(future)
        self._enqueue(partition_of(key, self.partition_count), key, encoded, answer_key)
        return future

    # -- batch records ---------------------------------------------------------------------------------------

    def _enqueue(self, partition: int, key: bytes, encoded: bytes, answer_key: AnswerKey) -> None:
        with self._outbox_changed:
            waiting = self._outbox.get(partition)
            if waiting and (
                len(waiting) >= BATCH_MAX_SUBMISSIONS
                or self._outbox_bytes[partition] + len(encoded) + 1 > BATCH_MAX_BYTES
            ):
                self._send_outbox(partition)
                waiting = None
            if waiting is None:
                self._outbox[partition] = waiting = []
                self._outbox_bytes[partition] = 1
                self._outbox_keys[partition] = key
                self._outbox_changed.notify()  # the sender sleeps only while the outbox is empty
            waiting.append((encoded, answer_key))
            self._outbox_bytes[partition] += len(encoded) + 1

    def _send_outbox(self, partition: int) -> None:
        """Send one partition's waiting submissions as one (signed) record; called holding `_outbox_changed`,
        which keeps the records of one partition in submission order."""
        waiting = self._outbox.pop(partition)
        del self._outbox_bytes[partition]
        key = self._outbox_keys.pop(partition)
        value = batch_value([encoded for encoded, _ in waiting])
        headers = self._record_signer.headers(value) if self._record_signer is not None else None
        try:
            self._producer.send(self.topics.intake, key=key, value=value, partition=partition, headers=headers)
        except KafkaError as exc:  # e.g. too large for one request: each waiting caller gets the error
            for _, answer_key in waiting:
                with self._lock:
                    futures = self._pending.get(answer_key)
                    future = futures.pop() if futures else None
                    if futures is not None and not futures:
                        del self._pending[answer_key]
                if future is not None:
                    future.set_exception(exc)

    def _send_all(self) -> None:
        with self._outbox_changed:
            for partition in list(self._outbox):
                self._send_outbox(partition)

    def _send_lingering(self) -> None:
        """Send what waited `linger_ms`: long enough for a burst of submits to share one signature."""
        while True:
            with self._outbox_changed:
                while not self._outbox and not self._closing:
                    self._outbox_changed.wait()
                if self._closing and not self._outbox:
                    return
            time.sleep(self._linger_s)
            self._send_all()

    def append_batch(self, raws: Sequence[RawSubmission], *, tenant: str | None = None) -> list[Outcome]:
        futures = [self.submit(raw, tenant=tenant) for raw in raws]
        self.flush()
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
        """Just enough to route and pair the answer: a JSON object with string tenant and stream, and a string
        event_id when there is one (the sequencer checks the rest)."""
        fields = dict(decode_submission(raw, self.limits))
        for name in ("tenant", "stream"):
            if not isinstance(fields.get(name), str):
                raise SchemaViolation(f"submission: '{name}' is required and must be a string")
        # Answers pair by event_id, so one that is not a string is refused here: its refusal could not be paired.
        if fields.get("event_id") is not None and not isinstance(fields["event_id"], str):
            raise SchemaViolation(f"submission: 'event_id' must be a string (got {json_type(fields['event_id'])})")
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
        self._send_all()
        self._producer.flush()

    def close(self) -> None:
        self.flush()
        with self._outbox_changed:
            self._closing = True
            self._outbox_changed.notify()
        self._sender.join(timeout=5)
        self._stop.set()
        self._listener.join(timeout=5)
        self._producer.close()
        self._answers.close()
