"""The event-type registry: every DESIGN.md type is registered, examples validate, bad input is refused."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest

from ledger.canonical import canonical_bytes
from ledger.errors import SchemaViolation, UnknownEventType, UnknownSchemaVersion
from schemas.envelope import ActorKind, Submission
from schemas.examples import EXAMPLES
from schemas.payloads import PAYLOAD_MODELS, EventPayload, PayloadPart, ToolCallCompleted
from schemas.payloads.base import ActorKindName
from schemas.registry import (
    REGISTRY,
    build_registry,
    check_actor,
    check_context,
    event_types,
    latest_version,
    parse_payload,
    spec_for,
    validate_payload,
)

# The taxonomy exactly as DESIGN.md ("Event taxonomy") lists it.
TAXONOMY = [
    "agent.registered",
    "agent.revised",
    "policy.published",
    "policy.activated",
    "mission.opened",
    "mission.criteria.set",
    "mission.step.recorded",
    "mission.close.requested",
    "mission.closed",
    "mission.close.refused",
    "tool.call.requested",
    "policy.decision",
    "tool.call.completed",
    "tool.call.failed",
    "approval.requested",
    "approval.granted",
    "approval.denied",
    "model.output.recorded",
    "memory.written",
    "memory.read",
    "memory.revoked",
    "evidence.attached",
    "outcome.recorded",
    "evaluation.recorded",
    "trust.changed",
    "scope.granted",
    "scope.narrowed",
    "scope.widened",
    "scope.revoked",
    "handoff.offered",
    "handoff.accepted",
    "key.registered",
    "subject.key.destroyed",
]

DIGEST = "sha256:" + "ab" * 32


def refusal(event_type: str, payload: object) -> str:
    with pytest.raises(SchemaViolation) as caught:
        validate_payload(spec_for(event_type, 1), payload)
    return str(caught.value)


def example_payload(event_type: str, **changes: Any) -> dict[str, Any]:
    payload = EXAMPLES[event_type].submission()["payload"]
    assert isinstance(payload, dict)
    payload.update(changes)
    return payload


def all_payload_parts() -> list[type[PayloadPart]]:
    found: list[type[PayloadPart]] = []
    pending: list[type[PayloadPart]] = [PayloadPart]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("schemas.payloads"):
                found.append(sub)
                pending.append(sub)
    return found


# --- the taxonomy and the examples ------------------------------------------------------------------------


def test_every_taxonomy_type_is_registered() -> None:
    assert sorted(set(TAXONOMY)) == sorted(TAXONOMY)
    assert set(TAXONOMY) <= set(event_types())


def test_every_registered_type_is_in_the_taxonomy_and_has_an_example() -> None:
    assert set(event_types()) == set(TAXONOMY)
    assert set(EXAMPLES) == set(event_types())


def test_event_types_are_sorted_and_all_version_one_for_now() -> None:
    assert event_types() == sorted(TAXONOMY)
    assert all(latest_version(name) == 1 for name in TAXONOMY)
    assert all(list(REGISTRY[name]) == [1] for name in TAXONOMY)


@pytest.mark.parametrize("event_type", TAXONOMY)
def test_example_of_every_type_validates(event_type: str) -> None:
    example = EXAMPLES[event_type]
    spec = spec_for(event_type, example.version)
    validate_payload(spec, example.submission()["payload"])
    check_actor(spec, example.actor_kind)
    check_context(spec, agent_id=example.agent_id, mission_id=example.mission_id)
    assert isinstance(parse_payload(spec, example.payload), spec.payload_model)


@pytest.mark.parametrize("event_type", TAXONOMY)
def test_example_is_a_valid_canonicalizable_submission(event_type: str) -> None:
    submission = EXAMPLES[event_type].submission()
    Submission.model_validate(submission)
    assert canonical_bytes(submission["payload"])


def test_example_submission_is_a_fresh_copy() -> None:
    first = EXAMPLES["policy.published"].submission()
    first["payload"]["content"]["name"] = "changed"
    assert EXAMPLES["policy.published"].submission()["payload"]["content"]["name"] == "default"


def test_every_payload_model_is_strict_closed_finite_and_described() -> None:
    parts = all_payload_parts()
    assert len(parts) > len(TAXONOMY)
    for model in parts:
        config = model.model_config
        assert config.get("extra") == "forbid", model
        assert config.get("strict") is True, model
        assert config.get("allow_inf_nan") is False, model
        doc = (model.__doc__ or "").strip()
        assert doc and "\n" not in doc, f"{model.__name__} needs a one-line docstring"


def test_every_event_payload_class_is_registered() -> None:
    declared = {model for model in all_payload_parts() if issubclass(model, EventPayload)} - {EventPayload}
    assert declared == set(PAYLOAD_MODELS)


def test_spec_carries_type_version_model_actors_and_description() -> None:
    spec = spec_for("tool.call.completed", 1)
    assert spec.type == "tool.call.completed"
    assert spec.version == 1
    assert spec.payload_model is ToolCallCompleted
    assert spec.actor_kinds == frozenset({"tool"})
    assert spec.description == "The tool reports a call's result: the digest of its output, and where to find it."


# --- unknown types and versions ---------------------------------------------------------------------------


def test_unknown_type_is_refused_with_a_suggestion() -> None:
    with pytest.raises(UnknownEventType) as caught:
        spec_for("tool.call.complete", None)
    assert str(caught.value) == "unknown event type 'tool.call.complete'; did you mean 'tool.call.completed'?"


def test_unknown_type_without_a_close_match_is_refused_plainly() -> None:
    with pytest.raises(UnknownEventType) as caught:
        spec_for("weather.report", 1)
    assert str(caught.value) == "unknown event type 'weather.report'"


def test_latest_version_of_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownEventType, match=r"did you mean 'memory\.written'"):
        latest_version("memory.writen")


def test_unknown_schema_version_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownSchemaVersion) as caught:
        spec_for("tool.call.completed", 3)
    assert str(caught.value) == "tool.call.completed has no schema_version 3; known: 1"


def test_version_none_means_the_latest() -> None:
    assert spec_for("mission.opened", None) is spec_for("mission.opened", 1)
    assert spec_for("mission.opened") is REGISTRY["mission.opened"][1]


class ToolCallCompletedV2(ToolCallCompleted):
    """Version 2 of tool.call.completed, declared only by this test."""

    schema_version: ClassVar[int] = 2


def test_registry_supports_several_versions_of_a_type() -> None:
    registry = build_registry([ToolCallCompletedV2, ToolCallCompleted])
    assert list(registry["tool.call.completed"]) == [1, 2]
    assert registry["tool.call.completed"][2].payload_model is ToolCallCompletedV2


def test_a_version_declared_twice_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"tool.call.completed v1 is declared twice"):
        build_registry([ToolCallCompleted, ToolCallCompleted])


# --- payload violations, worded precisely -----------------------------------------------------------------


def test_missing_wrong_literal_and_extra_field_are_named_in_one_line() -> None:
    message = refusal("tool.call.requested", {"call_id": "c-1", "toool": "x", "level": "prod", "arguments": {}})
    assert message == (
        "payload of tool.call.requested v1: 'tool' is required; "
        "'level' must be one of 'sandbox', 'canary', 'production' (got 'prod'); unexpected field 'toool'"
    )


def test_missing_field_is_refused() -> None:
    payload = example_payload("tool.call.completed")
    del payload["output_digest"]
    assert refusal("tool.call.completed", payload) == ("payload of tool.call.completed v1: 'output_digest' is required")


def test_extra_field_is_refused() -> None:
    payload = example_payload("mission.opened", owner="a-1")
    assert refusal("mission.opened", payload) == "payload of mission.opened v1: unexpected field 'owner'"


def test_wrong_literal_is_refused() -> None:
    payload = example_payload("evaluation.recorded", verdict="passed")
    assert refusal("evaluation.recorded", payload) == (
        "payload of evaluation.recorded v1: 'verdict' must be one of 'pass', 'fail', 'inconclusive' (got 'passed')"
    )


def test_strings_are_not_coerced_to_numbers_or_booleans() -> None:
    payload = example_payload("tool.call.failed", retryable="true", duration_ms="900")
    assert refusal("tool.call.failed", payload) == (
        "payload of tool.call.failed v1: 'retryable' must be a boolean (got string); "
        "'duration_ms' must be an integer (got string)"
    )


def test_bounds_and_non_finite_numbers_are_refused() -> None:
    payload = example_payload("evaluation.recorded", score=1.5)
    assert refusal("evaluation.recorded", payload) == (
        "payload of evaluation.recorded v1: 'score' must be <= 1.0 (got 1.5)"
    )
    payload = example_payload("outcome.recorded", metrics={"cost_usd": float("nan")})
    assert refusal("outcome.recorded", payload) == (
        "payload of outcome.recorded v1: 'metrics.cost_usd' must be a finite number (got nan)"
    )


def test_integers_beyond_the_canonical_range_are_refused() -> None:
    payload = example_payload("model.output.recorded", tokens_in=2**53)
    assert refusal("model.output.recorded", payload) == (
        "payload of model.output.recorded v1: 'tokens_in' must be <= 9007199254740991 (got 9007199254740992)"
    )


def test_patterns_are_explained_in_words() -> None:
    payload = example_payload("tool.call.completed", output_digest="sha256:abc", tool="run tests")
    assert refusal("tool.call.completed", payload) == (
        "payload of tool.call.completed v1: 'tool' must be a tool name: a letter or digit, then letters, "
        "digits or _.:/- (at most 128) (got 'run tests'); 'output_digest' must be a digest: 'sha256:' and 64 "
        "lowercase hex digits (got 'sha256:abc')"
    )
    payload = example_payload("mission.opened", due_at="2025-02-03 17:00")
    assert refusal("mission.opened", payload) == (
        "payload of mission.opened v1: 'due_at' must be an RFC 3339 UTC timestamp like "
        "'2025-01-31T09:30:00.000000Z' (got '2025-02-03 17:00')"
    )


def test_blank_and_empty_text_is_refused() -> None:
    payload = example_payload("mission.close.requested", summary="   ")
    assert refusal("mission.close.requested", payload) == (
        "payload of mission.close.requested v1: 'summary' must not be blank (got '   ')"
    )
    payload = example_payload("mission.close.requested", summary="")
    assert refusal("mission.close.requested", payload) == (
        "payload of mission.close.requested v1: 'summary' must not be empty"
    )


def test_nested_problems_name_their_path() -> None:
    payload = {"criteria": [{"criterion_id": "c-1", "description": "ok"}, {"criterion_id": "c-2"}]}
    assert refusal("mission.criteria.set", payload) == (
        "payload of mission.criteria.set v1: 'criteria.1.description' is required"
    )


def test_bad_dictionary_keys_are_named() -> None:
    payload = example_payload("scope.granted", limits={"MaxCalls": 3})
    assert refusal("scope.granted", payload) == (
        "payload of scope.granted v1: key 'MaxCalls' of 'limits' must be a lowercase name: a letter, then "
        "lowercase letters, digits or _.:- (at most 64) (got 'MaxCalls')"
    )


def test_empty_and_duplicate_lists_are_refused() -> None:
    assert refusal("memory.read", {"memory_ids": []}) == (
        "payload of memory.read v1: 'memory_ids' must have at least 1 item (got 0)"
    )
    assert refusal("memory.read", {"memory_ids": ["m-1", "m-1"]}) == (
        "payload of memory.read v1: 'memory_ids': duplicate item 'm-1'"
    )


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    assert refusal("memory.read", ["m-1"]) == "payload of memory.read v1: payload must be an object (got array)"


def test_cross_field_rules_are_refused_in_words() -> None:
    assert refusal("agent.revised", {"reason": "nothing"}) == (
        "payload of agent.revised v1: at least one of 'model', 'prompt_digest', 'tool_manifest' "
        "or 'tool_manifest_digest' must be given"
    )
    payload = example_payload("memory.written", shared_with=[])
    assert refusal("memory.written", payload) == (
        "payload of memory.written v1: scope 'shared' needs at least one agent in 'shared_with'"
    )
    payload = example_payload("scope.narrowed", level="production", previous_level="canary")
    assert refusal("scope.narrowed", payload) == (
        "payload of scope.narrowed v1: narrowing cannot raise the level from 'canary' to 'production'"
    )
    criterion = {"criterion_id": "c-1", "description": "done"}
    assert refusal("mission.criteria.set", {"criteria": [criterion, criterion]}) == (
        "payload of mission.criteria.set v1: criterion_id 'c-1' appears twice"
    )
    payload = example_payload("tool.call.requested")
    del payload["arguments"], payload["arguments_digest"]
    assert refusal("tool.call.requested", payload) == (
        "payload of tool.call.requested v1: at least one of 'arguments' or 'arguments_digest' must be given"
    )


def test_arguments_may_be_recorded_as_a_digest_alone() -> None:
    payload = example_payload("tool.call.requested")
    del payload["arguments"]
    validate_payload(spec_for("tool.call.requested"), payload)


def test_message_stays_on_one_line_whatever_the_input() -> None:
    payload = example_payload("memory.revoked", **{"evil\nfield": 1}, reason="a\nb" * 1000)
    message = refusal("memory.revoked", payload)
    assert "\n" not in message
    assert "unexpected field 'evil\\x0afield'" in message


def test_a_flood_of_problems_is_summarised() -> None:
    payload = {f"x{number}": number for number in range(50)}
    message = refusal("memory.revoked", payload)
    assert message.endswith("; and 32 more problems")


# --- actor kinds and envelope context ---------------------------------------------------------------------


def test_wrong_actor_kind_is_refused() -> None:
    with pytest.raises(SchemaViolation) as caught:
        check_actor(spec_for("approval.granted"), "agent")
    assert str(caught.value) == "approval.granted must be emitted by a human actor, not 'agent'"


def test_wrong_actor_kind_lists_every_allowed_kind() -> None:
    with pytest.raises(SchemaViolation) as caught:
        check_actor(spec_for("trust.changed"), ActorKind.agent)
    assert str(caught.value) == "trust.changed must be emitted by a policy or system actor, not 'agent'"


EVIDENCE_EMITTERS: dict[str, set[ActorKindName]] = {
    "model.output.recorded": {"model"},
    "tool.call.completed": {"tool"},
    "tool.call.failed": {"tool"},
    "approval.granted": {"human"},
    "approval.denied": {"human"},
    "outcome.recorded": {"system", "human"},
    "policy.decision": {"policy"},
    "trust.changed": {"policy", "system"},
    "scope.narrowed": {"policy", "system"},
    "scope.widened": {"policy", "system"},
    "mission.close.refused": {"policy", "system"},
}


@pytest.mark.parametrize("event_type", sorted(EVIDENCE_EMITTERS))
def test_evidence_kinds_are_distinct_by_construction(event_type: str) -> None:
    spec = spec_for(event_type)
    assert spec.actor_kinds == EVIDENCE_EMITTERS[event_type]
    for kind in ActorKind:
        if kind.value in EVIDENCE_EMITTERS[event_type]:
            check_actor(spec, kind.value)
        else:
            with pytest.raises(SchemaViolation, match=f"not '{kind.value}'$"):
                check_actor(spec, kind.value)


def test_agents_cannot_close_their_own_missions() -> None:
    with pytest.raises(SchemaViolation) as caught:
        check_actor(spec_for("mission.closed"), "agent")
    assert str(caught.value) == "mission.closed must be emitted by a human, policy or system actor, not 'agent'"


def test_event_about_a_mission_needs_its_mission_id() -> None:
    with pytest.raises(SchemaViolation) as caught:
        check_context(spec_for("mission.step.recorded"), agent_id="a-1", mission_id=None)
    assert str(caught.value) == "mission.step.recorded needs mission_id in the envelope: the mission it is about"
    with pytest.raises(SchemaViolation) as caught:
        check_context(spec_for("scope.narrowed"), agent_id=None, mission_id="m-1")
    assert str(caught.value) == "scope.narrowed needs agent_id in the envelope: the agent it is about"
    check_context(spec_for("key.registered"), agent_id=None, mission_id=None)


# --- speed ------------------------------------------------------------------------------------------------


def test_validation_keeps_up_with_twenty_thousand_events_a_second() -> None:
    cases = [(spec_for(name), example.submission()["payload"]) for name, example in EXAMPLES.items()]
    rounds = 20_000 // len(cases) + 1
    started = time.perf_counter()
    for _ in range(rounds):
        for spec, payload in cases:
            validate_payload(spec, payload)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{rounds * len(cases)} validations took {elapsed:.2f}s"
