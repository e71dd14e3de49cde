"""What the HTTP service holds open while it runs: the ledger, the API keys, the projections and the audit store.

`Service.open` opens the ledger the CLI would (embedded, or Kafka with `kafka=`). Routes reach it through
`request.app.state.service`. FastAPI runs plain `def` routes on a thread pool, so anything that is not
thread-safe (the embedded sequencer, SQLite stores, the Kafka reader) is used under `self.lock`. Embedded
appends go through a group commit instead (one writer at a time, concurrent requests sealed together), so the
workers' projection catch-up never stalls producers; SQLite's write lock still orders them against every other
writer (guarantee 3).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Request

from consumers.service import ProjectionService
from ledger.api.group_commit import GroupCommit
from ledger.apikeys import ApiKeyStore
from ledger.config import Settings
from ledger.log.base import Rejection
from ledger.log.kafka_topics import Topics
from ledger.sdk import Ledger
from ledger.sequencer import Outcome, RawSubmission


@dataclass(frozen=True)
class HttpLimits:
    """Limits of the HTTP service. One submission is bounded by `settings.limits.max_submission_bytes`; a batch
    by these (a batch may hold many submissions, so its limit is larger); an audit query by its time."""

    max_batch_bytes: int = 16 * 1024 * 1024
    max_batch_items: int = 1000
    audit_query_s: float = 30.0  # an auditor's query (SQL or saved) is stopped after this many seconds


@dataclass
class Service:
    settings: Settings
    ledger: Ledger
    keys: ApiKeyStore
    kafka: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    _projections: ProjectionService | None = None
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    appends: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.appends = GroupCommit(lambda raws, tenant: self.ledger.append_batch(raws, tenant=tenant))

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        kafka: str | None = None,
        topics: Topics | None = None,
        http_limits: HttpLimits | None = None,
    ) -> Service:
        ledger = Ledger.open(settings, kafka=kafka, topics=topics)
        return cls(
            settings=settings,
            ledger=ledger,
            keys=ApiKeyStore(settings.key_dir),
            kafka=kafka,
            http_limits=http_limits or HttpLimits(),
        )

    @property
    def append_lock(self) -> threading.Lock:
        """The embedded writer, held while a batch is sealed. Code that appends or seals outside the intake routes
        (decisions of a catch-up, a seal before an export) holds it, taken after `lock`, never before."""
        return self.appends.writer

    @property
    def backend(self) -> Literal["embedded", "kafka"]:
        return "kafka" if self.kafka else "embedded"

    @property
    def projections(self) -> ProjectionService:
        if self._projections is None:
            self._projections = self.ledger.projections()
        return self._projections

    @property
    def audit_dir(self) -> Path:
        return self.settings.data_dir / "consumers"

    def reading(self) -> AbstractContextManager[object]:
        """Hold this around reads of `ledger.log`: the Kafka reader is one consumer, not safe across threads;
        embedded reads each take their own SQLite connection and need no lock."""
        return self.lock if self.kafka else nullcontext()

    def append_batch(self, raws: Sequence[RawSubmission], *, tenant: str) -> list[Outcome]:
        """Append through the ledger's own intake, bound to `tenant` (guarantee 9); one outcome per submission."""
        if self.kafka:  # the intake client is thread-safe, and many batches may wait for receipts at once
            return self.ledger.append_batch(raws, tenant=tenant)
        return self.appends.append(raws, tenant)

    def record_refusals(self, rejections: Sequence[Rejection]) -> None:
        """Record refusals made before the intake could see the submission (an oversized body; guarantee 6)."""
        with self.lock if self.kafka else self.appends.writer:
            self.ledger.log.record_rejections(rejections)

    def close(self) -> None:
        if self._projections is not None:
            self._projections.close()
        self.ledger.close()


def service_of(request: Request) -> Service:
    """The service `create_app` was built with; routes take it as `ServiceDep`."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(service_of)]
