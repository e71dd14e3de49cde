"""`/metrics`: Prometheus figures of one `serve` process, in a registry of its own (never the global one).

Counters, moved by the intake routes: events appended and submissions refused by reason code. Gauges, read
from the ledger at scrape time: events per partition, the age and size of the latest signed checkpoint, and the
lag of each consumer (log size minus the consumer's position, in events). A scrape only reads; a figure that
cannot be read right now is left out and logged rather than failing the whole scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.generations import live_dir
from ledger.api.service import Service
from ledger.clock import parse_timestamp
from ledger.errors import SubmissionRefused
from ledger.sequencer import Outcome
from projections.registry import PROJECTIONS

log = logging.getLogger("agent_ledger.api")

AuditProgress = Callable[[], dict[int, int] | None]
"""partition -> log indexes the in-process audit sink holds (None: no audit sink in this process)."""


def lag_behind(sizes: dict[int, int], held: dict[int, int]) -> int:
    """Events a consumer still has to apply: per partition, the log size minus what it holds."""
    return sum(max(0, size - held.get(partition, 0)) for partition, size in sizes.items())


class LedgerCollector(Collector):
    """Gauges read from the ledger and the consumer stores at scrape time."""

    def __init__(self, service: Service, audit_progress: AuditProgress) -> None:
        self.service = service
        self.audit_progress = audit_progress

    def collect(self) -> Iterator[Metric]:
        service = self.service
        try:
            with service.reading():
                partitions = range(service.ledger.log.partition_count)
                sizes = {p: service.ledger.log.size(p) for p in partitions}
                latest = {p: cp for p in partitions if (cp := service.ledger.log.latest_checkpoint(p)) is not None}
        except Exception as exc:  # the log is unreachable (Kafka down): report nothing rather than fail
            log.warning("metrics: cannot read the log: %s", exc)
            return
        events = GaugeMetricFamily("agent_ledger_log_events", "Events in the log, per partition", labels=["partition"])
        for partition, size in sizes.items():
            events.add_metric([str(partition)], size)
        yield events
        now = datetime.now(UTC)
        age = GaugeMetricFamily(
            "agent_ledger_checkpoint_age_seconds",
            "Seconds since the latest signed checkpoint of the partition",
            labels=["partition"],
        )
        sealed = GaugeMetricFamily(
            "agent_ledger_checkpoint_tree_size",
            "Events covered by the latest signed checkpoint of the partition",
            labels=["partition"],
        )
        for partition, checkpoint in latest.items():
            age.add_metric([str(partition)], (now - parse_timestamp(checkpoint.recorded_at)).total_seconds())
            sealed.add_metric([str(partition)], checkpoint.tree_size)
        yield age
        yield sealed
        lag = GaugeMetricFamily(
            "agent_ledger_consumer_lag_events",
            "Events in the log that the consumer has not applied yet (log size minus its position)",
            labels=["consumer"],
        )
        for consumer, behind in self._consumer_lags(sizes):
            lag.add_metric([consumer], behind)
        yield lag

    def _consumer_lags(self, sizes: dict[int, int]) -> Iterable[tuple[str, int]]:
        """The projections whose store exists here, and the in-process audit sink."""
        service = self.service
        for name in sorted(PROJECTIONS):
            try:
                if not (live_dir(service.projections.state_root) / f"{name}.sqlite").exists():
                    continue  # that consumer runs elsewhere (or never ran): no figure beats a wrong one
                with service.lock:
                    progress = service.projections.store(name).progress()
            except Exception as exc:
                log.warning("metrics: cannot read the position of consumer %s: %s", name, exc)
                continue
            yield name, lag_behind(sizes, {p: stored.log_index + 1 for p, stored in progress.items()})
        audit = self.audit_progress()
        if audit is not None:
            yield "audit", lag_behind(sizes, audit)


class ApiMetrics:
    """The registry of one app: the intake counters plus the ledger gauges."""

    def __init__(self, service: Service, audit_progress: AuditProgress) -> None:
        self.registry = CollectorRegistry()
        self.appended = Counter(
            "agent_ledger_appended_events",
            "Events appended through this API (a duplicate appends nothing and counts as a refusal)",
            registry=self.registry,
        )
        self.refusals = Counter(
            "agent_ledger_refusals",
            "Submissions refused through this API, by reason code; each one is recorded with its reason",
            labelnames=["reason"],
            registry=self.registry,
        )
        self.registry.register(LedgerCollector(service, audit_progress))

    def count(self, outcomes: Sequence[Outcome]) -> None:
        appended = 0
        for outcome in outcomes:
            if isinstance(outcome, SubmissionRefused):
                self.refused(outcome)
            else:
                appended += 1
        if appended:
            self.appended.inc(appended)

    def refused(self, refusal: SubmissionRefused) -> None:
        self.refusals.labels(reason=refusal.reason_code).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
