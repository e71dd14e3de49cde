"""The conformance corpus of compliance bundles: one good bundle of a real mission, and one bad bundle per attack.

A real embedded ledger records a mission of a few hundred events over several streams and two tenants, sealed at
three tree sizes. The good bundle (everything agent a-1 did) must verify. Each bad bundle is derived from it by a
named attack and must fail with its own reason; where the attack needs it, the altered payload is re-signed with
the ledger's real key, so that the deeper check is the one that catches it. The corpus is also written to files
and run through the real `agent-ledger verify-bundle` command.
"""

from __future__ import annotations

import base64
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from agent_events import close_requested, evidence, grant, memory_written, mission_opened, tool_call
from conftest import make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.bundle.build import build_bundle
from ledger.bundle.dsse import sign_envelope
from ledger.bundle.format import PAYLOAD_TYPE
from ledger.bundle.verify import verify_bundle
from ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.cli import main as cli_main
from ledger.config import Settings
from ledger.errors import LedgerError, UsageError, VerificationFailed
from ledger.keys import SignerKey, VerifierKey, load_signer
from ledger.sdk import Ledger
from ledger.sequencer import Outcome

Json = dict[str, Any]

# --- the mission ----------------------------------------------------------------------------------------------


def _round_robin(*sequences: Sequence[list[Json]]) -> list[Json]:
    """Interleave groups of submissions (a tool call is a group of two), keeping each sequence's own order."""
    merged: list[Json] = []
    for groups in itertools.zip_longest(*sequences):
        for group in groups:
            if group:
                merged.extend(group)
    return merged


def _calls(
    agent: str, tool: str, count: int, mission: str, rng: random.Random, tenant: str = "acme"
) -> list[list[Json]]:
    return [tool_call(agent, tool, rng.random() > 0.15, mission=mission, tenant=tenant) for _ in range(count)]


def _evaluation(cited_event_id: str) -> Json:
    """A jury verdict with a float score and non-ASCII text: the JCS edge cases travel through the bundle."""
    return {
        "tenant": "acme",
        "stream": "mission/m-1",
        "type": "evaluation.recorded",
        "actor": {"kind": "model", "id": "model:judge"},
        "agent_id": "a-1",
        "mission_id": "m-1",
        "payload": {
            "evaluator": "jury:review@1",
            "subject_event_id": cited_event_id,
            "dimension": "correctness",
            "verdict": "pass",
            "score": 0.1 + 0.2,
            "rationale": "naïve fix ✓ — 检查通过 🚀",
        },
    }


def _append(ledger: Ledger, submissions: list[Json]) -> list[str]:
    """Append and return the event ids; every submission of the mission must be accepted."""
    outcomes: list[Outcome] = ledger.append_batch(submissions)
    ids = []
    for outcome in outcomes:
        assert not isinstance(outcome, LedgerError), outcome
        ids.append(outcome.event_id)
    return ids


@dataclass
class SealedMission:
    settings: Settings
    signer: SignerKey
    log_id: str
    events: list[Json]  # every stored envelope, in log order
    notes: dict[int, str]  # tree size -> signed checkpoint note
    sizes: tuple[int, ...]  # the three sealed tree sizes
    good: bytes = b""  # the bundle of everything agent a-1 did
    extra: dict[str, bytes] = field(default_factory=dict)

    @property
    def verifier(self) -> VerifierKey:
        return self.signer.verifier()

    def agent_events(self, agent: str) -> list[Json]:
        return [event for event in self.events if event["agent_id"] == agent]


def _phase_one(rng: random.Random) -> list[Json]:
    """Grants, two missions opened; a-1 works on m-1 and helps on m-2."""
    return [
        grant("a-1", "deploy", "sandbox"),
        grant("a-2", "search", "sandbox"),
        grant("a-1", "search", "canary"),
        *mission_opened("m-1", "a-1"),
        *mission_opened("m-2", "a-2"),
        *_round_robin(
            _calls("a-1", "deploy", 25, "m-1", rng),
            _calls("a-2", "search", 15, "m-2", rng),
            _calls("a-1", "search", 5, "m-2", rng),
        ),
        memory_written("mem-1", "a-1", mission="m-1"),
    ]


def _phase_two(rng: random.Random, cited_event_id: str) -> list[Json]:
    """a-1 finishes m-1 (evidence, a jury verdict, the close request); m-2 goes on."""
    return [
        *_round_robin(
            _calls("a-1", "deploy", 30, "m-1", rng),
            _calls("a-2", "search", 15, "m-2", rng),
            _calls("a-1", "search", 3, "m-2", rng),
        ),
        evidence("m-1", "a-1", cited_event_id),
        _evaluation(cited_event_id),
        close_requested("m-1", "a-1"),
    ]


def _phase_three(rng: random.Random) -> list[Json]:
    """a-1 is done; a-2 opens m-3, and another tenant works."""
    return [
        *mission_opened("m-3", "a-2"),
        grant("g-1", "deploy", "sandbox", tenant="globex"),
        *mission_opened("m-9", "g-1", tenant="globex"),
        *_round_robin(
            _calls("a-2", "deploy", 25, "m-3", rng),
            _calls("a-2", "search", 10, "m-2", rng),
            _calls("g-1", "deploy", 10, "m-9", rng, tenant="globex"),
        ),
    ]


@pytest.fixture(scope="module")
def mission(tmp_path_factory: pytest.TempPathFactory) -> SealedMission:
    settings = make_settings(tmp_path_factory.mktemp("mission"), every_events=100_000)
    rng = random.Random(7)
    with Ledger.open(settings) as ledger:
        first = _append(ledger, _phase_one(rng))
        ledger.seal()
        _append(ledger, _phase_two(rng, cited_event_id=first[8]))
        ledger.seal()
        _append(ledger, _phase_three(rng))
    # Closing the ledger sealed the third checkpoint.
    with Ledger.open(settings, read_only=True) as ledger:
        events = [record.envelope() for record in ledger.records()]
        stored = ledger.checkpoints(0)
        sealed = SealedMission(
            settings=settings,
            signer=load_signer(settings.private_key_path),
            log_id=ledger.log.log_id,
            events=events,
            notes={checkpoint.tree_size: checkpoint.note for checkpoint in stored},
            sizes=tuple(checkpoint.tree_size for checkpoint in stored),
        )
        a1 = sealed.agent_events("a-1")
        random.Random(1).shuffle(a1)  # the builder owes the order, not the caller
        sealed.good = build_bundle(ledger.log, a1, sealed.signer, selection={"agent_id": "a-1"})
        m2 = [event for event in events if event["mission_id"] == "m-2" and event["agent_id"] == "a-2"]
        sealed.extra["m-2 by a-2"] = build_bundle(ledger.log, m2, sealed.signer, selection={"agent_id": "a-2"})
    assert len(sealed.sizes) == 3 and len(events) > 250
    return sealed


# --- taking a bundle apart and putting it back ----------------------------------------------------------------


def open_parts(bundle: bytes) -> tuple[Json, Json]:
    envelope: Json = orjson.loads(bundle)
    statement: Json = orjson.loads(base64.b64decode(envelope["payload"]))
    return envelope, statement


def resign(statement: Json | bytes, signer: SignerKey) -> bytes:
    """Re-sign an altered statement with the ledger's real key, so that only a deeper check can catch it."""
    payload = statement if isinstance(statement, bytes) else orjson.dumps(statement)
    return orjson.dumps(sign_envelope(PAYLOAD_TYPE, payload, signer).model_dump(by_alias=True))


def flip_node(encoded: str, bit: int = 0) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def stream_events(statement: Json, stream: str) -> list[int]:
    """Positions in predicate.events of one stream's events."""
    return [n for n, item in enumerate(statement["predicate"]["events"]) if item["event"]["stream"] == stream]


def forged_checkpoint(mission: SealedMission, size: int, signer: SignerKey | None = None) -> str:
    """A checkpoint of `size` with a root the log never had, signed by the ledger key (a lying log) or another."""
    origin = f"{mission.log_id}/0"
    return sign_checkpoint(Checkpoint(origin, size, b"\x42" * 32), signer or mission.signer)


# --- the attacks ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """A bad bundle: how it is made from the good one, the reason it must fail with, and the known checkpoints."""

    make: Callable[[SealedMission], bytes]
    reason: str
    known: Callable[[SealedMission], list[str]] = lambda mission: []
    pinned: Callable[[SealedMission], VerifierKey] = lambda mission: mission.verifier


def _event_byte_flipped(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    payload = orjson.dumps(statement)
    target = statement["predicate"]["events"][5]["event"]["event_id"].encode()
    at = payload.index(target) + len(target) - 1
    flipped = payload[:at] + bytes([payload[at] ^ 0x01]) + payload[at + 1 :]
    assert orjson.loads(flipped) != statement  # one byte of one event really changed
    return resign(flipped, mission.signer)


def _event_dropped_from_middle(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    middle = stream_events(statement, "mission/m-1")[20]
    dropped = statement["predicate"]["events"].pop(middle)
    statement["subject"] = [s for s in statement["subject"] if s["digest"]["sha256"] != dropped["event"]["hash"][7:]]
    return resign(statement, mission.signer)


def _events_reordered(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    events = statement["predicate"]["events"]
    first, second = stream_events(statement, "mission/m-1")[10:12]
    events[first], events[second] = events[second], events[first]
    return resign(statement, mission.signer)


def _proof_node_flipped(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    path = statement["predicate"]["events"][7]["proof"]["path"]
    path[3] = flip_node(path[3], bit=77)
    return resign(statement, mission.signer)


def _proof_truncated(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    statement["predicate"]["events"][7]["proof"]["path"].pop()
    return resign(statement, mission.signer)


def _proof_of_another_event(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    events = statement["predicate"]["events"]
    events[3]["proof"], events[4]["proof"] = events[4]["proof"], events[3]["proof"]
    return resign(statement, mission.signer)


def _checkpoint_signed_by_other_key(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    entry = statement["predicate"]["checkpoints"][0]
    body = open_checkpoint(entry["note"], mission.verifier)
    entry["note"] = sign_checkpoint(body, SignerKey.generate(mission.signer.name))  # same name, another key
    return resign(statement, mission.signer)


def _split_view_in_bundle(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    checkpoints = statement["predicate"]["checkpoints"]
    size = checkpoints[-1]["tree_size"]
    checkpoints.append({"partition": 0, "tree_size": size, "note": forged_checkpoint(mission, size)})
    return resign(statement, mission.signer)


def _consistency_node_flipped(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    proof = statement["predicate"]["consistency"][0]["proof"]
    proof[0] = flip_node(proof[0], bit=200)
    return resign(statement, mission.signer)


def _consistency_proof_removed(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    statement["predicate"]["consistency"] = []
    return resign(statement, mission.signer)


def _payload_changed_after_signing(mission: SealedMission) -> bytes:
    envelope, statement = open_parts(mission.good)
    statement["predicate"]["created_from"] = {"agent_id": "a-2"}
    envelope["payload"] = base64.b64encode(orjson.dumps(statement)).decode()
    return orjson.dumps(envelope)


def _payload_type_changed(mission: SealedMission) -> bytes:
    envelope, _ = open_parts(mission.good)
    envelope["payloadType"] = "application/json"
    return orjson.dumps(envelope)


def _unsigned_field_added(mission: SealedMission) -> bytes:
    envelope, _ = open_parts(mission.good)
    envelope["note"] = "trust me"
    return orjson.dumps(envelope)


def _verifier_key_swapped(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    statement["predicate"]["verifier_key"] = SignerKey.generate("test-ledger").verifier().text()
    return resign(statement, mission.signer)


def _subject_digest_changed(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    statement["subject"][2]["digest"]["sha256"] = "ab" * 32
    return resign(statement, mission.signer)


def _event_without_subject(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    statement["subject"].pop(2)
    return resign(statement, mission.signer)


def _undeclared_event_inserted(mission: SealedMission) -> bytes:
    """A real, provable event of m-2 that a-1 did not do slips into a-1's bundle (seq ranges left as signed)."""
    _, statement = open_parts(mission.good)
    _, other = open_parts(mission.extra["m-2 by a-2"])
    stranger = next(item for item in other["predicate"]["events"] if item["event"]["seq"] == 3)
    events = statement["predicate"]["events"]
    at = next(n for n, item in enumerate(events) if item["event"]["stream"] == "mission/m-2")
    events.insert(at + 1, stranger)  # m-2 seq 3 sorts right after a-1's first m-2 event
    events.sort(key=lambda item: (item["event"]["tenant"], item["event"]["stream"], item["event"]["seq"]))
    e = stranger["event"]
    subject = {"name": f"{e['tenant']}/{e['stream']}#{e['seq']}", "digest": {"sha256": e["hash"][7:]}}
    statement["subject"].append(subject)
    return resign(statement, mission.signer)


def _chain_link_rewritten(mission: SealedMission) -> bytes:
    """An event's prev_hash is rewritten and its hash recomputed: it hashes fine, but no longer chains."""
    from ledger.canonical import event_hash

    _, statement = open_parts(mission.good)
    position = stream_events(statement, "mission/m-1")[4]
    event = statement["predicate"]["events"][position]["event"]
    old = event["hash"][7:]
    event["prev_hash"] = "sha256:" + "cd" * 32
    event["hash"] = event_hash(event)
    for subject in statement["subject"]:
        if subject["digest"]["sha256"] == old:
            subject["digest"]["sha256"] = event["hash"][7:]
    return resign(statement, mission.signer)


def _malformed_statement(mission: SealedMission) -> bytes:
    _, statement = open_parts(mission.good)
    del statement["predicate"]["events"]
    return resign(statement, mission.signer)


ATTACKS: dict[str, Attack] = {
    "event-byte-flipped": Attack(_event_byte_flipped, "hash does not match its content"),
    "event-dropped-from-middle": Attack(_event_dropped_from_middle, "missing (dropped)"),
    "events-reordered": Attack(_events_reordered, "(reordered;"),
    "proof-path-node-flipped": Attack(_proof_node_flipped, "inclusion proof does not lead to the expected root"),
    "proof-truncated": Attack(_proof_truncated, "inclusion proof: inclusion proof has"),
    "proof-of-another-event": Attack(_proof_of_another_event, "its proof is for partition 0 log index"),
    "checkpoint-signed-by-other-key": Attack(
        _checkpoint_signed_by_other_key, "checkpoint is not signed by test-ledger+"
    ),
    "checkpoint-rolled-back": Attack(
        lambda mission: mission.good, "(rolled back)", known=lambda mission: [mission.notes[mission.sizes[2]]]
    ),
    "split-view-in-bundle": Attack(_split_view_in_bundle, "with different roots (split view)"),
    "split-view-against-known-checkpoint": Attack(
        lambda mission: mission.good,
        "has another root than a known checkpoint of that size (split view)",
        known=lambda mission: [forged_checkpoint(mission, mission.sizes[1])],
    ),
    "consistency-proof-node-flipped": Attack(_consistency_node_flipped, "consistency proof from tree size"),
    "consistency-proof-removed": Attack(_consistency_proof_removed, "no consistency proof from tree size"),
    "payload-changed-after-signing": Attack(_payload_changed_after_signing, "does not verify (the envelope changed"),
    "payload-type-changed": Attack(_payload_type_changed, "DSSE payloadType is 'application/json'"),
    "unsigned-field-added": Attack(_unsigned_field_added, "malformed DSSE envelope: note: Extra inputs"),
    "wrong-pinned-key": Attack(
        lambda mission: mission.good,
        "bundle is not signed by the pinned key",
        pinned=lambda mission: SignerKey.generate("auditor-pin").verifier(),
    ),
    "verifier-key-swapped": Attack(_verifier_key_swapped, "the bundle names verifier key"),
    "subject-digest-changed": Attack(_subject_digest_changed, "is not an event of the bundle"),
    "event-without-subject": Attack(_event_without_subject, "not among the statement's subjects"),
    "undeclared-event-inserted": Attack(_undeclared_event_inserted, "outside the seq ranges declared for its stream"),
    "chain-link-rewritten": Attack(_chain_link_rewritten, "(the chain is broken)"),
    "malformed-statement": Attack(_malformed_statement, "malformed statement: predicate.events: Field required"),
    "not-json": Attack(lambda mission: b"\x00\xffPK this is not a bundle", "bundle is not JSON"),
    "json-but-not-an-envelope": Attack(lambda mission: b'["payload"]', "bundle is not a DSSE envelope"),
}


# --- the good bundle ------------------------------------------------------------------------------------------


def test_good_bundle_of_a_real_mission_verifies(mission: SealedMission) -> None:
    a1 = mission.agent_events("a-1")
    report = verify_bundle(mission.good, mission.verifier, known_checkpoints=[mission.notes[mission.sizes[0]]])
    assert report.events == len(a1)
    assert report.streams == 3  # agent/a-1, mission/m-1, mission/m-2
    assert report.tree_sizes == {0: [mission.sizes[0], mission.sizes[1]]}
    assert report.selection == {"agent_id": "a-1"}
    assert report.stream_seqs["acme/mission/m-1"] == [(1, len([e for e in a1 if e["stream"] == "mission/m-1"]))]
    assert len(report.stream_seqs["acme/mission/m-2"]) > 1  # a-1 only helped on m-2: several runs


def test_good_bundle_carries_the_float_and_unicode_event_exactly(mission: SealedMission) -> None:
    _, statement = open_parts(mission.good)
    (verdict,) = [i["event"] for i in statement["predicate"]["events"] if i["event"]["type"] == "evaluation.recorded"]
    stored = next(event for event in mission.events if event["event_id"] == verdict["event_id"])
    assert verdict == stored
    assert verdict["payload"]["score"] == 0.30000000000000004
    assert verdict["payload"]["rationale"] == "naïve fix ✓ — 检查通过 🚀"


def test_good_bundle_accepts_known_checkpoints_it_is_consistent_with(mission: SealedMission) -> None:
    known = [mission.notes[mission.sizes[0]], mission.notes[mission.sizes[1]]]
    other_log = sign_checkpoint(Checkpoint("elsewhere.example/0", 10**6, b"\x01" * 32), mission.signer)
    assert verify_bundle(mission.good, mission.verifier, known_checkpoints=[*known, other_log]).events > 0


def test_known_checkpoint_by_another_key_is_a_usage_error(mission: SealedMission) -> None:
    stranger = forged_checkpoint(mission, mission.sizes[2], SignerKey.generate("someone"))
    with pytest.raises(UsageError, match="known checkpoint 0: checkpoint is not signed by"):
        verify_bundle(mission.good, mission.verifier, known_checkpoints=[stranger])


# --- the bad bundles ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_fails_with_its_own_reason(mission: SealedMission, name: str) -> None:
    attack = ATTACKS[name]
    bad = attack.make(mission)
    with pytest.raises(VerificationFailed) as caught:
        verify_bundle(bad, attack.pinned(mission), known_checkpoints=attack.known(mission))
    message = str(caught.value)
    assert attack.reason in message
    assert "\n" not in message


def test_every_attack_has_a_distinct_reason() -> None:
    reasons = [attack.reason for attack in ATTACKS.values()]
    assert len(set(reasons)) == len(reasons)


# --- properties: every other change is caught, and no input is a traceback -----------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON libraries exchange
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a JSON value (the root excluded): dict keys and list indexes from the top down."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@pytest.fixture(scope="module")
def statement_paths(mission: SealedMission) -> list[tuple[Any, ...]]:
    return list(_paths(open_parts(mission.good)[1]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_re_signed_change_outside_the_selection_note_is_caught(
    mission: SealedMission, statement_paths: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    """Replace any one value of the statement with any JSON value and re-sign with the real key: unless the value
    is equal or lies in the free-text `created_from`, verification must fail, and only ever with a LedgerError."""
    _, statement = open_parts(mission.good)
    path = statement_paths[data.draw(st.integers(0, len(statement_paths) - 1), label="position")]
    replacement = data.draw(JSON_VALUES, label="replacement")
    parent = statement
    for key in path[:-1]:
        parent = parent[key]
    original, parent[path[-1]] = parent[path[-1]], replacement
    try:
        verify_bundle(resign(statement, mission.signer), mission.verifier)
    except LedgerError:
        return
    assert path[:2] == ("predicate", "created_from") or replacement == original, (path, replacement)


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=300) | JSON_VALUES.map(orjson.dumps))
def test_junk_input_fails_with_a_one_line_reason(mission: SealedMission, junk: bytes) -> None:
    with pytest.raises(VerificationFailed) as caught:
        verify_bundle(junk, mission.verifier)
    assert "\n" not in str(caught.value)


# --- the corpus on disk, through the CLI ----------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    """`agent-ledger ARGV` through the real console entry (one line on stderr and the error's exit code)."""
    return cli_main.main(argv)


@pytest.fixture(scope="module")
def corpus(mission: SealedMission, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every bundle of the corpus as a file: good.bundle.json and <attack>.bundle.json, with their pins."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "good.bundle.json").write_bytes(mission.good)
    (root / "ledger.pub").write_text(mission.verifier.text() + "\n")
    for name, attack in ATTACKS.items():
        (root / f"{name}.bundle.json").write_bytes(attack.make(mission))
        for number, note in enumerate(attack.known(mission)):
            (root / f"{name}.known-{number}.note").write_text(note)
        pin = attack.pinned(mission)
        if pin != mission.verifier:
            (root / f"{name}.pub").write_text(pin.text() + "\n")
    return root


def _cli_args(corpus: Path, name: str) -> list[str]:
    pin = corpus / f"{name}.pub"
    args = ["verify-bundle", str(corpus / f"{name}.bundle.json")]
    args += ["--verifier-key", str(pin if pin.exists() else corpus / "ledger.pub")]
    for known in sorted(corpus.glob(f"{name}.known-*.note")):
        args += ["--known-checkpoint", str(known)]
    return args


@pytest.mark.parametrize("name", list(ATTACKS))
def test_cli_refuses_each_corpus_file_with_one_line(
    corpus: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(_cli_args(corpus, name)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("agent-ledger: error: ")
    assert ATTACKS[name].reason in lines[0]


def test_cli_verifies_the_good_file_offline(
    corpus: Path, mission: SealedMission, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(corpus)  # no ledger here: the pinned key text is all it needs
    monkeypatch.delenv("AGENT_LEDGER_DATA", raising=False)
    assert run_cli(["verify-bundle", "good.bundle.json", "--verifier-key", mission.verifier.text()]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"verified bundle: {len(mission.agent_events('a-1'))} events in 3 streams of log ")
    assert f"signed checkpoints at tree sizes {mission.sizes[0]} -> {mission.sizes[1]}, proven consistent" in out
    assert "acme/mission/m-1 seq 1-" in out
    assert not (corpus / ".agent-ledger").exists()


def test_cli_json_output_and_default_key_from_the_key_dir(
    corpus: Path, mission: SealedMission, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        ["verify-bundle", str(corpus / "good.bundle.json"), "--keys", str(mission.settings.key_dir), "--json"]
    )
    assert code == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["verified"] is True
    assert result["selection"] == {"agent_id": "a-1"}
    assert result["tree_sizes"] == {"0": [mission.sizes[0], mission.sizes[1]]}


@pytest.mark.parametrize("form", ["note", "checkpoint-output", "checkpoint-json-lines"])
def test_cli_reads_known_checkpoints_in_each_form_the_ledger_prints(
    corpus: Path, mission: SealedMission, tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    latest = mission.sizes[2]
    note = mission.notes[latest]
    seen = tmp_path / "seen"
    if form == "note":
        seen.write_text(note)
    elif form == "checkpoint-output":  # what `agent-ledger checkpoint` prints
        seen.write_text(f"{note}\nverifier key: {mission.verifier.text()}\n")
    else:  # `agent-ledger checkpoint --json`
        seen.write_bytes(orjson.dumps({"partition": 0, "tree_size": latest, "note": note}) + b"\n")
    args = ["verify-bundle", str(corpus / "good.bundle.json"), "--verifier-key", str(corpus / "ledger.pub")]
    assert run_cli([*args, "--known-checkpoint", str(seen)]) == 1
    assert "(rolled back)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv_tail", "reason"),
    [
        (["missing.bundle.json", "--verifier-key", "{pub}"], "cannot read bundle"),
        (["good.bundle.json", "--verifier-key", "not+a+key"], "malformed verifier key"),
        (["good.bundle.json", "--data", "{empty}"], "no verifier key at"),
        (["good.bundle.json", "--verifier-key", "{pub}", "--known-checkpoint", "nope.note"], "cannot read known"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    corpus: Path, tmp_path: Path, argv_tail: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tail = [part.format(pub=corpus / "ledger.pub", empty=tmp_path / "nothing") for part in argv_tail]
    tail[0] = str(corpus / tail[0])
    assert run_cli(["verify-bundle", *tail]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], lines


def _all_files(corpus: Path) -> Iterator[Path]:
    yield from sorted(corpus.glob("*.bundle.json"))


def test_corpus_names_every_attack(corpus: Path) -> None:
    names = {path.name.removesuffix(".bundle.json") for path in _all_files(corpus)}
    assert names == {"good", *ATTACKS}
