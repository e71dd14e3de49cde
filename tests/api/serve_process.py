"""`agent-ledger serve` as a real process for tests and the HTTP benchmark: start it, find its URL, stop it.

The server is started on port 0 and announces `serving http://HOST:PORT` on stderr once the port is bound; the
helper waits for that line and for `/healthz`, and keeps draining stderr so the server never blocks on it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ANNOUNCED = re.compile(r"serving (http://\S+)")


class ServeProcess:
    """One running `agent-ledger serve`; `stderr_lines` holds what it printed so far."""

    def __init__(self, data_dir: Path, key_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "ledger.cli.main", "serve", "--data", str(data_dir), "--keys", str(key_dir)]
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_LEDGER_")}
        environment.update(env or {})
        self.process = subprocess.Popen(
            [*command, "--port", "0", *extra],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=environment,
        )
        self.stderr_lines: list[str] = []
        self._announced = threading.Event()
        self.url = ""
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            found = ANNOUNCED.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._announced.set()
        self._announced.set()  # the process ended: stop waiting

    def wait_ready(self, timeout_s: float = 60.0) -> ServeProcess:
        deadline = time.monotonic() + timeout_s
        if not self._announced.wait(timeout_s) or not self.url:
            raise AssertionError(f"serve did not announce its URL: {self.stderr_lines}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve did not become healthy: {self.stderr_lines}")

    def wait(self, timeout_s: float = 60.0) -> int:
        """The exit code, once the process ended and everything it printed was read."""
        code = self.process.wait(timeout_s)
        self._drain.join(timeout_s)
        return code

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait(timeout_s)
