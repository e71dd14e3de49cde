"""Where the demo's ledger runs: the embedded default (no servers), or Kafka with a sequencer worker in-process.

On Kafka every run gets a fresh topic namespace (`demo-<random>.`, so a fresh log id): a rerun never meets an
earlier run's log. The four topics are made by the same code as `agent-ledger kafka init`, one `agent-ledger
sequencer` worker runs in a thread, and appends go through `Ledger.open(..., kafka=)` like any producer's. It
never deletes a topic, and it never prints.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from ledger.config import Settings
from ledger.errors import ConfigError
from ledger.keys import load_signer
from ledger.log.embedded import DB_FILE
from ledger.log.kafka_sequencer import KafkaSequencer
from ledger.log.kafka_topics import TopicPlan, Topics, ensure_topics, parse_bootstrap
from ledger.sdk import Ledger

KAFKA_PARTITIONS = 2
"""Partitions of the demo's topics: enough to show one Merkle tree per partition, few enough to start fast."""
SEAL_TIMEOUT_S = 60.0


class DemoEngine:
    """The embedded default: one SQLite file under the demo dir; closing a writer seals a final checkpoint."""

    name = "embedded"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def location(self) -> str:
        return str(self.settings.data_dir / DB_FILE)

    def open(self) -> Ledger:
        return Ledger.open(self.settings)

    def open_reader(self) -> Ledger:
        return Ledger.open(self.settings, create=False, read_only=True)

    def seal(self, ledger: Ledger) -> None:
        """Checkpoint everything appended so far (exports prove events against a signed root)."""
        ledger.seal()

    def close(self) -> None:
        """Nothing runs beside the ledger here."""

    def __enter__(self) -> DemoEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class _SequencerThread:
    """An `agent-ledger sequencer` worker running in a thread of this process until `stop()`."""

    worker: KafkaSequencer
    stopping: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-sequencer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self.stopping)
        except BaseException as exc:  # re-raised by stop() in the demo's own thread
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise ConfigError(f"the demo's sequencer stopped: {self.error}") from self.error

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=SEAL_TIMEOUT_S)  # it seals what it owns on the way out
        self.check()


class KafkaEngine(DemoEngine):
    """Kafka: a fresh topic namespace and a sequencer worker in a thread, until `close()`."""

    name = "kafka"

    def __init__(self, settings: Settings, bootstrap: str, *, partitions: int = KAFKA_PARTITIONS) -> None:
        super().__init__(settings)
        self.bootstrap = parse_bootstrap(bootstrap)
        self.topics = Topics(f"demo-{secrets.token_hex(4)}.")
        ensure_topics(self.bootstrap, TopicPlan(partitions=partitions), prefix=self.topics.prefix)
        worker = KafkaSequencer(
            self.bootstrap,
            load_signer(settings.private_key_path),
            settings.data_dir / "sequencer",
            topics=self.topics,
            limits=settings.limits,
            checkpoint_policy=settings.checkpoint_policy,
        )
        self._sequencer: _SequencerThread | None = _SequencerThread(worker)
        self._wait_until_owned(worker)

    def _wait_until_owned(self, worker: KafkaSequencer) -> None:
        """Appends wait for receipts with a timeout, so first let the worker join its group and own every
        partition (on a busy machine that can take longer than the first receipt may)."""
        deadline = time.monotonic() + SEAL_TIMEOUT_S
        for partition in range(worker.partition_count):
            while True:
                if self._sequencer is not None:
                    self._sequencer.check()
                try:
                    worker.owned(partition)
                    break
                except ConfigError:
                    if time.monotonic() > deadline:
                        self.close()
                        raise ConfigError(
                            f"the demo's sequencer did not take partition {partition} within {SEAL_TIMEOUT_S:.0f} s"
                        ) from None
                    time.sleep(0.05)

    @property
    def location(self) -> str:
        return f"Kafka {self.bootstrap}, topics {self.topics.prefix}ledger.*"

    def open(self) -> Ledger:
        return Ledger.open(self.settings, kafka=self.bootstrap, topics=self.topics)

    def open_reader(self) -> Ledger:
        return Ledger.open(self.settings, read_only=True, kafka=self.bootstrap, topics=self.topics)

    def seal(self, ledger: Ledger) -> None:
        """Wait until every partition's latest checkpoint covers all its events (the worker seals on a timer)."""
        deadline = time.monotonic() + SEAL_TIMEOUT_S
        log = ledger.log
        while True:
            if self._sequencer is not None:
                self._sequencer.check()
            unsealed = [
                partition
                for partition in range(log.partition_count)
                if log.size(partition)
                and (not log.checkpoints(partition) or log.checkpoints(partition)[-1].tree_size < log.size(partition))
            ]
            if not unsealed:
                return
            if time.monotonic() > deadline:
                raise ConfigError(f"the sequencer did not seal partitions {unsealed} within {SEAL_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        if self._sequencer is not None:
            sequencer, self._sequencer = self._sequencer, None
            sequencer.stop()


def open_engine(settings: Settings, kafka: str | None) -> DemoEngine:
    """The engine the demo runs on: Kafka at `kafka` (HOST:PORT), else the embedded default."""
    return KafkaEngine(settings, kafka) if kafka else DemoEngine(settings)
