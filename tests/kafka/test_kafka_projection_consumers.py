"""`agent-ledger consume mission` and `consume memory` on a real Kafka ledger, through the CLI.

A mission is closed with a tool call still pending, so the mission projection refuses the close and appends
`mission.close.refused` through `ledger.intake`; a memory item is written in the mission. After `--once` runs,
`projections show` prints both entities, the refusal is in `ledger.events` exactly once, and running again
appends nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent_events import close_requested, memory_written, mission_opened, tool_call
from conftest import make_settings
from kafka_support import BOOTSTRAP, SequencerThread, fresh_topics, requires_kafka

from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger

pytestmark = requires_kafka
CLI = [sys.executable, "-m", "ledger.cli.main"]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def events(settings: Any, topics: Any) -> list[dict[str, Any]]:
    with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics, read_only=True) as ledger:
        return [r.envelope() for p in range(ledger.log.partition_count) for r in ledger.log.read(p)]


def test_mission_and_memory_consumers_on_kafka_decide_once_and_show_their_state(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, interval_ms=200)
    topics = fresh_topics(partitions=3)
    sequencer = SequencerThread(settings, topics, tmp_path / "sequencer")
    try:
        pending = tool_call("a-1", "ci.run_tests", True)[:1]
        workload = [*mission_opened("m-1", "a-1"), *pending, memory_written("mem-1", "a-1", mission="m-1")]
        workload.append(close_requested("m-1", "a-1", event_id="close-1"))
        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics) as ledger:
            outcomes = ledger.append_batch(workload)
        assert not [o for o in outcomes if isinstance(o, SubmissionRefused)]

        where = ["--state", str(tmp_path / "state"), "--data", str(settings.data_dir), "--keys", str(settings.keys_dir)]
        where += ["--kafka", BOOTSTRAP, "--topic-prefix", topics.prefix]
        assert run("consume", "mission", "--once", *where).stdout.startswith("mission: applied ")
        assert run("consume", "memory", "--once", *where).stdout.startswith("memory: applied ")

        shown = run("projections", "show", "mission", "--tenant", "acme", "--key", "mission/m-1", *where).stdout
        mission = json.loads(shown)
        assert [r["request_event_id"] for r in mission["refusals"]] == ["close-1"]
        assert mission["status"] != "completed"
        shown = run("projections", "show", "memory", "--tenant", "acme", "--key", "memory/mem-1", *where).stdout
        item = json.loads(shown)
        assert item["memory_id"] == "mem-1" and item["write"]["mission_id"] == "m-1"

        refused = [e for e in events(settings, topics) if e["type"] == "mission.close.refused"]
        assert len(refused) == 1 and refused[0]["causation_id"] == "close-1"
        before = len(events(settings, topics))
        run("consume", "mission", "--once", *where)
        run("consume", "memory", "--once", *where)
        assert len(events(settings, topics)) == before
    finally:
        sequencer.stop()
    assert sequencer.error is None
