"""Fault tests on consumers: a consumer process killed with SIGKILL mid-catch-up, then restarted (guarantee 7).

Over a ~21k-event demo ledger, a `counts` process is killed once inside an open transaction and once wherever
it happens to be; after a restart through `agent-ledger consume counts --once` its store equals a fresh rebuild
byte for byte and the true counts of the log: every event counted exactly once. SIGTERM stops a follower cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from factories import step

from consumers.counts import CountsView, EventCounts, query
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.config import Settings
from ledger.demo import run_demo
from ledger.log.base import LogBackend
from ledger.sdk import Ledger

CONSUMER = str(Path(__file__).with_name("consumer_process.py"))
CLI = [sys.executable, "-m", "ledger.cli.main"]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("consumer-kill") / "ledger"
    run_demo(data, scale=5)
    return data


def embedded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"AGENT_LEDGER_KAFKA", "AGENT_LEDGER_DATA"}}


def true_counts(log: LogBackend, limit: int | None = None) -> CountsView:
    by_type: Counter[tuple[str, str]] = Counter()
    heads: dict[tuple[str, str], int] = {}
    for record in log.read(0, 0, limit):
        envelope = record.envelope()
        by_type[(envelope["tenant"], envelope["type"])] += 1
        heads[(envelope["tenant"], envelope["stream"])] = envelope["seq"]
    return CountsView(dict(by_type), heads)


def start_consumer(data: Path, state: Path, batch_size: int, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, CONSUMER, str(data), str(state), str(batch_size), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=embedded_env(),
    )


def read_until(process: subprocess.Popen[str], done: str, *, committed_at_least: int = 0) -> tuple[int, str]:
    """Read `committed N` lines until a line starting with `done` (or N reaches the bound); return (N, line)."""
    assert process.stdout is not None
    committed, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline().strip()
        assert line, f"consumer exited early: {process.stderr.read() if process.stderr else ''}"
        if line.startswith("committed "):
            committed = int(line.split()[1])
            if committed_at_least and committed >= committed_at_least:
                return committed, line
        elif line.startswith(done):
            return committed, line
    raise AssertionError("the consumer made no progress")


def kill_9(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_kill_9_mid_catch_up_then_restart_counts_every_event_exactly_once(demo_data: Path, tmp_path: Path) -> None:
    state = tmp_path / "consumers" / "counts.sqlite"
    settings = Settings(data_dir=demo_data, keys_dir=demo_data / "keys")
    with Ledger.open(settings, create=False, read_only=True) as ledger:
        log = ledger.log
        size = log.size(0)
        assert size > 20_000

        # 1. Killed inside an open transaction: that batch's rows were written but never committed.
        hung = start_consumer(demo_data, state, 100, "--hang-after", "5000")
        committed, line = read_until(hung, "hanging")
        kill_9(hung)
        assert (committed, line) == (5000, "hanging 5099")
        with ConsumerStore(state) as store:
            assert store.progress()[0].log_index == 4999
            assert query(store) == true_counts(log, limit=5000)

        # 2. Killed wherever it happens to be, a few thousand events further on.
        slow = start_consumer(demo_data, state, 100, "--sleep-ms", "5")
        read_until(slow, "done", committed_at_least=3000)
        kill_9(slow)
        with ConsumerStore(state) as store:
            stood = store.progress()[0].log_index + 1
            assert 8000 <= stood < size
            assert query(store) == true_counts(log, limit=stood)  # state and position moved together

        # 3. Restarted through the CLI: it resumes after the last committed batch and finishes.
        finished = subprocess.run(
            [*CLI, "consume", "counts", "--data", str(demo_data), "--state", str(state.parent), "--once"],
            capture_output=True,
            text=True,
            env=embedded_env(),
            timeout=120,
        )
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.startswith(f"counts: applied {size - stood} events; positions p0=")
        assert f"(log index {size - 1}); lag 0;" in finished.stdout

        rebuilt = ConsumerRunner(log, EventCounts(), ConsumerStore(tmp_path / "rebuilt.sqlite"), batch_size=2048)
        assert rebuilt.catch_up() == size
        with ConsumerStore(state) as store:
            assert store.dump() == rebuilt.store.dump()
            assert query(store) == true_counts(log)
            assert query(store).total == size
        rebuilt.store.close()


def test_sigterm_stops_a_following_consumer_after_it_applied_new_events(settings: Settings) -> None:
    with Ledger.open(settings) as ledger:
        ledger.append_batch([step(mission=f"m-{n % 5}") for n in range(300)])
        follower = subprocess.Popen(
            [*CLI, "consume", "counts", "--data", str(settings.data_dir), "--poll-ms", "20", "--batch-size", "64"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=embedded_env(),
        )
        assert follower.stderr is not None
        assert "caught up, applied 300, lag 0" in follower.stderr.readline()
        ledger.append_batch([step(mission=f"m-{n % 5}") for n in range(200)])
        assert "caught up, applied 500, lag 0" in follower.stderr.readline()
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert out.startswith("counts: applied 500 events; positions p0=500 (log index 499); lag 0;")
        with ConsumerStore(settings.data_dir / "consumers" / "counts.sqlite") as store:
            assert query(store) == true_counts(ledger.log)
