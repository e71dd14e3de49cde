"""Payloads of evidence: model output, evidence attached to a criterion, outcomes and evaluations.

Evidence kinds are distinct by construction (DESIGN taxonomy): model output comes only from a model actor,
tool output only from a tool (`tool.call.completed`), human approval only from a human, a final outcome only
from the system or a human. `evidence.attached` points a mission criterion at one such event.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.envelope import EventIdStr, HashStr, IdStr
from schemas.payloads.base import (
    KEYS_ARE_NAMES,
    ActorKindName,
    ContextField,
    Count,
    EventPayload,
    EvidenceKind,
    KeyName,
    Millis,
    ModelName,
    Number,
    Score,
    ShortText,
    UriStr,
)

MISSION: frozenset[ContextField] = frozenset({"mission_id"})
Metrics = Annotated[dict[KeyName, Number], Field(max_length=64, json_schema_extra=KEYS_ARE_NAMES)]


class ModelOutputRecorded(EventPayload):
    """A model's output is recorded by digest, with a summary and token counts."""

    event_type: ClassVar[str] = "model.output.recorded"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"model"})

    model: ModelName = Field(description="The model that produced the output.")
    output_digest: HashStr = Field(description="Digest of the complete output.")
    summary: ShortText | None = Field(default=None, description="A short human-readable summary.")
    output_uri: UriStr | None = Field(default=None, description="Where the complete output is stored.")
    input_digest: HashStr | None = Field(default=None, description="Digest of the prompt and context sent.")
    tokens_in: Count | None = Field(default=None, description="Input tokens.")
    tokens_out: Count | None = Field(default=None, description="Output tokens.")
    latency_ms: Millis | None = Field(default=None, description="Time to the complete output, in milliseconds.")


class EvidenceAttached(EventPayload):
    """An event is attached as evidence that a mission criterion is met."""

    event_type: ClassVar[str] = "evidence.attached"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    criterion_id: IdStr = Field(description="The criterion of `mission.criteria.set` it supports.")
    evidence_event_id: EventIdStr = Field(description="The event that is the evidence.")
    kind: EvidenceKind = Field(description="Which kind of evidence that event is.")
    digest: HashStr | None = Field(default=None, description="Digest of the evidence content (e.g. a document).")
    uri: UriStr | None = Field(default=None, description="Where the evidence content can be read.")
    note: ShortText | None = Field(default=None, description="How it shows the criterion is met.")


class OutcomeRecorded(EventPayload):
    """The final outcome of a mission is recorded by the system or a human, with optional metrics."""

    event_type: ClassVar[str] = "outcome.recorded"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"system", "human"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    outcome: Literal["success", "failure", "partial"] = Field(description="How it turned out.")
    summary: ShortText = Field(description="What happened.")
    metrics: Metrics = Field(
        default_factory=dict, description="Named numbers, e.g. {'tests_passed': 412, 'cost_usd': 1.84}."
    )


class EvaluationRecorded(EventPayload):
    """An evaluator's (or jury's) verdict on one event along one dimension."""

    event_type: ClassVar[str] = "evaluation.recorded"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "model", "system"})

    evaluator: IdStr = Field(description="The evaluator or jury, e.g. 'jury:code-review@3'.")
    subject_event_id: EventIdStr = Field(description="The event evaluated.")
    dimension: KeyName = Field(description="What was judged, e.g. 'correctness', 'safety'.")
    verdict: Literal["pass", "fail", "inconclusive"] = Field(description="The verdict.")
    score: Score | None = Field(default=None, description="A score from 0 to 1, when the evaluator gives one.")
    rationale: ShortText | None = Field(default=None, description="Why.")
