"""Fault tests against a real Kafka broker: kill -9, a forced rebalance, a zombie sequencer, a broker restart.

Each test really faults a running system (SIGKILL / SIGSTOP of `agent-ledger sequencer` processes, a new owner
fencing the old one, a restart of a broker of its own) while producers keep sending through `IntakeClient`, then
proves over the Kafka log that every acknowledged event is stored exactly once as acknowledged, every submission
has exactly one event, and `verify_log` passes (DESIGN guarantees 2, 3, 4 and 6).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import make_settings
from factories import step
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka_support import BOOTSTRAP, fresh_topics, requires_kafka

from ledger.config import Settings
from ledger.errors import DuplicateEventId
from ledger.keys import load_signer, load_verifier
from ledger.log.kafka import KafkaLog, partition_of, read_partition, reader, stream_key
from ledger.log.kafka_intake import IntakeClient
from ledger.log.kafka_sequencer import KafkaSequencer, is_fenced
from ledger.log.kafka_topics import TopicPlan, Topics, ensure_topics
from ledger.sequencer import CheckpointPolicy, Outcome
from ledger.verify import VerifyReport, verify_log
from schemas.envelope import Receipt

pytestmark = requires_kafka

REPO = Path(__file__).resolve().parents[2]
KAFKA_LOCAL = REPO / "scripts" / "kafka-local"

# The worker has no knob for its consumer-group timeouts, and kafka-python's default session timeout (45 s) is how
# long a killed or frozen member keeps its partitions. The sequencer processes run the real CLI entry point with the
# client default lowered to the broker's minimum (6 s), so a failover takes seconds, not most of a minute.
SEQUENCER_MAIN = (
    "import sys, kafka\n"
    "kafka.KafkaConsumer.DEFAULT_CONFIG.update(session_timeout_ms=6000, heartbeat_interval_ms=1000)\n"
    "from ledger.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


# -- sequencer processes -------------------------------------------------------------------------------


class SequencerProcess:
    """A real `agent-ledger sequencer` process; its stderr log goes to a file the test reads."""

    def __init__(self, bootstrap: str, topics: Topics, settings: Settings, state_dir: Path, name: str) -> None:
        self.name = name
        self.log_path = settings.data_dir.parent / f"sequencer-{name}.log"
        env = {**os.environ, "AGENT_LEDGER_CHECKPOINT_MS": "300", "AGENT_LEDGER_CHECKPOINT_EVERY": "100"}
        command = [sys.executable, "-c", SEQUENCER_MAIN, "sequencer", "--kafka", bootstrap]
        command += ["--topic-prefix", topics.prefix, "--keys", str(settings.key_dir)]
        command += ["--data", str(settings.data_dir), "--state", str(state_dir)]
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def taken(self) -> set[int]:
        return {int(p) for p in re.findall(r"took partition (\d+)", self.output())}

    def wait_taken(self, partitions: set[int], timeout_s: float = 60.0) -> None:
        wait_until(lambda: partitions <= self.taken(), f"sequencer {self.name} to take {partitions}", timeout_s, self)

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, signum: signal.Signals) -> None:
        os.kill(self.process.pid, signum)

    def kill(self) -> None:
        self.send(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        """SIGTERM: a clean stop that seals what this instance owns; it must exit 0."""
        assert self.alive(), f"sequencer {self.name} died early:\n{self.tail()}"
        self.send(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sequencer {self.name} did not stop on SIGTERM:\n{self.tail()}") from None
        assert self.process.returncode == 0, f"sequencer {self.name} exited {self.process.returncode}:\n{self.tail()}"

    def tail(self, lines: int = 40) -> str:
        """The last lines of its log, without kafka-python's event-loop timing noise."""
        return "\n".join([line for line in self.output().splitlines() if "selector Task" not in line][-lines:])

    def cleanup(self) -> None:
        if self.alive():
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def sequencers() -> Iterator[list[SequencerProcess]]:
    """The processes a test starts; whatever is still running at the end is killed."""
    started: list[SequencerProcess] = []
    yield started
    for process in started:
        process.cleanup()


def start_sequencer(
    started: list[SequencerProcess], bootstrap: str, topics: Topics, settings: Settings, name: str, state: str
) -> SequencerProcess:
    process = SequencerProcess(bootstrap, topics, settings, settings.data_dir.parent / state, name)
    started.append(process)
    return process


def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float, sequencer: SequencerProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\nlast log lines of sequencer {sequencer.name}:\n{sequencer.tail()}" if sequencer else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(0.05)


# -- producers -----------------------------------------------------------------------------------------


def missions_covering(partitions: int, per_partition: int) -> list[str]:
    """Mission names whose streams fall `per_partition` to each log partition, so every partition has traffic."""
    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for number in range(10_000):
        mission = f"m-{number}"
        owner = chosen[partition_of(stream_key("acme", f"mission/{mission}"), partitions)]
        if len(owner) < per_partition:
            owner.append(mission)
        if all(len(names) == per_partition for names in chosen.values()):
            break
    return [mission for names in chosen.values() for mission in names]


class Traffic:
    """A producer thread that keeps submitting through `IntakeClient.submit` and records what was acknowledged.

    A submission is acknowledged when its receipt arrives, or (for a resend) the duplicate refusal carrying the
    original receipt. What stays unacknowledged for `resend_after_s` (a ReceiptTimeout) is resent: the very same
    submission, same event_id and content. Every answer for one event_id must name the same event.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        settings: Settings,
        *,
        streams_per_partition: int = 2,
        batch: int = 10,
        in_flight: int = 100,
        resend_after_s: float = 2.0,
    ) -> None:
        signer = load_signer(settings.private_key_path)  # what the SDK signs intake records with by default
        self.client = IntakeClient(bootstrap, topics=topics, timeout_s=resend_after_s, signer=signer)
        self.missions = missions_covering(self.client.partition_count, streams_per_partition)
        self.batch, self.in_flight, self.resend_after_s = batch, in_flight, resend_after_s
        self.sent: dict[str, dict[str, Any]] = {}
        self.first_sent_at: dict[str, float] = {}
        self.receipts: dict[str, Receipt] = {}
        self.disagreements: list[str] = []
        self.refusals: list[str] = []
        self.resends = 0
        self.duplicates = 0  # answers to a resend: the original receipt
        self._futures: dict[str, list[Future[Outcome]]] = {}
        self._last_sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._no_more = threading.Event()
        self._abandon = threading.Event()
        self._closed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()

    # the producer thread

    def _run(self) -> None:
        try:
            while not self._abandon.is_set():
                now = time.monotonic()
                outstanding = self.outstanding()
                if self._no_more.is_set() and not outstanding:
                    return
                if not self._no_more.is_set() and len(outstanding) < self.in_flight:
                    for _ in range(self.batch):
                        self._send_new()
                for event_id in outstanding:
                    if now - self._last_sent[event_id] > self.resend_after_s:
                        self._submit(event_id)
                        self.resends += 1
                time.sleep(0.02)
                self._harvest()
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def _send_new(self) -> None:
        number = len(self.sent)
        event_id = f"ev-{number:06d}"
        self.sent[event_id] = step(mission=self.missions[number % len(self.missions)], event_id=event_id)
        self.first_sent_at[event_id] = time.monotonic()
        self._submit(event_id)

    def _submit(self, event_id: str) -> None:
        future = self.client.submit(self.sent[event_id])
        with self._lock:
            self._futures.setdefault(event_id, []).append(future)
            self._last_sent[event_id] = time.monotonic()

    def _harvest(self) -> None:
        with self._lock:
            answered = [(event_id, f) for event_id, fs in self._futures.items() for f in fs if f.done()]
            for event_id, future in answered:
                self._futures[event_id].remove(future)
        for event_id, future in answered:
            outcome = future.result()
            if isinstance(outcome, Receipt):
                receipt = outcome
            elif isinstance(outcome, DuplicateEventId):
                receipt = Receipt.model_validate(outcome.original_receipt)
                self.duplicates += 1
            else:
                self.refusals.append(f"{event_id}: {outcome.reason_code}: {outcome}")
                continue
            with self._lock:
                known = self.receipts.get(event_id)
                if known is None:
                    self.receipts[event_id] = receipt
                elif (known.hash, known.seq, known.log) != (receipt.hash, receipt.seq, receipt.log):
                    self.disagreements.append(f"{event_id}: {known} then {receipt}")

    # the test's side

    def outstanding(self) -> list[str]:
        with self._lock:
            return [event_id for event_id in self._futures if event_id not in self.receipts]

    def acknowledged(self) -> dict[str, Receipt]:
        with self._lock:
            return dict(self.receipts)

    def acknowledged_since(self, moment: float) -> dict[str, Receipt]:
        """Receipts of submissions first sent after `moment` (so sequenced after it)."""
        return {eid: r for eid, r in self.acknowledged().items() if self.first_sent_at[eid] > moment}

    def wait_acknowledged(self, count: int, *, since: float = 0.0, timeout_s: float = 60.0) -> None:
        wait_until(lambda: len(self.acknowledged_since(since)) >= count, f"{count} receipts", timeout_s)
        assert self.error is None, self.error

    def finish(self, timeout_s: float = 90.0) -> None:
        """Stop sending new submissions; keep resending until every one sent is acknowledged."""
        self._no_more.set()
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(timeout=10)
            raise AssertionError(f"{len(self.outstanding())} submissions never acknowledged: {self.outstanding()[:5]}")
        self.client.close()
        self._closed = True
        assert self.error is None, self.error
        assert not self.refusals, self.refusals[:5]
        assert not self.disagreements, self.disagreements[:5]
        assert set(self.receipts) == set(self.sent)

    def abandon(self) -> None:
        """Teardown: stop the thread and close the client, whatever state the test left them in."""
        self._abandon.set()
        self._no_more.set()
        self._thread.join(timeout=10)
        if not self._closed:
            self.client.close()


@pytest.fixture
def traffic_runs() -> Iterator[list[Traffic]]:
    running: list[Traffic] = []
    yield running
    for traffic in running:
        traffic.abandon()


# -- what the log must look like afterwards ------------------------------------------------------------


def assert_exactly_once_and_verified(
    bootstrap: str, topics: Topics, settings: Settings, traffic: Traffic
) -> tuple[VerifyReport, Counter[str]]:
    """Every submission sent has exactly one event, each acknowledged one as acknowledged; verify passes."""
    log = KafkaLog(bootstrap, topics=topics)
    try:
        stored = [record.envelope() for p in range(log.partition_count) for record in log.read(p)]
        report = verify_log(log, load_verifier(settings.verifier_key_path))
    finally:
        log.close()
    counts = Counter(envelope["event_id"] for envelope in stored)
    assert not {eid: n for eid, n in counts.items() if n > 1}, "an event_id was appended twice"
    assert set(counts) == set(traffic.sent), "the log and the submissions differ"
    by_id = {envelope["event_id"]: envelope for envelope in stored}
    for event_id, receipt in traffic.receipts.items():
        stored_event = by_id[event_id]
        assert (stored_event["hash"], stored_event["seq"], stored_event["log"]) == (
            receipt.hash,
            receipt.seq,
            receipt.log.model_dump(),
        ), event_id
    assert (report.events, report.unsealed) == (len(traffic.sent), 0)
    assert report.streams == len(traffic.missions)
    return report, counts


class TransactionWatch:
    """Compares the high watermark with the last stable offset of `ledger.events`: a gap is an open transaction."""

    def __init__(self, bootstrap: str, topics: Topics, partitions: int) -> None:
        self._stable = reader(bootstrap)
        self._high = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted")
        self._partitions = [TopicPartition(topics.events, p) for p in range(partitions)]

    def open_transactions(self) -> list[int]:
        stable = self._stable.end_offsets(self._partitions)
        high = self._high.end_offsets(self._partitions)
        return [tp.partition for tp in self._partitions if high[tp] > stable[tp]]

    def close(self) -> None:
        self._stable.close()
        self._high.close()


def freeze_inside_a_transaction(sequencer: SequencerProcess, watch: TransactionWatch, timeout_s: float = 30) -> None:
    """SIGSTOP the sequencer while one of its transactions is open, and confirm it stays open while frozen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if watch.open_transactions():
            sequencer.send(signal.SIGSTOP)
            time.sleep(0.5)  # frozen: a transaction still open now stays open until someone fences it
            if watch.open_transactions():
                return
            sequencer.send(signal.SIGCONT)
    raise AssertionError(f"never caught sequencer {sequencer.name} inside an open transaction")


def aborted_event_records(bootstrap: str, topics: Topics, partitions: int) -> list[dict[str, Any]]:
    """Events that reached `ledger.events` inside a transaction that was never committed."""
    committed_reader = reader(bootstrap)
    everything = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted")
    try:
        aborted = []
        for p in range(partitions):
            committed = {r.offset for r in read_partition(committed_reader, topics.events, p)}
            aborted += [
                orjson.loads(r.value) for r in read_partition(everything, topics.events, p) if r.offset not in committed
            ]
        return aborted
    finally:
        committed_reader.close()
        everything.close()


# -- 1. kill -9 ----------------------------------------------------------------------------------------


def test_kill_9_mid_transaction_loses_nothing_acknowledged_and_appends_nothing_twice(
    tmp_path: Path, sequencers: list[SequencerProcess], traffic_runs: list[Traffic]
) -> None:
    settings = make_settings(tmp_path)
    topics = fresh_topics(partitions=2)
    first = start_sequencer(sequencers, BOOTSTRAP, topics, settings, "first", "state")
    traffic = Traffic(BOOTSTRAP, topics, settings)
    traffic_runs.append(traffic)
    traffic.wait_acknowledged(150)

    watch = TransactionWatch(BOOTSTRAP, topics, 2)
    freeze_inside_a_transaction(first, watch)
    first.kill()  # kill -9 while a batch transaction is open
    watch.close()
    acknowledged_before = traffic.acknowledged()
    time.sleep(1.0)  # producers keep sending into a ledger with no sequencer
    assert traffic.outstanding(), "the kill should leave submissions unacknowledged"

    restarted = start_sequencer(sequencers, BOOTSTRAP, topics, settings, "restarted", "state")
    restarted.wait_taken({0, 1})
    traffic.wait_acknowledged(150, since=time.monotonic())
    traffic.finish()
    restarted.stop()

    report, counts = assert_exactly_once_and_verified(BOOTSTRAP, topics, settings, traffic)
    assert all(traffic.receipts[eid] == receipt for eid, receipt in acknowledged_before.items())
    aborted = aborted_event_records(BOOTSTRAP, topics, 2)
    assert aborted, "the killed transaction left no records: the kill did not hit an open batch"
    assert all(counts[event["event_id"]] == 1 for event in aborted)  # re-sequenced once by the restarted one
    assert traffic.resends > 0  # submissions the dead sequencer never answered were resent...
    assert traffic.duplicates > 0  # ...and the copies that reached the log second came back as the original receipt
    assert report.checkpoints > 0


# -- 2. rebalance --------------------------------------------------------------------------------------


def test_second_sequencer_joining_and_first_leaving_keeps_every_partition_sequenced(
    tmp_path: Path, sequencers: list[SequencerProcess], traffic_runs: list[Traffic]
) -> None:
    settings = make_settings(tmp_path)
    topics = fresh_topics(partitions=4)
    first = start_sequencer(sequencers, BOOTSTRAP, topics, settings, "first", "state-first")
    traffic = Traffic(BOOTSTRAP, topics, settings)
    traffic_runs.append(traffic)
    traffic.wait_acknowledged(100)
    assert first.taken() == {0, 1, 2, 3}

    second = start_sequencer(sequencers, BOOTSTRAP, topics, settings, "second", "state-second")
    wait_until(lambda: bool(second.taken()), "the second sequencer to take a partition", 60, second)
    shared = time.monotonic()
    traffic.wait_acknowledged(100, since=shared)
    assert first.alive() and 0 < len(second.taken()) < 4  # the group split the partitions

    first.stop()  # leaves the group: a second rebalance hands everything to the second
    second.wait_taken({0, 1, 2, 3})
    alone = time.monotonic()
    wait_until(
        lambda: {r.log.partition for r in traffic.acknowledged_since(alone).values()} == {0, 1, 2, 3},
        "receipts on every partition after the first sequencer left",
        60,
        second,
    )
    traffic.wait_acknowledged(100, since=alone)
    traffic.finish()
    second.stop()

    assert_exactly_once_and_verified(BOOTSTRAP, topics, settings, traffic)


# -- 3. zombie -----------------------------------------------------------------------------------------


def test_frozen_sequencer_resumed_after_takeover_cannot_append(
    tmp_path: Path, sequencers: list[SequencerProcess], traffic_runs: list[Traffic]
) -> None:
    settings = make_settings(tmp_path)
    topics = fresh_topics(partitions=2)
    first = start_sequencer(sequencers, BOOTSTRAP, topics, settings, "first", "state-first")
    traffic = Traffic(BOOTSTRAP, topics, settings)
    traffic_runs.append(traffic)
    traffic.wait_acknowledged(100)

    watch = TransactionWatch(BOOTSTRAP, topics, 2)
    freeze_inside_a_transaction(first, watch)  # SIGSTOP with a batch open: a zombie to be
    watch.close()
    second = start_sequencer(sequencers, BOOTSTRAP, topics, settings, "second", "state-second")
    second.wait_taken({0, 1})  # after the frozen member's session timed out
    taken_over = time.monotonic()
    traffic.wait_acknowledged(100, since=taken_over)
    assert {r.log.partition for r in traffic.acknowledged_since(taken_over).values()} == {0, 1}
    assert first.alive()

    takes_before = first.output().count("took partition")
    first.send(signal.SIGCONT)  # the zombie wakes up inside its transaction and tries to commit it
    # Its commit fails: "fenced", or (see the xfail test below) an error the worker takes for an ambiguous one.
    wait_until(
        lambda: "fenced by a newer owner" in first.output() or "recreating the producer" in first.output(),
        "the zombie's commit to fail",
        60,
        first,
    )
    # ...then it rejoins the group as a new member and is given partitions again, legitimately this time
    wait_until(lambda: first.output().count("took partition") > takes_before, "the first to rejoin", 60, first)
    rejoined = time.monotonic()
    traffic.wait_acknowledged(150, since=rejoined)
    assert {r.log.partition for r in traffic.acknowledged_since(rejoined).values()} == {0, 1}
    traffic.finish()
    first.stop()
    second.stop()

    _, counts = assert_exactly_once_and_verified(BOOTSTRAP, topics, settings, traffic)
    zombie_writes = aborted_event_records(BOOTSTRAP, topics, 2)
    assert zombie_writes, "the frozen transaction's records should be in the topic, aborted"
    committed_hashes = {r.hash for r in traffic.receipts.values()}
    assert not {event["hash"] for event in zombie_writes} & committed_hashes
    assert all(counts[event["event_id"]] == 1 for event in zombie_writes)


def test_old_owner_is_fenced_once_a_new_owner_initialised_its_producer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    topics = fresh_topics(partitions=1)
    signer = load_signer(settings.private_key_path)
    policy = CheckpointPolicy(every_events=1000, interval_ms=3_600_000)
    intake_partition = TopicPartition(topics.intake, 0)
    old = KafkaSequencer(BOOTSTRAP, signer, tmp_path / "old", topics=topics, checkpoint_policy=policy)
    new: KafkaSequencer | None = None
    try:
        old.on_partitions_assigned([intake_partition])  # the group gives partition 0 to the old instance
        old.sequencer.sequence([step() for _ in range(5)], partition=0)  # sealed in its transaction: 5
        old.sequencer.sequence([step() for _ in range(2)], partition=0)  # and 7
        new = KafkaSequencer(BOOTSTRAP, signer, tmp_path / "new", topics=topics, checkpoint_policy=policy)
        new.on_partitions_assigned([intake_partition])  # ...then to the new one: init_transactions fences the old
        sealed = new.sequencer.sequence([step() for _ in range(3)], partition=0)
        assert [event["seq"] for event in sealed if isinstance(event, dict)] == [8, 9, 10]

        with pytest.raises(KafkaError, match="ProducerFenced") as fenced:
            old.sequencer.sequence([step(event_id="zombie-append")], partition=0)
        assert is_fenced(fenced.value)  # so the worker gives the partition up instead of fencing back
        assert old.owned(0).replica.size(0) == 7  # the zombie's replica did not move either
        new.sequencer.seal([0])
    finally:
        old.close()
        if new is not None:
            new.close()

    log = KafkaLog(BOOTSTRAP, topics=topics)
    try:
        stored = [record.envelope() for record in log.read(0)]
        checkpoints = [checkpoint.tree_size for checkpoint in log.checkpoints(0)]
        report = verify_log(log, signer.verifier())
    finally:
        log.close()
    assert [e["seq"] for e in stored] == list(range(1, 11))
    assert "zombie-append" not in {e["event_id"] for e in stored}
    assert checkpoints == [5, 7, 10]  # every events transaction is sealed; the zombie's size-8 one never landed
    assert (report.events, report.unsealed) == (10, 0)
    assert "zombie-append" not in {e["event_id"] for e in aborted_event_records(BOOTSTRAP, topics, 1)}


def test_zombie_paused_between_its_sends_and_its_commit_is_recognised_as_fenced(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    topics = fresh_topics(partitions=1)
    signer = load_signer(settings.private_key_path)
    intake_partition = TopicPartition(topics.intake, 0)
    old = KafkaSequencer(BOOTSTRAP, signer, tmp_path / "old", topics=topics)
    new = KafkaSequencer(BOOTSTRAP, signer, tmp_path / "new", topics=topics)
    try:
        old.on_partitions_assigned([intake_partition])
        old.sequencer.sequence([step() for _ in range(5)], partition=0)
        new.on_partitions_assigned([intake_partition])  # fences the old instance
        producer = old.owned(0).producer
        commit = producer.commit_transaction

        def paused_commit(*args: Any, **kwargs: Any) -> Any:
            time.sleep(1.0)  # a GC pause, a SIGSTOP, a starved CPU: the sender thread meets the fence first
            return commit(*args, **kwargs)

        producer.commit_transaction = paused_commit
        with pytest.raises(KafkaError) as failed:
            old.sequencer.sequence([step(event_id="zombie-append")], partition=0)
        # kafka-python may report the fence as a plain KafkaError naming it; the worker must still see a fence
        # (give the partition up), not an ambiguous error (recreate the producer and fence the rightful owner).
        assert is_fenced(failed.value), repr(failed.value)
    finally:
        old.close()
        new.close()


# -- 4. broker restart ---------------------------------------------------------------------------------


def _free_port_pair() -> int:
    """A client port whose controller port (+1) is free too, and whose kafka-local state dir is unused."""
    cache = Path(os.environ.get("KAFKA_LOCAL_CACHE", REPO / ".cache" / "kafka"))
    for port in random.sample(range(19500, 19990, 2), 50):
        if (cache / f"state-{port}").exists():
            continue
        try:
            for candidate in (port, port + 1):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    pytest.skip("no free port pair for a broker of this test's own")


def kafka_local(command: str, port: int, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_LOCAL), command, "--port", str(port)], capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture(scope="module")
def own_broker() -> Iterator[str]:
    """A broker of this module's own (restarting the shared one would break every other test)."""
    if not os.access(KAFKA_LOCAL, os.X_OK) or shutil.which("bash") is None:
        pytest.skip("scripts/kafka-local cannot run here")
    port = _free_port_pair()
    started = kafka_local("start", port)
    if started.returncode != 0:
        kafka_local("clean", port)
        pytest.skip(f"scripts/kafka-local could not start a broker: {started.stderr.strip().splitlines()[-1:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        kafka_local("stop", port)
        kafka_local("clean", port)


def test_broker_restart_mid_traffic_loses_nothing_acknowledged(
    own_broker: str, tmp_path: Path, sequencers: list[SequencerProcess], traffic_runs: list[Traffic]
) -> None:
    settings = make_settings(tmp_path)
    topics = Topics(f"restart{random.randrange(1 << 30):x}.")
    ensure_topics(own_broker, TopicPlan(partitions=2), prefix=topics.prefix)
    sequencer = start_sequencer(sequencers, own_broker, topics, settings, "only", "state")
    traffic = Traffic(own_broker, topics, settings, resend_after_s=3.0)
    traffic_runs.append(traffic)
    traffic.wait_acknowledged(150)
    acknowledged_before = traffic.acknowledged()

    restarted = kafka_local("restart", int(own_broker.rsplit(":", 1)[1]))
    assert restarted.returncode == 0, restarted.stderr
    back = time.monotonic()
    traffic.wait_acknowledged(150, since=back, timeout_s=120)
    assert sequencer.alive(), f"the sequencer died with the broker:\n{sequencer.tail()}"
    traffic.finish(timeout_s=120)
    sequencer.stop()

    assert_exactly_once_and_verified(own_broker, topics, settings, traffic)
    assert all(traffic.receipts[eid] == receipt for eid, receipt in acknowledged_before.items())
