"""Appending over HTTP, one event or a batch, and receipts with checkpoint and inclusion proof.

The receipt a client gets back is checked the way an outside verifier would: the checkpoint note against the
verifier key the API publishes, and the inclusion proof against the note's root.
"""

from __future__ import annotations

import base64
from pathlib import Path

from api_support import OTHER_TENANT, TENANT, api_settings, open_api
from factories import step

from ledger.checkpoint import open_checkpoint
from ledger.keys import VerifierKey
from ledger.merkle import leaf_hash, verify_inclusion


def test_append_answers_201_with_the_receipt_the_ledger_stored(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        answer = api.post_event(step(event_id="e-1"))

        assert answer.status_code == 201, answer.text
        receipt = answer.json()
        assert receipt["event_id"] == "e-1"
        assert (receipt["tenant"], receipt["stream"], receipt["seq"]) == (TENANT, "mission/m-1", 1)
        assert receipt["duplicate"] is False
        stored = api.service.ledger.receipt(TENANT, "e-1")
        assert stored is not None and stored.hash == receipt["hash"]
        assert receipt["log"] == stored.log.model_dump()


def test_batch_answers_one_outcome_per_submission_in_order(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        answer = api.post_batch([step(event_id="b-1"), step(type="mission.nope"), step(event_id="b-2"), "text"])

        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert (result["appended"], result["refused"]) == (2, 2)
        first, unknown, second, text = result["outcomes"]
        assert first["status"] == 201 and first["receipt"]["event_id"] == "b-1"
        assert unknown == {"status": 422, "error": "unknown_type", "message": unknown["message"]}
        assert second["receipt"]["seq"] == first["receipt"]["seq"] + 1
        assert text["status"] == 400 and text["error"] == "malformed_json"
        assert [reason for reason, _ in api.rejections()] == ["unknown_type", "malformed_json"]


def test_an_empty_batch_appends_nothing(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        answer = api.post_batch([])

        assert answer.status_code == 200
        assert answer.json() == {"outcomes": [], "appended": 0, "refused": 0}


def test_receipt_carries_a_checkpoint_and_a_proof_that_verify_offline(tmp_path: Path) -> None:
    with open_api(tmp_path, settings=api_settings(tmp_path, every_events=3)) as api:
        for number in range(5):
            assert api.post_event(step(event_id=f"e-{number}")).status_code == 201
        api.service.ledger.seal()  # the last two events wait for the timer otherwise
        key_text = api.client.get("/v1/verifier-key", headers=api.auth()).json()["verifier_key"]
        verifier = VerifierKey.parse(key_text)

        for number in range(5):
            answer = api.client.get(f"/v1/tenants/{TENANT}/receipts/e-{number}", headers=api.auth())
            assert answer.status_code == 200, answer.text
            receipt = answer.json()
            checkpoint = open_checkpoint(receipt["checkpoint"], verifier)
            assert checkpoint.size > receipt["log"]["index"]
            proof = [base64.b64decode(node) for node in receipt["inclusion_proof"]]
            leaf = leaf_hash(bytes.fromhex(receipt["hash"].removeprefix("sha256:")))
            verify_inclusion(leaf, receipt["log"]["index"], checkpoint.size, proof, checkpoint.root_hash)


def test_receipt_before_any_checkpoint_has_no_proof_yet(tmp_path: Path) -> None:
    with open_api(tmp_path, settings=api_settings(tmp_path, every_events=100)) as api:
        api.post_event(step(event_id="first"))  # the very first batch is always checkpointed
        api.post_event(step(event_id="second"))

        receipt = api.client.get(f"/v1/tenants/{TENANT}/receipts/second", headers=api.auth()).json()

        assert receipt["event_id"] == "second"
        assert "checkpoint" not in receipt and "inclusion_proof" not in receipt


def test_event_ids_with_slashes_have_receipts(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        api.post_event(step(event_id="run/42/step-1"))

        answer = api.client.get(f"/v1/tenants/{TENANT}/receipts/run/42/step-1", headers=api.auth())

        assert answer.status_code == 200 and answer.json()["event_id"] == "run/42/step-1"


def test_unknown_receipt_is_a_json_404(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        answer = api.client.get(f"/v1/tenants/{TENANT}/receipts/never-sent", headers=api.auth())

        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"


def test_a_tenant_never_sees_another_tenants_receipt(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        api.post_event(step(event_id="secret"))

        with_own_key = api.client.get(
            f"/v1/tenants/{OTHER_TENANT}/receipts/secret", headers=api.auth(tenant=OTHER_TENANT)
        )
        with_wrong_key = api.client.get(f"/v1/tenants/{TENANT}/receipts/secret", headers=api.auth(tenant=OTHER_TENANT))

        assert with_own_key.status_code == 404
        assert with_wrong_key.status_code == 403 and with_wrong_key.json()["error"] == "forbidden"


def test_checkpoints_lists_the_latest_signed_note_of_each_partition(tmp_path: Path) -> None:
    with open_api(tmp_path, settings=api_settings(tmp_path, every_events=2)) as api:
        for _ in range(5):  # checkpoints at sizes 1 (the first batch), 3 and 5
            api.post_event(step())
        verifier = api.service.ledger.verifier_key()

        answer = api.client.get("/v1/checkpoints", headers=api.auth("auditor"))

        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["log_id"] == api.service.ledger.log.log_id and body["partitions"] == 1
        (latest,) = body["checkpoints"]
        assert latest["tree_size"] == 5
        assert open_checkpoint(latest["note"], verifier).size == 5


def test_verifier_key_is_the_ledgers_key(tmp_path: Path) -> None:
    with open_api(tmp_path) as api:
        body = api.client.get("/v1/verifier-key", headers=api.auth("auditor")).json()

        verifier = api.service.ledger.verifier_key()
        assert body == {"verifier_key": verifier.text(), "name": verifier.name, "key_id": verifier.key_id.hex()}
