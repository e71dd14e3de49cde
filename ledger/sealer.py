"""A background timer that seals a signed checkpoint when events have waited `interval_ms` unsealed.

The sequencer checkpoints inside a batch when one is due; this timer covers a quiet log, so no event stays
unsealed much longer than the configured interval (DESIGN: "at least every N events or T milliseconds").
It only calls `Sequencer.seal`; it never appends events.
"""

from __future__ import annotations

import threading

from ledger.sequencer import Sequencer


class Sealer:
    """Runs `sequencer.seal()` every `interval_ms` on a daemon thread until stopped."""

    def __init__(self, sequencer: Sequencer) -> None:
        self._sequencer = sequencer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-ledger-sealer", daemon=True)

    def start(self) -> Sealer:
        self._thread.start()
        return self

    def _run(self) -> None:
        interval_s = self._sequencer.checkpoint_policy.interval_ms / 1000
        while not self._stop.wait(interval_s):
            self._sequencer.seal()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
