"""`agent-ledger serve --kafka` against a real broker: appends go through `ledger.intake` to a sequencer worker.

The sequencer runs in this process (as in the contract tests); the server is the real CLI process. A client
appends over HTTP and gets the receipt, then the receipt with a signed checkpoint and a proof that verifies; a
refusal comes back as the same JSON 4xx as embedded and lands in `ledger.rejected`. Skipped without a broker.
"""

from __future__ import annotations

import base64
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from api_support import TENANT, api_settings
from factories import step
from kafka_support import BOOTSTRAP, SequencerThread, fresh_topics, requires_kafka
from serve_process import ServeProcess

from ledger.apikeys import ApiKeyStore
from ledger.checkpoint import open_checkpoint
from ledger.keys import load_verifier
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.sdk import Ledger

pytestmark = requires_kafka


def test_serve_on_kafka_appends_through_the_intake_and_returns_receipts(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, every_events=1000, interval_ms=300)
    topics = fresh_topics()
    store = ApiKeyStore(settings.key_dir)
    producer = {"Authorization": f"Bearer {store.create(TENANT, 'producer')[1]}"}
    operator = {"Authorization": f"Bearer {store.create(TENANT, 'operator')[1]}"}
    sequencer = SequencerThread(settings, topics, tmp_path / "sequencer")
    server = ServeProcess(
        settings.data_dir, settings.key_dir, "--kafka", BOOTSTRAP, "--topic-prefix", topics.prefix
    ).wait_ready()
    try:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "backend": "kafka", "workers": "external"}
        events = f"{server.url}/v1/tenants/{TENANT}/events"

        appended = httpx.post(events, content=orjson.dumps(step(event_id="k-1")), headers=producer, timeout=60)
        assert appended.status_code == 201, appended.text
        batch = [step(event_id="k-2"), step(type="no.such.type")]
        outcomes = httpx.post(f"{events}/batch", content=orjson.dumps(batch), headers=producer, timeout=60).json()
        assert [o["status"] for o in outcomes["outcomes"]] == [201, 422]
        refused = httpx.post(events, content=b"{not json", headers=producer, timeout=60)
        assert refused.status_code == 400 and refused.json()["error"] == "malformed_json"

        receipt = sealed_receipt(server.url, "k-1", producer)
        assert receipt["hash"] == appended.json()["hash"]
        verifier = load_verifier(settings.verifier_key_path)
        checkpoint = open_checkpoint(receipt["checkpoint"], verifier)
        proof = [base64.b64decode(node) for node in receipt["inclusion_proof"]]
        leaf = leaf_hash(bytes.fromhex(receipt["hash"].removeprefix("sha256:")))
        verify_inclusion(leaf, receipt["log"]["index"], checkpoint.size, proof, checkpoint.root_hash)

        metrics = httpx.get(f"{server.url}/metrics", headers=operator).text
        assert "agent_ledger_appended_events_total 2.0" in metrics
        assert 'agent_ledger_refusals_total{reason="unknown_type"} 1.0' in metrics
    finally:
        code = server.stop(signal.SIGTERM)
        sequencer.stop()
    assert code == 0, server.stderr_lines
    assert sequencer.error is None

    with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics, read_only=True) as reader:
        reasons = {rejection.reason_code for rejection in reader.rejections()}
        assert {"unknown_type", "malformed_json"} <= reasons


def sealed_receipt(url: str, event_id: str, headers: dict[str, str], timeout_s: float = 60.0) -> Any:
    """The receipt once a checkpoint covers it (the sequencer seals on its timer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = httpx.get(f"{url}/v1/tenants/{TENANT}/receipts/{event_id}", headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        if "checkpoint" in answer.json():
            return answer.json()
        assert time.monotonic() < deadline, "no checkpoint covered the event in time"
        time.sleep(0.2)
