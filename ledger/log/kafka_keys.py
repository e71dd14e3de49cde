"""The producer keys a Kafka sequencer accepts: the ledger key, and every producer key in `key.registered` events.

A registration can live in any `ledger.events` partition, not only the ones this worker owns, so the registry
follows all of them with its own read_committed reader: from the start when the worker starts, then only what is
new, when a record names a key id it does not know (at most once per batch, before refusing it) and every
`refresh_s` on a thread of its own, off the sequencing loop (a later registration of the same key and tenant,
with `expires_at`, revokes it). It trusts `ledger.events` as only sequencers write it (Kafka ACLs,
docs/kafka.md); it never writes anything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from kafka import TopicPartition
from kafka.errors import KafkaError

from ledger.keys import VerifierKey
from ledger.log.kafka import POLL_MS, Topics, reader
from ledger.producer_auth import KeyLookup, ProducerKey, registration_in, remember

log = logging.getLogger("agent_ledger.producer_keys")


class ProducerKeyRegistry:
    """Thread-safe: lookups read an immutable snapshot; one refresh at a time swaps in the next one."""

    def __init__(self, bootstrap: str, topics: Topics, ledger_key: VerifierKey, *, refresh_s: float = 30.0) -> None:
        self.topics = topics
        self.refresh_s = refresh_s
        self._ledger = ProducerKey.of_ledger(ledger_key)
        self._reader = reader(bootstrap, fetch_max_wait_ms=20)
        self._latest: dict[tuple[str, str | None], ProducerKey] = {}
        self._by_id: dict[str, tuple[ProducerKey, ...]] = {self._ledger.key_id: (self._ledger,)}
        self._positions: dict[int, int] = {}
        self._lock = threading.Lock()
        self._started = 0  # refreshes that have begun (each computes its end offsets after taking the lock)
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def keys_for(self, key_id: str) -> Sequence[ProducerKey]:
        return self._by_id.get(key_id, ())

    def batch_lookup(self) -> KeyLookup:
        """A lookup for one batch: an unknown key id makes it read what is new in the log, once per batch."""
        refreshed = False

        def lookup(key_id: str) -> Sequence[ProducerKey]:
            nonlocal refreshed
            found = self.keys_for(key_id)
            if not found and not refreshed:
                refreshed = True
                self.refresh(unless_started_after=self._started)
                found = self.keys_for(key_id)
            return found

        return lookup

    def start(self) -> None:
        """Refresh every `refresh_s` on a daemon thread until `close()`."""
        self._timer = threading.Thread(target=self._refresh_forever, name="agent-ledger-producer-keys", daemon=True)
        self._timer.start()

    def _refresh_forever(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except KafkaError as exc:  # the broker away a moment: the next round reads what this one missed
                log.warning("producer keys: refresh failed (%s); will retry", exc)

    def refresh(self, *, unless_started_after: int | None = None) -> None:
        """Read every events partition from where the last refresh stopped to its end as of now.

        `unless_started_after`: the number of refreshes begun when the caller missed a key id; a refresh begun
        since then has already read everything committed before the miss, so another one is not needed."""
        with self._lock:
            if unless_started_after is not None and self._started > unless_started_after:
                return
            self._started += 1
            found = self._read_new()
            if found:
                for key in found:
                    remember(self._latest, key)
                by_id: dict[str, list[ProducerKey]] = {self._ledger.key_id: [self._ledger]}
                for key in self._latest.values():
                    by_id.setdefault(key.key_id, []).append(key)
                self._by_id = {key_id: tuple(keys) for key_id, keys in by_id.items()}

    def _read_new(self) -> list[ProducerKey]:
        """The registrations in what was appended since the last read, in log order per partition."""
        topic = self.topics.events
        partitions = [TopicPartition(topic, p) for p in sorted(self._reader.partitions_for_topic(topic) or ())]
        ends = self._reader.end_offsets(partitions)
        behind = [tp for tp in partitions if self._positions.get(tp.partition, 0) < ends[tp]]
        found: list[ProducerKey] = []
        if not behind:
            return found
        self._reader.assign(behind)
        for tp in behind:
            self._reader.seek(tp, self._positions.get(tp.partition, 0))
        while behind:
            for records in self._reader.poll(timeout_ms=POLL_MS).values():
                for record in records:
                    key = registration_in(record.value or b"")
                    if key is not None:
                        found.append(key)
            # A transaction marker takes the last offset, so position (not the last record) says when we are done.
            for tp in list(behind):
                position = self._reader.position(tp)
                self._positions[tp.partition] = position
                if position >= ends[tp]:
                    behind.remove(tp)
                    self._reader.pause(tp)
        self._reader.resume(*self._reader.paused())
        return found

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=30)
        with self._lock:
            self._reader.close()
