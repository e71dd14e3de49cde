"""The base classes and constrained field types every event payload is built from.

Payloads are validated in strict mode on dicts parsed from JSON, so enumerations are `Literal`s, timestamps
are pattern-checked strings and numbers are finite and within the range RFC 8785 can encode (guarantee 1
hashes the canonical bytes). This module only describes shapes; it never normalises or rewrites a value.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

from schemas.envelope import EventIdStr, IdStr

MAX_SAFE_INT = 2**53 - 1
"""The largest integer an RFC 8785 (I-JSON) encoder represents exactly."""

ActorKindName = Literal["agent", "model", "tool", "human", "policy", "system"]
ContextField = Literal["agent_id", "mission_id"]

NOT_BLANK = r"\S"
TOOL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$"
KEY_NAME = r"^[a-z][a-z0-9_.:-]{0,63}$"
URI = r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$"

Title = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NOT_BLANK)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=20000, pattern=NOT_BLANK)]
ToolName = Annotated[str, StringConstraints(pattern=TOOL_NAME)]
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME)]
KeyName = Annotated[str, StringConstraints(pattern=KEY_NAME)]
UriStr = Annotated[str, StringConstraints(max_length=2048, pattern=URI)]

Level = Literal["sandbox", "canary", "production"]
LEVEL_ORDER: dict[str, int] = {"sandbox": 0, "canary": 1, "production": 2}
EvidenceKind = Literal["tool_output", "model_output", "human_approval", "outcome", "document"]

Score = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
Millis = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
PolicyVersion = Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
Number = Annotated[float, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]

PATTERN_DESCRIPTIONS: dict[str, str] = {
    NOT_BLANK: "must not be blank",
    TOOL_NAME: "must be a tool name: a letter or digit, then letters, digits or _.:/- (at most 128)",
    MODEL_NAME: "must be a model name: a letter or digit, then letters, digits or _.:/@+- (at most 128)",
    KEY_NAME: "must be a lowercase name: a letter, then lowercase letters, digits or _.:- (at most 64)",
    URI: "must be a URI with a scheme, such as 'https://…' or 's3://…'",
}
"""Human phrases for the patterns above, used by `schemas.registry` to word a schema violation."""

_Item = TypeVar("_Item", bound=Hashable)


def _distinct(items: Sequence[_Item]) -> Sequence[_Item]:
    seen: set[_Item] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate item {item!r}")
        seen.add(item)
    return items


DISTINCT = AfterValidator(_distinct)
"""Refuses a list with a repeated item; pair it with `UNIQUE` so the JSON Schema says the same."""
UNIQUE: JsonDict = {"uniqueItems": True}

KEYS_ARE_NAMES: JsonDict = {"propertyNames": {"pattern": KEY_NAME}}
"""JSON Schema for an object keyed by `KeyName` (patternProperties alone would allow other keys)."""

EventIds = Annotated[list[EventIdStr], Field(max_length=100, json_schema_extra=UNIQUE), DISTINCT]
"""Distinct event_ids, cited as evidence or provenance."""
Ids = Annotated[list[IdStr], Field(max_length=500, json_schema_extra=UNIQUE), DISTINCT]
"""Distinct ids (criteria, calls, memory items, agents)."""


class PayloadPart(BaseModel):
    """Base of every payload model and of the objects nested inside payloads."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class EventPayload(PayloadPart):
    """Base of the payload of one (event type, schema version); the class variables register it."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    actor_kinds: ClassVar[frozenset[ActorKindName]]
    required_context: ClassVar[frozenset[ContextField]] = frozenset()
    """Envelope fields (agent_id, mission_id) that must be set for this type: the event is about them."""


def any_of_required(*names: str) -> JsonDict:
    """JSON Schema saying at least one of `names` is present and not null (pair with `require_any`)."""
    return {"anyOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]}


def _given(model: BaseModel, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if getattr(model, name) is not None]


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{name}'" for name in names[:-1]) + f" or '{names[-1]}'"


def require_any(model: BaseModel, *names: str) -> None:
    """Refuse `model` unless at least one of the fields `names` is given (not null)."""
    if not _given(model, names):
        raise ValueError(f"at least one of {_quoted(names)} must be given")
