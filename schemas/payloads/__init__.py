"""The payload model of every event type and schema version of the DESIGN.md taxonomy.

Each model declares its `event_type`, `schema_version`, the actor kinds that may emit it and the envelope
fields it needs; `schemas.registry` builds the registry from `PAYLOAD_MODELS`. A payload names the parties
it involves beyond the envelope: the envelope's `agent_id` / `mission_id` say which agent or mission it is
about and are never repeated. Adding a schema version means adding a model here, never editing an old one.
"""

from __future__ import annotations

from schemas.payloads.agents import AgentRegistered, AgentRevised
from schemas.payloads.approvals import ApprovalDenied, ApprovalGranted, ApprovalRequested
from schemas.payloads.base import EventPayload, PayloadPart
from schemas.payloads.evidence import (
    EvaluationRecorded,
    EvidenceAttached,
    ModelOutputRecorded,
    OutcomeRecorded,
)
from schemas.payloads.keys import KeyRegistered, SubjectKeyDestroyed
from schemas.payloads.memory import MemoryRead, MemoryRevoked, MemoryWritten
from schemas.payloads.missions import (
    Criterion,
    HandoffAccepted,
    HandoffOffered,
    MissionClosed,
    MissionCloseRefused,
    MissionCloseRequested,
    MissionCriteriaSet,
    MissionOpened,
    MissionStepRecorded,
)
from schemas.payloads.policy import PolicyActivated, PolicyDecision, PolicyPublished
from schemas.payloads.tools import ToolCallCompleted, ToolCallFailed, ToolCallRequested
from schemas.payloads.trust_scope import ScopeGranted, ScopeNarrowed, ScopeRevoked, ScopeWidened, TrustChanged

PAYLOAD_MODELS: tuple[type[EventPayload], ...] = (
    AgentRegistered,
    AgentRevised,
    PolicyPublished,
    PolicyActivated,
    MissionOpened,
    MissionCriteriaSet,
    MissionStepRecorded,
    MissionCloseRequested,
    MissionClosed,
    MissionCloseRefused,
    ToolCallRequested,
    PolicyDecision,
    ToolCallCompleted,
    ToolCallFailed,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalDenied,
    ModelOutputRecorded,
    MemoryWritten,
    MemoryRead,
    MemoryRevoked,
    EvidenceAttached,
    OutcomeRecorded,
    EvaluationRecorded,
    TrustChanged,
    ScopeGranted,
    ScopeNarrowed,
    ScopeWidened,
    ScopeRevoked,
    HandoffOffered,
    HandoffAccepted,
    KeyRegistered,
    SubjectKeyDestroyed,
)
"""Every registered payload model, in taxonomy order."""

__all__ = [
    "PAYLOAD_MODELS",
    "AgentRegistered",
    "AgentRevised",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalRequested",
    "Criterion",
    "EvaluationRecorded",
    "EventPayload",
    "EvidenceAttached",
    "HandoffAccepted",
    "HandoffOffered",
    "KeyRegistered",
    "MemoryRead",
    "MemoryRevoked",
    "MemoryWritten",
    "MissionCloseRefused",
    "MissionCloseRequested",
    "MissionClosed",
    "MissionCriteriaSet",
    "MissionOpened",
    "MissionStepRecorded",
    "ModelOutputRecorded",
    "OutcomeRecorded",
    "PayloadPart",
    "PolicyActivated",
    "PolicyDecision",
    "PolicyPublished",
    "ScopeGranted",
    "ScopeNarrowed",
    "ScopeRevoked",
    "ScopeWidened",
    "SubjectKeyDestroyed",
    "ToolCallCompleted",
    "ToolCallFailed",
    "ToolCallRequested",
    "TrustChanged",
]
