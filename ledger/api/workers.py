"""The in-process workers of an embedded `serve`: the sealer, and the projections and audit sink kept caught up.

Embedded, there is no separate sequencer or consumer process, so the server runs them: the sealer signs a
checkpoint once events have waited `interval_ms` (DESIGN: "at least every N events or T milliseconds"), and one
thread folds new events into the projections (under the service lock, which the state routes share) and into the
DuckDB audit store every `interval_s`. Each consumer stores state and position in one transaction (guarantee
7), so stopping at any instant loses nothing. A failing pass is logged and retried; it never stops the server.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from typing import Any

from consumers.audit.session import audit_dir
from consumers.audit.sink import audit_runner
from consumers.runner import ConsumerRunner
from ledger.api.service import Service

log = logging.getLogger("agent_ledger.api")


class EmbeddedWorkers:
    """Start once, stop once. `audit_progress` is what the audit sink held after its last pass."""

    def __init__(self, service: Service, *, interval_s: float = 0.5) -> None:
        if service.kafka:
            raise ValueError("on Kafka the sequencer and consumers run as their own processes")
        self.service = service
        self.interval_s = interval_s
        self.passes = 0
        self._audit_progress: dict[int, int] | None = None
        self._errors: dict[str, str] = {}  # last error per consumer, so a persisting one is logged once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-ledger-consumers", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def audit_progress(self) -> dict[int, int] | None:
        return self._audit_progress

    def start(self) -> EmbeddedWorkers:
        self.service.ledger.start_sealer()  # stopped, with a final checkpoint, when the ledger closes
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        with ExitStack() as stack:
            audit = self._open_audit(stack)
            while True:
                self._catch_up(audit)
                self.passes += 1
                if self._stop.wait(self.interval_s):
                    return

    def _open_audit(self, stack: ExitStack) -> ConsumerRunner[Any] | None:
        """The audit sink on `<data>/consumers/audit`; None when another process (`consume audit`) holds it."""
        directory = audit_dir(self.service.projections.state_root)
        try:
            return stack.enter_context(audit_runner(self.service.ledger.log, directory))
        except Exception as exc:
            log.warning("serve: the audit sink does not run in this process: %s", exc)
            return None

    def _catch_up(self, audit: ConsumerRunner[Any] | None) -> None:
        try:
            with self.service.lock:
                self.service.projections.catch_up()
            self._errors.pop("projections", None)
        except Exception as exc:
            self._report("projections", exc)
        if audit is None:
            return
        try:
            audit.catch_up()
            self._audit_progress = {p: stored.log_index + 1 for p, stored in audit.store.progress().items()}
            self._errors.pop("audit", None)
        except Exception as exc:
            self._report("audit", exc)

    def _report(self, consumer: str, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self._errors.get(consumer) != message:
            log.error("serve: catching up %s failed (retrying every %.1f s): %s", consumer, self.interval_s, message)
        self._errors[consumer] = message
