"""The Python SDK for producers, operators and tests: one `Ledger` object over a log backend.

`Ledger.open(settings)` opens the embedded default; every method returns typed `schemas` models or raises a
`ledger.errors` exception (a duplicate carries the original receipt). CLI commands are thin layers over these
methods. Closing the ledger seals a final signed checkpoint (DESIGN: "and on clean shutdown").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ledger.config import Settings
from ledger.errors import ConfigError, DuplicateEventId, SubmissionRefused
from ledger.keys import SignerKey, VerifierKey, load_signer, load_verifier
from ledger.log.base import Checkpointed, LogBackend, LogRecord, Rejection
from ledger.log.embedded import EmbeddedLog
from ledger.log.kafka import KafkaLog, Topics
from ledger.log.kafka_intake import IntakeClient
from ledger.producer_auth import intake_signer
from ledger.receipts import receipt_with_proof
from ledger.sealer import Sealer
from ledger.sequencer import Outcome, RawSubmission, Sequencer
from ledger.verify import VerifyReport, verify_log
from schemas.envelope import Receipt, Submission

if TYPE_CHECKING:
    from consumers.service import ProjectionService


class Ledger:
    """An open ledger: append, read, prove and verify."""

    def __init__(
        self, log: LogBackend, settings: Settings, signer: SignerKey | None, intake: IntakeClient | None = None
    ) -> None:
        self.log = log
        self.settings = settings
        self._signer = signer
        self._intake = intake
        self._sequencer: Sequencer | None = None
        self._sealer: Sealer | None = None
        self._projections: ProjectionService | None = None

    @property
    def read_only(self) -> bool:
        """True when this ledger cannot append (opened read-only)."""
        return self._signer is None and self._intake is None

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        create: bool = True,
        read_only: bool = False,
        kafka: str | None = None,
        topics: Topics | None = None,
    ) -> Ledger:
        """Open the embedded ledger (writers need the signing key), or with `kafka` connect to a Kafka ledger:
        appends then go through `ledger.intake` to the `agent-ledger sequencer` workers, signed with the
        settings' producer key, else the ledger key when readable (docs/kafka.md, "Producer authentication")."""
        settings = settings or Settings()
        if kafka is not None:
            intake = None if read_only else IntakeClient(kafka, topics=topics, signer=intake_signer(settings))
            return cls(KafkaLog(kafka, topics=topics), settings, None, intake)
        signer = None if read_only else load_signer(settings.private_key_path)
        return cls(EmbeddedLog(settings.data_dir, create=create), settings, signer)

    @property
    def sequencer(self) -> Sequencer:
        if self._sequencer is None:
            if self._signer is None:
                raise ConfigError("this ledger has no sequencer here (read-only, or Kafka: the workers seal)")
            self._sequencer = Sequencer(
                self.log,
                self._signer,
                limits=self.settings.limits,
                checkpoint_policy=self.settings.checkpoint_policy,
            )
        return self._sequencer

    def append(self, submission: Submission | RawSubmission, *, tenant: str | None = None) -> Receipt:
        (outcome,) = self.append_batch([submission], tenant=tenant)
        if isinstance(outcome, SubmissionRefused):
            raise outcome
        return outcome

    def append_batch(
        self, submissions: Sequence[Submission | RawSubmission], *, tenant: str | None = None
    ) -> list[Outcome]:
        raws = [_raw(item) for item in submissions]
        if self._intake is not None:
            return self._intake.append_batch(raws, tenant=tenant)
        outcomes = self.sequencer.append_batch(raws, tenant=tenant)
        for outcome in outcomes:
            if isinstance(outcome, DuplicateEventId):  # a resend gets the original receipt with its proof
                original = self.receipt(outcome.original_receipt["tenant"], outcome.original_receipt["event_id"])
                if original is not None:
                    original.duplicate = True
                    outcome.original_receipt = original.model_dump(mode="json")
        return outcomes

    def submit(self, submission: Submission | RawSubmission, *, tenant: str | None = None) -> Future[Outcome]:
        """The throughput path: send now, collect the receipt or refusal later. On Kafka many submissions are in
        flight at once; embedded seals each submission immediately and returns a finished future."""
        if self._intake is not None:
            return self._intake.submit(_raw(submission), tenant=tenant)
        future: Future[Outcome] = Future()
        (outcome,) = self.append_batch([submission], tenant=tenant)
        future.set_result(outcome)
        return future

    def flush(self) -> None:
        """Make sure every submitted record left this process (Kafka); a no-op when embedded."""
        if self._intake is not None:
            self._intake.flush()

    def receipt(self, tenant: str, event_id: str) -> Receipt | None:
        """The receipt of an appended event, with checkpoint and inclusion proof once it is sealed."""
        envelope = self.log.find_event(tenant, event_id)
        return None if envelope is None else receipt_with_proof(self.log, envelope)

    def records(self, partition: int = 0, start: int = 0, limit: int | None = None) -> Iterator[LogRecord]:
        return self.log.read(partition, start, limit)

    def checkpoints(self, partition: int = 0) -> Sequence[Checkpointed]:
        return self.log.checkpoints(partition)

    def rejections(self, limit: int = 100) -> list[Rejection]:
        return self.log.rejections(limit)

    def verifier_key(self) -> VerifierKey:
        if self._signer is not None:
            return self._signer.verifier()
        return load_verifier(self.settings.verifier_key_path)

    def verify(
        self,
        verifier: VerifierKey | None = None,
        *,
        allow_unsealed: bool = False,
        on_progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        return verify_log(
            self.log, verifier or self.verifier_key(), allow_unsealed=allow_unsealed, on_progress=on_progress
        )

    def projections(self, state_root: Path | None = None) -> ProjectionService:
        """Mission state, memory views, trust, scope grants and `authorize`, from the projection stores under
        `state_root` (default `<data>/consumers`). Call `.catch_up()` to fold what the log has that they lack."""
        if self._projections is None or (state_root is not None and self._projections.state_root != state_root):
            from consumers.service import ProjectionService  # consumers build on the ledger, not the reverse

            if self._projections is not None:
                self._projections.close()
            self._projections = ProjectionService(self, state_root)
        return self._projections

    def seal(self) -> list[Checkpointed]:
        return self.sequencer.seal()

    def start_sealer(self) -> None:
        """Seal a checkpoint every `interval_ms` while the log is quiet (long-running writers call this)."""
        if self._sealer is None:
            self._sealer = Sealer(self.sequencer).start()

    def close(self) -> None:
        try:
            if self._projections is not None:
                self._projections.close()
            if self._sealer is not None:
                self._sealer.stop()
            if self._sequencer is not None:
                self._sequencer.close()
            if self._intake is not None:
                self._intake.close()
        finally:
            self.log.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _raw(submission: Submission | RawSubmission) -> RawSubmission:
    if isinstance(submission, Submission):
        dumped: dict[str, Any] = submission.model_dump(mode="json", exclude_none=True)
        return dumped
    return submission
