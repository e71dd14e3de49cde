"""The consumer runner over the real embedded ledger: exactly-once application, resume, rebuild, lag (guarantee 7).

State and position commit together, so a failing batch leaves both where they were; a rebuild from zero gives
the same table dump as a store built in pieces across restarts. Fake backends appear only to feed the runner a
log with a gap, a repeat or a foreign event, which it must refuse rather than skip.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from factories import step

from consumers.base import Envelope
from consumers.counts import CountsView, EventCounts, query
from consumers.registry import consumer_for, known_consumers
from consumers.runner import ConsumerRunner, RunnerProgress
from consumers.store import ConsumerStore
from ledger.cli.main import main
from ledger.config import Settings
from ledger.demo import run_demo
from ledger.errors import ConfigError, UsageError, VerificationFailed
from ledger.log.base import LogBackend, LogRecord
from ledger.log.embedded import EmbeddedLog
from ledger.sdk import Ledger


def fill(ledger: Ledger, events: int, *, batch: int = 250) -> None:
    for start in range(0, events, batch):
        ledger.append_batch(
            [
                step(tenant=("acme", "globex")[n % 2], mission=f"m-{n % 7}")
                for n in range(start, min(events, start + batch))
            ]
        )


def true_counts(log: LogBackend, limit: int | None = None) -> CountsView:
    """The counts straight from the log, with no consumer in between."""
    by_type: Counter[tuple[str, str]] = Counter()
    heads: dict[tuple[str, str], int] = {}
    for partition in range(log.partition_count):
        for record in log.read(partition, 0, limit):
            envelope = record.envelope()
            by_type[(envelope["tenant"], envelope["type"])] += 1
            heads[(envelope["tenant"], envelope["stream"])] = envelope["seq"]
    return CountsView(dict(by_type), heads)


def runner_for(
    log: LogBackend, path: Path, batch_size: int = 100, consumer: EventCounts | None = None
) -> ConsumerRunner:
    return ConsumerRunner(log, consumer or EventCounts(), ConsumerStore(path), batch_size=batch_size)


class FailingCounts(EventCounts):
    """Writes half of a batch, then fails, while `fail_from` is at or below the batch's last log index."""

    def __init__(self, fail_from: int | None) -> None:
        self.fail_from = fail_from

    def apply(self, cursor: sqlite3.Cursor, events: list[Envelope]) -> None:
        if self.fail_from is not None and events[-1]["log"]["index"] >= self.fail_from:
            super().apply(cursor, events[: len(events) // 2])
            raise RuntimeError("projection crashed mid-batch")
        super().apply(cursor, events)


class HookedCounts(EventCounts):
    def __init__(self) -> None:
        self.caught_up_calls = 0

    def on_caught_up(self) -> None:
        self.caught_up_calls += 1


class SkippingLog(EmbeddedLog):
    """A broken backend that silently drops the event at one log index."""

    skip_index = 150

    def records_after(self, partition: int, position: int | None, limit: int) -> list[LogRecord]:
        return [r for r in super().records_after(partition, position, limit) if r.envelope()["log"]["index"] != 150]


class RepeatingLog(EmbeddedLog):
    """A broken backend that hands an already-applied event out again at the head of every batch."""

    def records_after(self, partition: int, position: int | None, limit: int) -> list[LogRecord]:
        records = super().records_after(partition, position, limit)
        if position is None or not records:
            return records
        (previous,) = super().records_after(partition, position - 1, 1)
        return [LogRecord(partition, records[0].position, previous.envelope_bytes), *records[1:]]


class ForeignLog(EmbeddedLog):
    """A backend whose records carry another log's id: a consumer must not fold them."""

    @property
    def log_id(self) -> str:
        return "agent-ledger.local/someone-else"

    @log_id.setter
    def log_id(self, value: str) -> None:
        pass


def test_catch_up_applies_every_event_exactly_once(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger, 1234)
    runner = runner_for(ledger.log, tmp_path / "counts.sqlite")
    assert runner.catch_up() == 1234
    assert runner.catch_up() == 0
    assert query(runner.store) == true_counts(ledger.log)
    assert query(runner.store).total == 1234
    assert runner.store.positions() == {0: ledger.log.end_position(0)}
    assert runner.store.progress()[0].log_index == 1233


def test_a_bounded_runner_stops_at_its_position_then_an_unbounded_one_goes_on(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger, 400)
    positions = [record.position for record in ledger.log.read(0)]
    stop = positions[236]  # inside a batch of 100, so the bound must cut the batch it reads
    bounded = ConsumerRunner(ledger.log, EventCounts(), ConsumerStore(tmp_path / "c.sqlite"), 100, until={0: stop})
    assert bounded.catch_up() == 237
    assert bounded.store.positions() == {0: stop} and bounded.total_lag() == 0
    assert query(bounded.store) == true_counts(ledger.log, 237)
    # A partition the bound does not name is not read at all.
    unnamed = ConsumerRunner(ledger.log, EventCounts(), ConsumerStore(tmp_path / "u.sqlite"), 100, until={})
    assert unnamed.catch_up() == 0 and unnamed.store.positions() == {}
    assert runner_for(ledger.log, tmp_path / "c.sqlite").catch_up() == 163
    assert query(bounded.store) == true_counts(ledger.log)


def test_failed_apply_moves_neither_state_nor_position(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger, 500)
    consumer = FailingCounts(fail_from=250)
    runner = runner_for(ledger.log, tmp_path / "counts.sqlite", consumer=consumer)
    with pytest.raises(RuntimeError, match="mid-batch"):
        runner.catch_up()
    before = runner.store.dump()
    assert runner.store.progress()[0].log_index == 199  # batches 0..199 committed, 200..299 half-written, rolled back
    assert query(runner.store) == true_counts(ledger.log, limit=200)
    with pytest.raises(RuntimeError):
        runner.run_once()
    assert runner.store.dump() == before
    consumer.fail_from = None
    assert runner.catch_up() == 300
    assert query(runner.store) == true_counts(ledger.log)  # the half-applied events were not counted twice


def test_resume_after_reopen_continues_exactly_where_it_stopped(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger, 300)
    path = tmp_path / "counts.sqlite"
    first = runner_for(ledger.log, path)
    assert first.run_once() + first.run_once() == 200
    first.store.close()
    fill(ledger, 120)
    second = runner_for(ledger.log, path, batch_size=33)
    assert second.store.progress()[0].log_index == 199
    assert second.catch_up() == 220
    assert query(second.store) == true_counts(ledger.log)


def test_rebuild_into_a_fresh_store_gives_an_identical_dump(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    run_demo(data)  # a realistic mix of tenants, streams and event types
    with Ledger.open(Settings(data_dir=data, keys_dir=data / "keys"), create=False, read_only=True) as ledger:
        log = ledger.log
        pieces = runner_for(log, tmp_path / "pieces.sqlite", batch_size=97)
        for _ in range(5):
            pieces.run_once()
        pieces.store.close()
        pieces = runner_for(log, tmp_path / "pieces.sqlite", batch_size=1000)
        pieces.catch_up()
        rebuilt = runner_for(log, tmp_path / "rebuilt.sqlite", batch_size=4096)
        rebuilt.catch_up()
        assert pieces.store.dump() == rebuilt.store.dump()
        assert query(rebuilt.store) == true_counts(log)
        assert len(query(rebuilt.store).by_type) > 10


def test_a_gap_in_log_index_is_refused_never_skipped(ledger: Ledger, tmp_path: Path, settings: Settings) -> None:
    fill(ledger, 300)
    runner = runner_for(SkippingLog(settings.data_dir, create=False), tmp_path / "counts.sqlite")
    with pytest.raises(VerificationFailed, match=r"partition 0 position \d+: gap in the log, log index 150 missing"):
        runner.catch_up()
    assert runner.store.progress()[0].log_index == 99  # the batch holding the gap applied nothing
    assert query(runner.store).total == 100


def test_a_repeated_event_is_refused_never_counted_twice(ledger: Ledger, tmp_path: Path, settings: Settings) -> None:
    fill(ledger, 150)
    runner = runner_for(RepeatingLog(settings.data_dir, create=False), tmp_path / "counts.sqlite")
    with pytest.raises(VerificationFailed, match="log index 99 where 100 was expected"):
        runner.catch_up()
    assert query(runner.store).total == 100


def test_events_of_another_log_are_refused(ledger: Ledger, tmp_path: Path, settings: Settings) -> None:
    fill(ledger, 10)
    runner = runner_for(ForeignLog(settings.data_dir, create=False), tmp_path / "counts.sqlite")
    with pytest.raises(VerificationFailed, match=r"event belongs to agent-ledger\.local/"):
        runner.catch_up()
    assert query(runner.store).total == 0


def test_a_store_refuses_another_log_consumer_or_version(ledger: Ledger, tmp_path: Path, settings: Settings) -> None:
    fill(ledger, 10)
    path = tmp_path / "counts.sqlite"
    runner_for(ledger.log, path).store.close()
    with pytest.raises(
        ConfigError, match=r"was built from log agent-ledger\.local/\w+, not agent-ledger\.local/someone"
    ):
        runner_for(ForeignLog(settings.data_dir, create=False), path)

    class CountsV2(EventCounts):
        version = 2

    with pytest.raises(ConfigError, match="built by counts v1, this is v2"):
        runner_for(ledger.log, path, consumer=CountsV2())

    class Other(EventCounts):
        name = "other"

    with pytest.raises(ConfigError, match="belongs to consumer 'counts', not 'other'"):
        runner_for(ledger.log, path, consumer=Other())


def test_counts_refuses_a_stream_that_does_not_continue_its_head(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger, 60)
    events = [record.envelope() for record in ledger.records()]
    chain = [e for e in events if (e["tenant"], e["stream"]) == (events[0]["tenant"], events[0]["stream"])]
    store = ConsumerStore(tmp_path / "counts.sqlite")
    store.prepare(EventCounts(), ledger.log.log_id)
    with pytest.raises(VerificationFailed, match=r"is at seq 1, but event .* has seq 3"), store.transaction() as cursor:
        EventCounts().apply(cursor, [chain[0], chain[2]])
    forked = {**chain[1], "prev_hash": "sha256:" + "1" * 64}
    with pytest.raises(VerificationFailed, match="does not link to its head"), store.transaction() as cursor:
        EventCounts().apply(cursor, [chain[0], forked])
    assert query(store).total == 0


def test_lag_counts_the_events_not_yet_applied(ledger: Ledger, tmp_path: Path) -> None:
    runner = runner_for(ledger.log, tmp_path / "counts.sqlite")
    assert runner.lag() == {0: 0}  # an empty log
    fill(ledger, 250)
    assert runner.lag() == {0: 250}
    runner.run_once()
    assert runner.lag() == {0: 150}
    runner.catch_up()
    assert (runner.lag(), runner.total_lag()) == ({0: 0}, 0)
    fill(ledger, 10)
    assert runner.total_lag() == 10


def test_progress_is_reported_and_the_hook_fires_on_arrival(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger, 450)
    reports: list[RunnerProgress] = []
    consumer = HookedCounts()
    runner = runner_for(ledger.log, tmp_path / "counts.sqlite", consumer=consumer)
    runner.on_progress = reports.append
    runner.catch_up()
    assert [(r.applied, r.total_lag, r.caught_up) for r in reports] == [
        (100, 350, False),
        (200, 250, False),
        (300, 150, False),
        (400, 50, False),
        (450, 0, False),
        (450, 0, True),
    ]
    assert consumer.caught_up_calls == 1
    runner.catch_up()
    assert consumer.caught_up_calls == 1  # nothing new: no second arrival
    fill(ledger, 5)
    runner.catch_up()
    assert consumer.caught_up_calls == 2


def test_run_follows_new_events_until_stopped(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger, 50)
    runner = runner_for(ledger.log, tmp_path / "counts.sqlite")
    stop = threading.Event()
    applied: list[int] = []
    thread = threading.Thread(target=lambda: applied.append(runner.run(stop, poll_interval_s=0.01)))
    thread.start()
    try:
        fill(ledger, 70)
        deadline = time.monotonic() + 10
        while runner.total_lag() or query(runner.store).total < 120:
            assert time.monotonic() < deadline, "the runner did not follow the log"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert applied == [120]
    assert query(runner.store) == true_counts(ledger.log)


def test_registry_knows_counts_and_names_the_known_on_a_typo() -> None:
    assert "counts" in known_consumers()
    assert isinstance(consumer_for("counts"), EventCounts)
    with pytest.raises(UsageError, match=r"unknown consumer 'cuonts' \(known: .*counts"):
        consumer_for("cuonts")


def test_cli_consume_once_prints_one_summary_line(
    ledger: Ledger, settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENT_LEDGER_KAFKA", raising=False)
    fill(ledger, 120)
    args = ["consume", "counts", "--data", str(settings.data_dir), "--batch-size", "50", "--once"]
    assert main(args) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("counts: applied 120 events; positions p0=120 (log index 119); lag 0; store ")
    with ConsumerStore(settings.data_dir / "consumers" / "counts.sqlite") as store:
        assert query(store) == true_counts(ledger.log)
    assert main([*args, "--state", str(settings.data_dir / "elsewhere")]) == 0
    assert (settings.data_dir / "elsewhere" / "counts.sqlite").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["consume", "nope", "--once"], "unknown consumer 'nope' (known: audit, counts"),
        (["consume", "counts", "--once", "--kafka", "127.0.0.1:1"], "cannot reach Kafka at 127.0.0.1:1"),
        (["consume", "counts", "--once", "--batch-size", "0"], "must be positive"),
    ],
)
def test_cli_consume_refuses_bad_usage_with_one_line(
    argv: list[str],
    message: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AGENT_LEDGER_KAFKA", raising=False)
    assert main([*argv, "--data", str(settings.data_dir)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line
