"""Policies: the versioned TOML document every projection folds under, its pydantic model and its identity.

A policy file has a `name`, a `version` and one section per projection (`missions`, `memory`, `trust`,
`scope`). Its id is `sha256:` of the RFC 8785 canonical JSON of the validated document (defaults filled in), so
two files that mean the same policy have the same id. It enters the log as `policy.published` before it is
used and as `policy.activated` when it takes effect. This module parses text it is given; reading the file
is the caller's (`consumers/policy_files.py`), so projections stay free of I/O.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledger.canonical import digest
from ledger.errors import UsageError
from schemas.payloads.base import Level

LEVELS: tuple[Level, ...] = ("sandbox", "canary", "production")
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveCount = Annotated[int, Field(ge=1, le=1_000_000)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MissionPolicy(Section):
    """Evidence-gated closure: what a `mission.close.requested` with status completed must show."""

    require_criteria_evidence: bool = Field(
        default=True, description="Every done criterion needs at least one evidence.attached of an allowed kind."
    )
    require_tool_results: bool = Field(
        default=True, description="Every tool.call.requested in the mission needs its completed or failed result."
    )
    require_approvals: bool = Field(
        default=True,
        description="A criterion or tool call that requires approval needs an approval.granted before closing.",
    )


class MemoryPolicy(Section):
    """What the context packet leaves out."""

    default_ttl_days: Annotated[float, Field(gt=0, le=36_500)] | None = Field(
        default=90.0, description="An item without expires_at is stale this long after it was written; none: never."
    )
    max_items: PositiveCount = Field(default=50, description="At most this many items in one context packet.")


class TrustSignal(Section):
    """One kind of evidence about the agent of an event, counted on one trust dimension."""

    event: str = Field(description="The event type, e.g. 'tool.call.failed'.")
    when: dict[str, str] = Field(
        default_factory=dict,
        description="Payload fields that must have these values, e.g. {outcome = 'success'}; '*': any value.",
    )
    dimension: str = Field(description="The dimension it counts on; '$dimension' takes the payload's dimension.")
    effect: Literal["success", "failure"] = Field(description="Whether it is good or bad evidence.")
    weight: Annotated[float, Field(gt=0, le=100)] = Field(default=1.0, description="How much one event counts.")


class TrustPolicy(Section):
    """The trust model: decayed Beta evidence per (agent, dimension), scored by its Wilson lower bound."""

    dimensions: Annotated[list[str], Field(min_length=1, max_length=32)] = Field(
        default_factory=lambda: ["correctness", "safety", "policy_compliance", "reliability"]
    )
    prior_successes: Annotated[float, Field(ge=0, le=1000)] = Field(default=1.0)
    prior_failures: Annotated[float, Field(ge=0, le=1000)] = Field(default=1.0)
    half_life_days: Annotated[float, Field(gt=0, le=36_500)] = Field(
        default=30.0, description="Evidence loses half its weight over this many days of event time."
    )
    z: Annotated[float, Field(gt=0, le=5)] = Field(default=1.645, description="Lower bound at this normal quantile.")
    min_change: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.05, description="trust.changed is recorded when a score moves at least this much."
    )
    signals: list[TrustSignal] = Field(default_factory=list)


class ScopePolicy(Section):
    """How grants narrow after failures or violations and widen after sustained good evidence."""

    failures_to_narrow: PositiveCount = Field(
        default=2, description="Failures of one tool since the last scope change that narrow it one level."
    )
    narrow_on_violation: bool = Field(
        default=True, description="A denied approval or a denied call narrows the tool at once."
    )
    successes_to_widen: PositiveCount = Field(
        default=5, description="Successes since the last scope change needed to widen one level."
    )
    min_trust_to_widen: Fraction = Field(
        default=0.5, description="The agent's reliability lower bound must be at least this to widen."
    )
    max_auto_level: Level = Field(default="canary", description="Widening never goes above this level.")
    escalate_at: list[Level] = Field(
        default_factory=lambda: list[Level](["production"]), description="Calls at these levels need a human approval."
    )


class Policy(BaseModel):
    """A whole policy document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    version: Annotated[int, Field(ge=1)]
    description: str = ""
    missions: MissionPolicy = Field(default_factory=MissionPolicy)
    memory: MemoryPolicy = Field(default_factory=MemoryPolicy)
    trust: TrustPolicy = Field(default_factory=TrustPolicy)
    scope: ScopePolicy = Field(default_factory=ScopePolicy)

    @model_validator(mode="after")
    def _signals_name_known_dimensions(self) -> Policy:
        known = set(self.trust.dimensions)
        for index, signal in enumerate(self.trust.signals):
            if signal.dimension != "$dimension" and signal.dimension not in known:
                raise ValueError(
                    f"trust.signals[{index}].dimension {signal.dimension!r} is not one of trust.dimensions"
                )
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Policy:
        copied = super().model_copy(update=update, deep=deep)
        for cached in ("document", "policy_id"):  # a copy with changes is another policy
            copied.__dict__.pop(cached, None)
        return copied

    @cached_property
    def document(self) -> dict[str, Any]:
        """The canonical content: what `policy.published` carries and the id is computed over."""
        return self.model_dump(mode="json")

    @cached_property
    def policy_id(self) -> str:
        return policy_id_of(self.document)  # computed once: folds cite it on every decision


def policy_id_of(document: dict[str, Any]) -> str:
    return digest(document)


def parse_policy(document: dict[str, Any], source: str = "policy") -> Policy:
    """Validate a policy document; a problem is refused with a message naming the field."""
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(part) for part in error["loc"]) or "(document)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "is not a known policy field"
            problems.append(f"{where}: {message}")
        raise UsageError(f"{source}: {'; '.join(problems)}") from None


def parse_policy_toml(text: str, source: str) -> Policy:
    """Validate the text of a TOML policy file."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    return parse_policy(document, source)
