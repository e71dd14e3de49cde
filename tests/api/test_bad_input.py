"""Bad input over HTTP: each mistake gets a precise JSON 4xx, is recorded with its reason, and nothing is lost.

Malformed JSON, a body over the limit (declared, or only found while streaming), an oversized payload, an
unknown type, a schema violation, a forged sequencer field, a stale `expected_seq`, a reused and a duplicate
`event_id`, the wrong tenant in the body, and the batch's own mistakes. The TestClient raises on any server
error, so none of these can hide a 500.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from api_support import OTHER_TENANT, TENANT, Api, api_settings, open_api
from factories import step

from ledger.api.service import HttpLimits
from ledger.intake import Limits

MAX_SUBMISSION = 8 * 1024
MAX_PAYLOAD = 2 * 1024
LIMITS = Limits(max_payload_bytes=MAX_PAYLOAD, max_submission_bytes=MAX_SUBMISSION)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = dataclasses.replace(api_settings(tmp_path), limits=LIMITS)
    with open_api(
        tmp_path, settings=settings, http_limits=HttpLimits(max_batch_bytes=64 * 1024, max_batch_items=5)
    ) as api:
        yield api


def assert_refused(answer: httpx.Response, status: int, reason: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, object] = answer.json()
    assert body["error"] == reason and isinstance(body["message"], str) and body["message"]
    return body


def test_malformed_json_is_400_and_recorded_exactly_as_sent(api: Api) -> None:
    sent = b'{"tenant": "acme", "stream": '

    assert_refused(api.post_event(sent), 400, "malformed_json")

    assert api.rejections() == [("malformed_json", sent)]


def test_a_json_value_that_is_not_an_object_is_400(api: Api) -> None:
    assert_refused(api.post_event(b"[1, 2]"), 400, "malformed_json")
    assert_refused(api.post_event(b""), 400, "malformed_json")

    assert [reason for reason, _ in api.rejections()] == ["malformed_json", "malformed_json"]


def test_body_declared_over_the_limit_is_413_without_being_read(api: Api) -> None:
    body = orjson.dumps(step(payload={"step_id": "s", "summary": "x" * MAX_SUBMISSION, "status": "completed"}))

    answer = api.post_event(body)

    message = assert_refused(answer, 413, "oversized")["message"]
    assert str(MAX_SUBMISSION) in str(message)
    assert api.rejections() == [("oversized", b"")]  # refused from Content-Length: not one byte was read
    (recorded,) = api.service.ledger.rejections()
    assert recorded.tenant == TENANT


def test_body_found_over_the_limit_while_streaming_is_413_and_its_start_recorded(api: Api) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"tenant": "acme", "payload": "'
        yield b"y" * (2 * MAX_SUBMISSION)

    answer = api.client.post(f"/v1/tenants/{TENANT}/events", content=chunks(), headers=api.auth())

    assert_refused(answer, 413, "oversized")
    ((reason, raw),) = api.rejections()
    assert reason == "oversized" and raw.startswith(b'{"tenant": "acme"') and len(raw) <= MAX_SUBMISSION


def test_oversized_payload_in_a_small_body_is_413_from_the_intake(api: Api) -> None:
    sent = orjson.dumps(step(payload={"step_id": "s", "summary": "z" * MAX_PAYLOAD, "status": "completed"}))
    assert len(sent) < MAX_SUBMISSION

    assert_refused(api.post_event(sent), 413, "oversized")

    assert api.rejections() == [("oversized", sent)]


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"type": "mission.teleported"}, 422, "unknown_type"),
        ({"schema_version": 99}, 422, "unknown_schema_version"),
        ({"actor": {"kind": "robot", "id": "r-1"}}, 422, "schema_violation"),
        ({"payload": {"step_id": "s-1"}}, 422, "schema_violation"),
        ({"stream": "no slash"}, 422, "schema_violation"),
        ({"hash": "sha256:" + "0" * 64}, 422, "sequencer_field"),
        ({"tenant": OTHER_TENANT}, 403, "wrong_tenant"),
    ],
    ids=["unknown-type", "unknown-version", "bad-actor-kind", "payload-violation", "bad-stream", "forged", "tenant"],
)
def test_invalid_submission_is_refused_precisely_and_recorded(
    api: Api, change: dict[str, object], status: int, reason: str
) -> None:
    sent = orjson.dumps(step(**change))

    assert_refused(api.post_event(sent), status, reason)

    assert api.rejections() == [(reason, sent)]


def test_stale_expected_seq_is_409_and_recorded(api: Api) -> None:
    assert api.post_event(step(expected_seq=0)).status_code == 201

    body = assert_refused(api.post_event(step(expected_seq=0)), 409, "stale_expected_seq")

    assert "seq 1" in str(body["message"])
    assert [reason for reason, _ in api.rejections()] == ["stale_expected_seq"]


def test_duplicate_event_id_is_409_with_the_original_receipt(api: Api) -> None:
    submission = step(event_id="once")
    original = api.post_event(submission).json()

    body = assert_refused(api.post_event(submission), 409, "duplicate_event_id")

    receipt = body["receipt"]
    assert isinstance(receipt, dict)
    assert {k: receipt[k] for k in ("event_id", "seq", "hash", "log")} == {
        k: original[k] for k in ("event_id", "seq", "hash", "log")
    }
    assert receipt["duplicate"] is True
    assert [reason for reason, _ in api.rejections()] == ["duplicate_event_id"]
    assert api.service.ledger.log.size(0) == 1


def test_reused_event_id_with_other_content_is_409_without_a_receipt(api: Api) -> None:
    api.post_event(step(event_id="taken"))

    body = assert_refused(api.post_event(step(event_id="taken")), 409, "event_id_conflict")

    assert "receipt" not in body


def test_batch_that_is_not_json_is_400_and_recorded(api: Api) -> None:
    assert_refused(api.post_batch(b"[{]"), 400, "malformed_json")

    assert api.rejections() == [("malformed_json", b"[{]")]


def test_batch_that_is_not_an_array_is_400_and_recorded(api: Api) -> None:
    sent = orjson.dumps(step())

    assert_refused(api.post_batch(sent), 400, "malformed_json")

    assert api.rejections() == [("malformed_json", sent)]


def test_batch_with_too_many_submissions_is_413_and_appends_none(api: Api) -> None:
    assert_refused(api.post_batch([step() for _ in range(6)]), 413, "oversized")

    assert [reason for reason, _ in api.rejections()] == ["oversized"]
    assert api.service.ledger.log.size(0) == 0


def test_batch_body_over_its_limit_is_413(api: Api) -> None:
    filler = "w" * 1000
    batch = [step(payload={"step_id": "s", "summary": filler, "status": "completed"}) for _ in range(5)] * 14

    assert_refused(api.post_batch(orjson.dumps(batch)), 413, "oversized")

    assert [reason for reason, _ in api.rejections()] == ["oversized"]


def test_batch_items_are_held_to_the_single_submission_limits(api: Api) -> None:
    big = step(payload={"step_id": "s", "summary": "q" * (MAX_SUBMISSION + 1), "status": "completed"})

    (outcome,) = api.post_batch([big]).json()["outcomes"]

    assert (outcome["status"], outcome["error"]) == (413, "oversized")


def test_nothing_is_lost_among_refusals(api: Api) -> None:
    accepted = []
    for number in range(20):
        if number % 4 == 0:
            api.post_event(b"{broken")
        elif number % 4 == 1:
            api.post_event(step(type="no.such"))
        else:
            accepted.append(api.post_event(step(event_id=f"keep-{number}")).json())
    outcomes = api.post_batch([step(event_id="keep-b1"), step(tenant=OTHER_TENANT), step(event_id="keep-b2")]).json()
    accepted += [o["receipt"] for o in outcomes["outcomes"] if o["status"] == 201]

    ledger = api.service.ledger
    assert ledger.log.size(0) == len(accepted) == 12
    for receipt in accepted:
        stored = ledger.receipt(TENANT, receipt["event_id"])
        assert stored is not None and stored.hash == receipt["hash"]
    assert len(api.rejections()) == 5 + 5 + 1
    ledger.seal()
    ledger.verify()
