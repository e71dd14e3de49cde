"""Group commit for embedded appends: requests that wait for the writer together are sealed in one batch.

Every embedded append is one SQLite transaction with a full fsync, so concurrent HTTP producers would otherwise
queue for one fsync each. Here a request queues its submissions and takes the writer lock; whoever holds it
seals everything queued so far (per tenant, in arrival order) with one `append_batch`, and the others find their
outcomes ready. Each submission still gets exactly the outcome it would get alone: in-batch duplicates and
`expected_seq` are decided in order by the sequencer (guarantees 4, 5), refusals are recorded (guarantee 6).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ledger.sequencer import Outcome, RawSubmission

AppendBatch = Callable[[Sequence[RawSubmission], str], list[Outcome]]
"""(submissions, tenant) -> one outcome per submission: `Ledger.append_batch` bound to a tenant."""


@dataclass
class _Request:
    raws: list[RawSubmission]
    tenant: str
    outcomes: list[Outcome] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class GroupCommit:
    """Thread-safe; `append` blocks until the caller's submissions are sealed or refused."""

    def __init__(self, append_batch: AppendBatch, *, max_group: int = 1000) -> None:
        self._append_batch = append_batch
        self._max_group = max_group
        self.writer = threading.Lock()  # held while a group is sealed
        self._queued: list[_Request] = []
        self._queue_lock = threading.Lock()

    def append(self, raws: Sequence[RawSubmission], tenant: str) -> list[Outcome]:
        request = _Request(list(raws), tenant)
        with self._queue_lock:
            self._queued.append(request)
        with self.writer:
            while not request.done:  # no one sealed it while this thread waited for the writer
                self._seal_next_group()
        if request.error is not None:
            raise request.error
        assert request.outcomes is not None
        return request.outcomes

    def _seal_next_group(self) -> None:
        """Seal the oldest queued requests, up to `max_group` submissions (always at least one request)."""
        with self._queue_lock:
            group: list[_Request] = []
            taken = 0
            while self._queued and (not group or taken + len(self._queued[0].raws) <= self._max_group):
                taken += len(self._queued[0].raws)
                group.append(self._queued.pop(0))
        for tenant in dict.fromkeys(request.tenant for request in group):
            self._seal([request for request in group if request.tenant == tenant], tenant)

    def _seal(self, requests: list[_Request], tenant: str) -> None:
        try:
            outcomes = self._append_batch([raw for request in requests for raw in request.raws], tenant)
        except BaseException as error:  # the whole batch failed (nothing committed): each caller gets the error
            for request in requests:
                request.error, request.done = error, True
            return
        start = 0
        for request in requests:
            request.outcomes = outcomes[start : start + len(request.raws)]
            request.done = True
            start += len(request.raws)
