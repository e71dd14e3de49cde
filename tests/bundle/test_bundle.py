"""Tests of ledger/bundle: DSSE signing, how the builder picks checkpoints and refuses bad input, multi-partition
bundles, a hypothesis property over random logs and selections, and the 10,000-event budget.

The named attacks on a finished bundle live in test_conformance.py; here the builder and the verifier are held to
their contracts on small logs whose shape each test controls.
"""

from __future__ import annotations

import base64
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import make_settings
from factories import step
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.bundle.build import build_bundle
from ledger.bundle.dsse import open_envelope, pae, sign_envelope
from ledger.bundle.format import PAYLOAD_TYPE, DsseEnvelope, DsseSignature, InclusionEntry
from ledger.bundle.verify import BundleReport, verify_bundle
from ledger.canonical import event_hash
from ledger.checkpoint import Checkpoint, open_checkpoint, origin_for, sign_checkpoint
from ledger.cli.bundle import summary
from ledger.errors import ConfigError, SignatureError, UsageError, VerificationFailed
from ledger.keys import SignerKey, load_signer
from ledger.log.base import Checkpointed, LogBackend, LogRecord, PartitionWriter, Rejection
from ledger.merkle import MemoryNodes, leaf_hash
from ledger.sdk import Ledger
from schemas.envelope import SPEC, ZERO_HASH

Json = dict[str, Any]


def open_statement(bundle: bytes) -> Json:
    statement: Json = orjson.loads(base64.b64decode(orjson.loads(bundle)["payload"]))
    return statement


# --- DSSE -----------------------------------------------------------------------------------------------------


def test_pae_is_the_dsse_v1_encoding() -> None:
    # The example of github.com/secure-systems-lab/dsse, protocol.md.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t/ü", b"") == b"DSSEv1 4 t/\xc3\xbc 0 "  # lengths count UTF-8 bytes


def test_envelope_signature_is_plain_ed25519_over_the_pae() -> None:
    signer = SignerKey.generate("ledger-x")
    envelope = sign_envelope(PAYLOAD_TYPE, b'{"a":1}', signer)
    (signature,) = envelope.signatures
    assert signature.keyid == signer.verifier().key_hash_text
    # Any Ed25519 library can check it: the public key over the PAE bytes, nothing ledger-specific.
    signer.private_key.public_key().verify(base64.b64decode(signature.sig), pae(PAYLOAD_TYPE, b'{"a":1}'))
    assert open_envelope(envelope, signer.verifier()) == b'{"a":1}'


def test_open_envelope_ignores_co_signers_but_needs_the_pinned_key() -> None:
    ledger_key, auditor = SignerKey.generate("ledger-x"), SignerKey.generate("auditor")
    signed = sign_envelope(PAYLOAD_TYPE, b"{}", ledger_key)
    co_signed = sign_envelope(PAYLOAD_TYPE, b"{}", auditor)
    both = DsseEnvelope(
        payload_type=PAYLOAD_TYPE, payload=signed.payload, signatures=[*co_signed.signatures, *signed.signatures]
    )
    assert open_envelope(both, ledger_key.verifier()) == b"{}"
    with pytest.raises(SignatureError, match="not signed by the pinned key ledger-x"):
        open_envelope(co_signed, ledger_key.verifier())
    forged = DsseSignature(keyid=ledger_key.verifier().key_hash_text, sig=co_signed.signatures[0].sig)
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(
            DsseEnvelope(payload_type=PAYLOAD_TYPE, payload=signed.payload, signatures=[forged]), ledger_key.verifier()
        )


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        ("AAAA", "a proof node is 3 bytes, expected 32"),
        (base64.b64encode(b"\x00" * 32).decode()[:-2] + "B=", "not canonical base64"),
        ("!" * 44, "not valid base64"),
        (7, "a proof node must be a base64 string"),
    ],
)
def test_proof_nodes_are_canonical_base64_of_32_bytes(node: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        InclusionEntry.model_validate({"partition": 0, "index": 0, "tree_size": 1, "path": [node]})


def test_the_verifier_imports_no_log_backend() -> None:
    """verify-bundle is offline: loading the verifier must not load a backend, a Kafka client or a store."""
    code = (
        "import sys, ledger.bundle.verify; "
        "print(sorted(m for m in sys.modules if m.startswith(('ledger.log', 'ledger.sdk', 'kafka', 'eventsourcing'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


# --- the builder on an embedded ledger ------------------------------------------------------------------------


@pytest.fixture
def sealed_twice(tmp_path: Path) -> Iterator[tuple[Ledger, SignerKey]]:
    """An open ledger: 40 events sealed, 30 more sealed (tree sizes 40 and 70), then 10 not yet sealed."""
    settings = make_settings(tmp_path, every_events=100_000)
    with Ledger.open(settings) as ledger:
        for count in (40, 30):
            ledger.append_batch([step(mission=f"m-{n % 3}") for n in range(count)])
            ledger.seal()
        ledger.append_batch([step(mission=f"m-{n % 3}") for n in range(10)])
        yield ledger, load_signer(settings.private_key_path)


def _events(ledger: Ledger, indexes: Sequence[int]) -> list[Json]:
    wanted = set(indexes)
    return [record.envelope() for record in ledger.records() if record.envelope()["log"]["index"] in wanted]


def test_events_are_proven_under_the_smallest_covering_checkpoint_chained_from_the_earliest(
    sealed_twice: tuple[Ledger, SignerKey],
) -> None:
    ledger, signer = sealed_twice
    bundle = build_bundle(ledger.log, _events(ledger, range(5, 51)), signer, selection={"range": [5, 50]})
    predicate = open_statement(bundle)["predicate"]
    assert [(c["partition"], c["tree_size"]) for c in predicate["checkpoints"]] == [(0, 40), (0, 70)]
    assert [(c["old_size"], c["new_size"]) for c in predicate["consistency"]] == [(40, 70)]
    assert {item["proof"]["tree_size"] for item in predicate["events"]} == {70}
    assert verify_bundle(bundle, signer.verifier()).tree_sizes == {0: [40, 70]}


def test_events_all_before_the_first_checkpoint_need_only_it(sealed_twice: tuple[Ledger, SignerKey]) -> None:
    ledger, signer = sealed_twice
    predicate = open_statement(build_bundle(ledger.log, _events(ledger, [0, 39]), signer, selection={}))["predicate"]
    assert [c["tree_size"] for c in predicate["checkpoints"]] == [40]
    assert predicate["consistency"] == []


def test_an_unsealed_event_is_refused_naming_it(sealed_twice: tuple[Ledger, SignerKey]) -> None:
    ledger, signer = sealed_twice
    events = _events(ledger, [3, 72, 75])
    late = next(e for e in events if e["log"]["index"] == 72)
    with pytest.raises(ConfigError) as caught:
        build_bundle(ledger.log, events, signer, selection={})
    message = str(caught.value)
    assert f"event acme/{late['stream']}#{late['seq']} (partition 0, log index 72)" in message
    assert "not covered by a signed checkpoint yet" in message and "seal the ledger first" in message


def test_the_same_input_gives_the_same_bytes_in_any_order(sealed_twice: tuple[Ledger, SignerKey]) -> None:
    ledger, signer = sealed_twice
    events = _events(ledger, range(0, 70, 3))
    shuffled = [dict(reversed(list(event.items()))) for event in events]
    random.Random(3).shuffle(shuffled)
    first = build_bundle(ledger.log, events, signer, selection={"a": 1, "b": 2})
    assert build_bundle(ledger.log, shuffled + events[:4], signer, selection={"b": 2, "a": 1}) == first


def test_the_builder_refuses_a_changed_event(sealed_twice: tuple[Ledger, SignerKey]) -> None:
    ledger, signer = sealed_twice
    events = _events(ledger, [1, 2])
    events[1]["payload"]["summary"] = "rewritten"
    with pytest.raises(VerificationFailed, match="its hash does not match its content"):
        build_bundle(ledger.log, events, signer, selection={})


def test_the_builder_refuses_a_rehashed_event_the_log_does_not_hold(sealed_twice: tuple[Ledger, SignerKey]) -> None:
    ledger, signer = sealed_twice
    events = _events(ledger, [10, 11, 12])
    forged = events[1]
    forged["payload"]["summary"] = "rewritten"
    forged["hash"] = event_hash(forged)
    with pytest.raises(VerificationFailed) as caught:
        build_bundle(ledger.log, events, signer, selection={})
    assert str(caught.value) == (
        f"event acme/{forged['stream']}#{forged['seq']} is not the event the log holds at partition 0 log index 11"
    )


def test_the_builder_refuses_events_that_are_not_this_logs(sealed_twice: tuple[Ledger, SignerKey]) -> None:
    ledger, signer = sealed_twice
    (event,) = _events(ledger, [4])
    with pytest.raises(UsageError, match="nothing to bundle"):
        build_bundle(ledger.log, [], signer, selection={})
    with pytest.raises(UsageError, match=r"event 0 is not a sealed envelope: hash: Field required"):
        build_bundle(ledger.log, [{k: v for k, v in event.items() if k != "hash"}], signer, selection={})
    with pytest.raises(UsageError, match="belongs to log elsewhere/1"):
        build_bundle(ledger.log, [{**event, "log": {**event["log"], "log_id": "elsewhere/1"}}], signer, selection={})
    with pytest.raises(UsageError, match="two different events are given as"):
        build_bundle(ledger.log, [event, {**event, "hash": "sha256:" + "0" * 64}], signer, selection={})
    with pytest.raises(UsageError, match="the selection is not JSON"):
        build_bundle(ledger.log, [event], signer, selection={"when": object()})


def test_the_builder_refuses_a_key_that_did_not_sign_the_checkpoints(sealed_twice: tuple[Ledger, SignerKey]) -> None:
    ledger, _ = sealed_twice
    with pytest.raises(ConfigError, match="does not open with the signing key's verifier key"):
        build_bundle(ledger.log, _events(ledger, [4]), SignerKey.generate("test-ledger"), selection={})


# --- two partitions: a minimal in-memory log ------------------------------------------------------------------


class MemoryLog(LogBackend):
    """Sealed events, Merkle nodes and signed checkpoints per partition, in memory: what a bundle needs of a log."""

    def __init__(self, signer: SignerKey, partitions: int, log_id: str = "memory.example/7") -> None:
        self.log_id = log_id
        self.partition_count = partitions
        self._signer = signer
        self._trees = [MemoryNodes() for _ in range(partitions)]
        self._events: list[list[Json]] = [[] for _ in range(partitions)]
        self._checkpoints: list[list[Checkpointed]] = [[] for _ in range(partitions)]
        self._heads: dict[tuple[str, str], tuple[int, str]] = {}

    def partition_for(self, tenant: str, stream: str) -> int:
        return sum(stream.encode()) % self.partition_count

    def append(self, tenant: str, stream: str) -> Json:
        partition = self.partition_for(tenant, stream)
        seq, prev_hash = self._heads.get((tenant, stream), (0, ZERO_HASH))
        tree = self._trees[partition]
        event: Json = {
            "spec": SPEC,
            "tenant": tenant,
            "stream": stream,
            "seq": seq + 1,
            "prev_hash": prev_hash,
            "event_id": f"e-{partition}-{tree.size}",
            "type": "mission.step.recorded",
            "schema_version": 1,
            "actor": {"kind": "agent", "id": "a-1"},
            "agent_id": "a-1",
            "mission_id": stream.partition("/")[2],
            "causation_id": None,
            "correlation": None,
            "occurred_at": "2026-11-25T12:00:00.000000Z",
            "recorded_at": "2026-11-25T12:00:00.000000Z",
            "payload": {"step_id": f"s-{tree.size}", "summary": "step", "status": "completed"},
            "log": {"log_id": self.log_id, "partition": partition, "index": tree.size},
        }
        event["hash"] = event_hash(event)
        tree.append(leaf_hash(bytes.fromhex(event["hash"][7:])))
        self._events[partition].append(event)
        self._heads[(tenant, stream)] = (seq + 1, event["hash"])
        return event

    def seal(self, partition: int) -> None:
        tree = self._trees[partition]
        note = sign_checkpoint(Checkpoint(origin_for(self.log_id, partition), tree.size, tree.root()), self._signer)
        self._checkpoints[partition].append(Checkpointed(partition, tree.size, note, "2026-11-25T12:00:00.000000Z"))

    def get_node(self, partition: int, level: int, index: int) -> bytes:
        return self._trees[partition].get_node(level, index)

    def checkpoints(self, partition: int) -> Sequence[Checkpointed]:
        return self._checkpoints[partition]

    def size(self, partition: int) -> int:
        return self._trees[partition].size

    def read(self, partition: int, start: int = 0, limit: int | None = None) -> Iterator[LogRecord]:
        for event in self._events[partition][start : None if limit is None else start + limit]:
            yield LogRecord(partition, event["log"]["index"], orjson.dumps(event))

    def writer(self, partition: int) -> AbstractContextManager[PartitionWriter]:
        raise NotImplementedError

    def records_after(self, partition: int, position: int | None, limit: int) -> list[LogRecord]:
        raise NotImplementedError

    def end_position(self, partition: int) -> int | None:
        raise NotImplementedError

    def find_event(self, tenant: str, event_id: str) -> Json | None:
        raise NotImplementedError

    def record_rejections(self, rejections: Sequence[Rejection]) -> None:
        raise NotImplementedError

    def rejections(self, limit: int = 100) -> list[Rejection]:
        raise NotImplementedError

    def close(self) -> None:
        pass


@pytest.fixture
def two_partitions() -> tuple[MemoryLog, SignerKey, list[Json]]:
    signer = SignerKey.generate("memory-ledger")
    log = MemoryLog(signer, partitions=2)
    streams = ["mission/a", "mission/b", "mission/c", "mission/dd"]
    assert {log.partition_for("acme", stream) for stream in streams} == {0, 1}
    events = []
    for round_number in range(3):
        events += [log.append("acme", streams[n % 4]) for n in range(round_number, round_number + 21)]
        for partition in range(2):
            log.seal(partition)
    return log, signer, events


def test_a_bundle_spans_partitions_each_with_its_own_checkpoints(
    two_partitions: tuple[MemoryLog, SignerKey, list[Json]],
) -> None:
    log, signer, events = two_partitions
    bundle = build_bundle(log, events[5:50], signer, selection={"partitions": "both"})
    report = verify_bundle(bundle, signer.verifier())
    assert report.partitions == 2 and report.events == 45
    predicate = open_statement(bundle)["predicate"]
    assert {c["partition"] for c in predicate["consistency"]} == {0, 1}
    for item in predicate["events"]:
        assert item["proof"]["partition"] == item["event"]["log"]["partition"]


def test_a_proof_moved_to_the_other_partition_fails(two_partitions: tuple[MemoryLog, SignerKey, list[Json]]) -> None:
    log, signer, events = two_partitions
    statement = open_statement(build_bundle(log, events, signer, selection={}))
    proof = statement["predicate"]["events"][0]["proof"]
    proof["partition"] = 1 - proof["partition"]
    resigned = orjson.dumps(sign_envelope(PAYLOAD_TYPE, orjson.dumps(statement), signer).model_dump(by_alias=True))
    with pytest.raises(VerificationFailed, match="its proof is for partition"):
        verify_bundle(resigned, signer.verifier())


def test_a_checkpoint_under_the_wrong_partition_origin_fails(
    two_partitions: tuple[MemoryLog, SignerKey, list[Json]],
) -> None:
    log, signer, events = two_partitions
    statement = open_statement(build_bundle(log, events, signer, selection={}))
    checkpoints = statement["predicate"]["checkpoints"]
    moved = next(c for c in checkpoints if c["partition"] == 1)
    opened = open_checkpoint(moved["note"], signer.verifier())
    # The ledger key signed it, with the right size and root, but for partition 0's origin.
    moved["note"] = sign_checkpoint(Checkpoint(origin_for(log.log_id, 0), opened.size, opened.root_hash), signer)
    resigned = orjson.dumps(sign_envelope(PAYLOAD_TYPE, orjson.dumps(statement), signer).model_dump(by_alias=True))
    with pytest.raises(VerificationFailed, match=r"checkpoint origin '.*/0' is not the expected '.*/1'"):
        verify_bundle(resigned, signer.verifier())


# --- a property: any selection of any sealed log verifies -----------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_selection_of_a_random_sealed_log_verifies(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=48), label="events")
    missions = data.draw(st.lists(st.sampled_from(["m-0", "m-1", "m-2", "m-3"]), min_size=size, max_size=size))
    seals = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=size)), label="seal after") | {size})
    chosen = sorted(data.draw(st.sets(st.integers(0, size - 1), min_size=1), label="selected indexes"))
    with tempfile.TemporaryDirectory() as root:
        settings_ = make_settings(Path(root), every_events=100_000)
        with Ledger.open(settings_) as ledger:
            appended = 0
            for seal in seals:
                ledger.append_batch([step(mission=m) for m in missions[appended:seal]])
                ledger.seal()
                appended = seal
            selected = _events(ledger, chosen)
            bundle = build_bundle(ledger.log, selected, load_signer(settings_.private_key_path), selection={})
            pinned = ledger.verifier_key()
    report = verify_bundle(bundle, pinned)
    assert report.events == len(chosen)
    proven_under = min(s for s in seals if s > chosen[-1])
    earliest = min(s for s in seals if s > chosen[0])
    assert report.tree_sizes == {0: sorted({earliest, proven_under})}


# --- the budget -----------------------------------------------------------------------------------------------


def test_ten_thousand_events_build_and_verify_within_budget(tmp_path: Path) -> None:
    settings_ = make_settings(tmp_path, every_events=100_000)
    with Ledger.open(settings_) as ledger:
        for start in range(0, 10_000, 1_000):
            ledger.append_batch([step(mission=f"m-{n % 7}") for n in range(start, start + 1_000)])
        ledger.seal()
        events = [record.envelope() for record in ledger.records()]
        signer = load_signer(settings_.private_key_path)
        began = time.perf_counter()
        bundle = build_bundle(ledger.log, events, signer, selection={"all": True})
        built = time.perf_counter() - began
    began = time.perf_counter()
    report = verify_bundle(bundle, signer.verifier())
    verified = time.perf_counter() - began
    assert report.events == 10_000 and report.tree_sizes == {0: [1_000, 10_000]}  # the first batch is sealed too
    # The target is well under 2 s each on a slow 2-core machine; the bound leaves room for a loaded test run
    # and still fails on anything quadratic.
    assert built < 4.0 and verified < 4.0, (built, verified)


# --- the CLI summary ------------------------------------------------------------------------------------------


def test_summary_lists_checkpoints_and_stream_runs_and_caps_long_lists() -> None:
    report = BundleReport(
        events=30,
        streams=25,
        partitions=1,
        checkpoints=2,
        selection={"tenant": "acme"},
        log_id="agent-ledger.local/1",
        signed_by="k+00000000",
        tree_sizes={0: [10, 40]},
        stream_seqs={f"acme/mission/m-{n:02d}": [(1, 1), (3, 4)] for n in range(25)},
    )
    text = summary(report)
    assert text.startswith("verified bundle: 30 events in 25 streams of log agent-ledger.local/1\n")
    assert '  signed by k+00000000; selection {"tenant":"acme"}\n' in text
    assert "  partition 0: signed checkpoints at tree sizes 10 -> 40, proven consistent\n" in text
    assert "  acme/mission/m-00 seq 1, 3-4\n" in text
    assert text.endswith("  … and 5 more streams\n")
