"""`agent-ledger demo --kafka`: the same story on a real Kafka broker, proven from the Kafka log itself, and a
rerun starts a fresh log in fresh topics. Skipped unless AGENT_LEDGER_KAFKA names a broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from demo_expectations import EXPECTED_REFUSALS
from kafka_support import BOOTSTRAP, requires_kafka

from ledger.bundle.verify import verify_bundle
from ledger.config import Settings
from ledger.demo import run_demo
from ledger.keys import load_verifier
from ledger.log.kafka_topics import Topics
from ledger.sdk import Ledger

pytestmark = requires_kafka


def test_the_story_runs_on_kafka_and_every_beat_is_in_the_kafka_log(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    summary = run_demo(data_dir, kafka=BOOTSTRAP)
    assert summary.surprises == []
    assert [beat.number for beat in summary.beats if not beat.proven] == []
    assert summary.verified and summary.engine == "kafka"
    assert {refusal.reason for refusal in summary.refusals} == EXPECTED_REFUSALS
    assert sum(summary.refusals_recorded.values()) == len(summary.refusals)
    earned, narrowed, refused = summary.earned, summary.narrowed, summary.refused_close
    change, bundle = summary.policy_change, summary.bundle
    assert earned and narrowed and refused and change and bundle and refused.closed_event_id
    settings = Settings(data_dir=data_dir, keys_dir=data_dir / "keys")
    pinned = load_verifier(settings.verifier_key_path)
    with Ledger.open(settings, read_only=True, kafka=BOOTSTRAP, topics=Topics(summary.topic_prefix)) as ledger:
        assert ledger.log.log_id == summary.log_id and summary.topic_prefix.rstrip(".") in summary.log_id
        sizes = [ledger.log.size(partition) for partition in range(ledger.log.partition_count)]
        assert len(sizes) == 2 and all(sizes), sizes  # a partitioned log, every partition its own Merkle tree
        assert ledger.verify(pinned).events == sum(sizes) == summary.events
        widened = ledger.log.find_event(earned.tenant, earned.event_id)
        assert widened and widened["type"] == "scope.widened" and widened["payload"]["level"] == "production"
        shrunk = ledger.log.find_event(narrowed.tenant, narrowed.event_id)
        assert shrunk and shrunk["type"] == "scope.narrowed"
        refusal = ledger.log.find_event(refused.tenant, refused.refusal_event_id)
        closed = ledger.log.find_event(refused.tenant, refused.closed_event_id)
        assert refusal and refusal["type"] == "mission.close.refused" and refusal["payload"]["missing_criteria"]
        assert closed and closed["type"] == "mission.closed" and closed["actor"]["kind"] == "human"
        assert closed["log"]["index"] > refusal["log"]["index"]  # one stream, so one partition: log order holds
        activation = f"policy-activated:{change.rebuild.rebuild_id}"
        for tenant in ("acme", "globex"):
            activated = ledger.log.find_event(tenant, activation)
            assert activated and activated["payload"]["policy_id"] == change.policy_id
    assert summary.audit and summary.audit.found[0]["mission_id"] == refused.mission_id
    report = verify_bundle(bundle.path.read_bytes(), pinned)  # offline: only the bytes and the pinned key
    assert report.log_id == summary.log_id and report.selection["mission"] == refused.mission_id
    assert bundle.tampered


def _agent_ledger() -> list[str]:
    script = Path(sys.executable).parent / "agent-ledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli.main"]


def test_the_demo_command_reruns_on_kafka_in_fresh_topics(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {**os.environ, "AGENT_LEDGER_KAFKA": BOOTSTRAP}  # the environment variable, not --kafka
    prefixes = []
    for _ in range(2):
        done = subprocess.run(
            [*_agent_ledger(), "demo", "--data", str(data_dir)], capture_output=True, text=True, timeout=300, env=env
        )
        assert done.returncode == 0, done.stderr + done.stdout[-3000:]
        assert f"on Kafka {BOOTSTRAP}" in done.stdout
        found = re.search(r"--topic-prefix (demo-[0-9a-f]{8}\.)", done.stdout)
        assert found, done.stdout[-2000:]
        prefixes.append(found.group(1))
    assert prefixes[0] != prefixes[1]
