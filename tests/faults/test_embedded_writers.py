"""Fault tests on the embedded store: concurrent writer processes and a writer killed with SIGKILL mid-run.

Several processes may open one data dir (guarantee 3): their appends to one stream form one valid chain, a
race on `expected_seq` has exactly one winner, and a `kill -9` loses nothing that was acknowledged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.config import Settings
from ledger.sdk import Ledger

WRITER = str(Path(__file__).with_name("writer_process.py"))


def start_writer(
    settings: Settings, mission: str, batches: int, batch_size: int, *options: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            WRITER,
            str(settings.data_dir),
            str(settings.key_dir),
            mission,
            str(batches),
            str(batch_size),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_appending_to_one_stream_make_one_valid_chain(settings: Settings, tmp_path: Path) -> None:
    with Ledger.open(settings):
        pass  # create the store before the race
    go = tmp_path / "go"
    writers = [start_writer(settings, "m-shared", 20, 10, "--wait-for", str(go)) for _ in range(2)]
    go.touch()
    outputs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), outputs
    receipts = [line.split() for out, _ in outputs for line in out.splitlines()]
    assert len(receipts) == 400 and all(r[0] == "receipt" for r in receipts)
    assert sorted(int(r[2]) for r in receipts) == list(range(1, 401))  # no seq given twice: no fork
    with Ledger.open(settings, read_only=True) as ledger:
        report = ledger.verify()
    assert (report.events, report.streams, report.unsealed) == (400, 1, 0)


def test_expected_seq_race_has_exactly_one_winner(settings: Settings, tmp_path: Path) -> None:
    with Ledger.open(settings):
        pass
    go = tmp_path / "go"
    writers = [start_writer(settings, "m-race", 1, 1, "--expected-seq", "0", "--wait-for", str(go)) for _ in range(4)]
    go.touch()
    lines = [w.communicate(timeout=120)[0].strip() for w in writers]
    assert sorted(line.split()[0] for line in lines) == ["receipt", "refused", "refused", "refused"], lines
    assert all(line == "refused stale_expected_seq" for line in lines if line.startswith("refused"))
    with Ledger.open(settings, read_only=True) as ledger:
        assert ledger.log.size(0) == 1
        assert sorted(r.reason_code for r in ledger.rejections()) == ["stale_expected_seq"] * 3


def test_kill_9_mid_run_loses_no_acknowledged_event(settings: Settings) -> None:
    with Ledger.open(settings):
        pass
    writer = start_writer(settings, "m-kill", 100_000, 25)
    acknowledged: list[list[str]] = []
    assert writer.stdout is not None
    deadline = time.monotonic() + 60
    while len(acknowledged) < 500 and time.monotonic() < deadline:
        acknowledged.append(writer.stdout.readline().split())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    with Ledger.open(settings, read_only=True) as ledger:
        report = ledger.verify(allow_unsealed=True)  # no clean shutdown: the tail is not yet sealed
        stored = {record.envelope()["event_id"]: record.envelope() for record in ledger.records()}
    assert report.events >= 500 and report.unsealed > 0
    for _, event_id, seq, sealed_hash in acknowledged:
        assert stored[event_id]["hash"] == sealed_hash and stored[event_id]["seq"] == int(seq)
    with Ledger.open(settings) as ledger:
        ledger.seal()  # a restarted sequencer seals what the dead one left
    with Ledger.open(settings, read_only=True) as ledger:
        assert ledger.verify().unsealed == 0
