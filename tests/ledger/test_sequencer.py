"""Checkpoint cadence of the sequencer: every N events, every T ms (in-batch and by the quiet-log timer)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import make_settings
from factories import step

from ledger.clock import format_timestamp
from ledger.keys import load_signer
from ledger.log.embedded import EmbeddedLog
from ledger.sdk import Ledger
from ledger.sequencer import CheckpointPolicy, Sequencer


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> str:
        return format_timestamp(self.now)

    def advance(self, ms: int) -> None:
        self.now += timedelta(milliseconds=ms)


def test_checkpoint_is_due_after_interval_even_below_n_events(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    clock = FakeClock()
    log = EmbeddedLog(settings.data_dir)
    sequencer = Sequencer(
        log,
        load_signer(settings.private_key_path),
        checkpoint_policy=CheckpointPolicy(every_events=1000, interval_ms=500),
        clock=clock,
    )
    try:
        sequencer.append(step())  # the first batch of an empty log is always sealed
        clock.advance(100)
        sequencer.append(step())
        assert [cp.tree_size for cp in log.checkpoints(0)] == [1]
        clock.advance(450)
        sequencer.append(step())
        assert [cp.tree_size for cp in log.checkpoints(0)] == [1, 3]
        assert log.checkpoints(0)[-1].recorded_at == "2026-11-25T12:00:00.550000Z"
    finally:
        log.close()


def test_seal_is_a_no_op_when_nothing_is_unsealed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with Ledger.open(settings) as ledger:
        ledger.append(step())
        assert ledger.seal() == []  # the first append was sealed in its own batch
        ledger.append(step())
        assert [cp.tree_size for cp in ledger.seal()] == [2]
        assert ledger.seal() == []


def test_quiet_log_is_sealed_by_the_timer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, every_events=1000, interval_ms=100)
    with Ledger.open(settings) as ledger:
        ledger.start_sealer()
        ledger.append(step())
        ledger.append(step())  # due by neither count nor time inside this batch
        deadline = time.monotonic() + 10
        while ledger.checkpoints()[-1].tree_size < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ledger.checkpoints()[-1].tree_size == 2


def test_the_timer_seals_only_a_tail_whose_last_checkpoint_is_overdue(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    clock = FakeClock()
    log = EmbeddedLog(settings.data_dir)
    sequencer = Sequencer(
        log,
        load_signer(settings.private_key_path),
        checkpoint_policy=CheckpointPolicy(every_events=1000, interval_ms=500),
        clock=clock,
    )
    try:
        sequencer.append(step())  # checkpoint at size 1, time 0
        clock.advance(300)
        sequencer.append(step())
        assert sequencer.seal(overdue_only=True) == []  # busy: the next batch after 500 ms will carry one
        clock.advance(199)
        assert sequencer.seal(overdue_only=True) == []
        clock.advance(1)
        assert [cp.tree_size for cp in sequencer.seal(overdue_only=True)] == [2]
        assert sequencer.seal(overdue_only=True) == []  # nothing new since
    finally:
        log.close()
