"""A background timer that seals a signed checkpoint when events have waited `interval_ms` unsealed.

The sequencer checkpoints inside a batch when one is due; this timer covers a quiet log, so no event stays
unsealed much longer than the configured interval (DESIGN: "at least every N events or T milliseconds"). It
looks ten times per interval and seals only a partition whose last checkpoint is older than the interval, so an
event waits at most 1.1 intervals and a busy log gets no extra checkpoints. It never appends events.
"""

from __future__ import annotations

import threading

from ledger.sequencer import Sequencer


def seal_tick_s(interval_ms: int) -> float:
    """How often a timer looks for an overdue partition: a tenth of the interval, at least every 10 ms."""
    return max(interval_ms / 10, 10) / 1000


class Sealer:
    """Runs `sequencer.seal(overdue_only=True)` every tenth of `interval_ms` on a daemon thread until stopped."""

    def __init__(self, sequencer: Sequencer) -> None:
        self._sequencer = sequencer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-ledger-sealer", daemon=True)

    def start(self) -> Sealer:
        self._thread.start()
        return self

    def _run(self) -> None:
        tick_s = seal_tick_s(self._sequencer.checkpoint_policy.interval_ms)
        while not self._stop.wait(tick_s):
            self._sequencer.seal(overdue_only=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
