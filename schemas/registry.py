"""The registry of event types: for each (type, schema_version) its payload model and who may emit it.

Intake asks it to resolve a submission's type and version, validate the payload and check the actor kind
before anything is sequenced (guarantee 6: a refusal carries one precise line naming every problem). It runs
on every submission, so lookups are plain dicts and validation calls the model's cached core validator
directly; nothing is re-serialised. It never reads or writes the log.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ledger.errors import SchemaViolation, UnknownEventType, UnknownSchemaVersion
from schemas.envelope import ActorKind, EventIdStr, HashStr, IdStr, TimestampStr
from schemas.payloads import PAYLOAD_MODELS, EventPayload
from schemas.payloads.base import PATTERN_DESCRIPTIONS

PayloadModel: TypeAlias = type[BaseModel]


@dataclass(frozen=True)
class EventTypeSpec:
    """One (event type, schema version): its payload model, who may emit it, and what it means."""

    type: str
    version: int
    payload_model: PayloadModel
    actor_kinds: frozenset[str]
    description: str
    required_context: frozenset[str] = field(default=frozenset())
    """Envelope fields ("agent_id", "mission_id") that must be set: what the event is about."""


def _spec_of(model: type[EventPayload]) -> EventTypeSpec:
    lines = (model.__doc__ or "").strip().splitlines()
    description = lines[0].strip() if lines else ""
    return EventTypeSpec(
        type=model.event_type,
        version=model.schema_version,
        payload_model=model,
        actor_kinds=frozenset(model.actor_kinds),
        description=description,
        required_context=frozenset(model.required_context),
    )


def build_registry(models: Iterable[type[EventPayload]]) -> Mapping[str, Mapping[int, EventTypeSpec]]:
    """Index payload models by type and version, refusing a duplicate or a model that declares nonsense."""
    known_kinds = {kind.value for kind in ActorKind}
    registry: dict[str, dict[int, EventTypeSpec]] = {}
    for model in models:
        spec = _spec_of(model)
        versions = registry.setdefault(spec.type, {})
        if spec.version in versions:
            raise ValueError(f"{spec.type} v{spec.version} is declared twice")
        if not spec.actor_kinds or not spec.actor_kinds <= known_kinds:
            raise ValueError(f"{spec.type} v{spec.version} has invalid actor kinds {sorted(spec.actor_kinds)}")
        if not spec.description:
            raise ValueError(f"{spec.type} v{spec.version} has no docstring to describe it")
        versions[spec.version] = spec
    return MappingProxyType(
        {name: MappingProxyType(dict(sorted(versions.items()))) for name, versions in registry.items()}
    )


REGISTRY: Mapping[str, Mapping[int, EventTypeSpec]] = build_registry(PAYLOAD_MODELS)
"""type -> schema_version -> spec, for every registered payload model."""

_LATEST: dict[str, int] = {name: max(versions) for name, versions in REGISTRY.items()}
_TYPES: list[str] = sorted(REGISTRY)


def event_types() -> list[str]:
    """Every registered event type, sorted."""
    return list(_TYPES)


def latest_version(type: str) -> int:
    """The newest schema_version of `type` (what a submission without schema_version gets)."""
    try:
        return _LATEST[type]
    except KeyError:
        raise _unknown_type(type) from None


def spec_for(type: str, version: int | None = None) -> EventTypeSpec:
    """The spec of (type, version); version None means the newest one."""
    versions = REGISTRY.get(type)
    if versions is None:
        raise _unknown_type(type)
    if version is None:
        return versions[_LATEST[type]]
    spec = versions.get(version)
    if spec is None:
        known = ", ".join(str(number) for number in versions)
        raise UnknownSchemaVersion(f"{type} has no schema_version {_shown(version)}; known: {known}")
    return spec


def parse_payload(spec: EventTypeSpec, payload: object) -> BaseModel:
    """Validate `payload` (a dict parsed from JSON) against `spec` and return the typed payload model."""
    try:
        return spec.payload_model.__pydantic_validator__.validate_python(payload)  # type: ignore[no-any-return]
    except ValidationError as error:
        raise SchemaViolation(describe_problems(f"payload of {spec.type} v{spec.version}", error)) from None


def validate_payload(spec: EventTypeSpec, payload: object) -> None:
    """Refuse, with a SchemaViolation naming every problem on one line, a payload that does not fit `spec`."""
    parse_payload(spec, payload)


def check_actor(spec: EventTypeSpec, actor_kind: str) -> None:
    """Refuse an actor kind that may not emit this type (so evidence kinds stay distinct by construction)."""
    if actor_kind in spec.actor_kinds:
        return
    allowed = [kind.value for kind in ActorKind if kind.value in spec.actor_kinds]
    article = "an" if allowed[0][0] in "aeiou" else "a"
    raise SchemaViolation(
        f"{spec.type} must be emitted by {article} {_or_list(allowed)} actor, not {_shown(str(actor_kind))}"
    )


def check_context(spec: EventTypeSpec, *, agent_id: str | None, mission_id: str | None) -> None:
    """Refuse an event whose envelope lacks the agent_id or mission_id that it is about."""
    given = {"agent_id": agent_id, "mission_id": mission_id}
    missing = [name for name in sorted(spec.required_context) if given.get(name) is None]
    if missing:
        raise SchemaViolation(
            f"{spec.type} needs {' and '.join(missing)} in the envelope: the "
            f"{' and '.join(name.removesuffix('_id') for name in missing)} it is about"
        )


# --- wording of pydantic errors --------------------------------------------------------------------------

MAX_PROBLEMS = 20

_ENVELOPE_PATTERNS: dict[str, str] = {
    pattern: description
    for annotated, description in (
        (HashStr, "must be a digest: 'sha256:' and 64 lowercase hex digits"),
        (TimestampStr, "must be an RFC 3339 UTC timestamp like '2025-01-31T09:30:00.000000Z'"),
        (IdStr, "must be an id without whitespace"),
        (EventIdStr, "must be an event id: a letter or digit, then letters, digits or ._:@/- (at most 128)"),
    )
    for pattern in [getattr(meta, "pattern", None) for meta in get_args(annotated)[1:]]
    if isinstance(pattern, str)
}
_PATTERNS = {**_ENVELOPE_PATTERNS, **PATTERN_DESCRIPTIONS}

_JSON_TYPE_NAMES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}

_EXPECTED_TYPES: dict[str, str] = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}

_COMPARISONS: dict[str, tuple[str, str]] = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}

_CONTROL_CHARACTERS = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


def describe_problems(prefix: str, error: ValidationError) -> str:
    """One line: `prefix`, a colon, then every problem of `error` in clear words, separated by semicolons."""
    problems = [_describe(item) for item in error.errors(include_url=False)]
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more problems"]
    return f"{prefix}: {'; '.join(problems)}".translate(_CONTROL_CHARACTERS)


def _describe(item: ErrorDetails) -> str:
    kind = item["type"]
    loc = item["loc"]
    value = item.get("input")
    ctx: dict[str, Any] = item.get("ctx") or {}
    path = ".".join(_loc_part(part) for part in loc)
    if loc and loc[-1] == "[key]":
        subject = f"key {_shown(loc[-2])} of '{'.'.join(_loc_part(part) for part in loc[:-2])}'"
    elif loc:
        subject = f"'{path}'"
    else:
        subject = "payload"

    if kind == "missing":
        return f"'{path}' is required"
    if kind == "extra_forbidden":
        return f"unexpected field '{path}'"
    if kind == "literal_error":
        expected = ", ".join(str(ctx.get("expected", "")).rsplit(" or ", 1))
        return f"{subject} must be one of {expected} (got {_shown(value)})"
    if kind in _EXPECTED_TYPES:
        return f"{subject} must be {_EXPECTED_TYPES[kind]} (got {json_type(value)})"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        rule = _PATTERNS.get(pattern, f"must match the pattern {pattern}")
        return f"{subject} {rule} (got {_shown(value)})"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return f"{subject} must not be empty"
        return f"{subject} must be at least {ctx.get('min_length')} characters (got {_length(value)})"
    if kind == "string_too_long":
        return f"{subject} must be at most {ctx.get('max_length')} characters (got {_length(value)})"
    if kind == "too_short":
        return f"{subject} must have at least {_items(ctx.get('min_length'))} (got {ctx.get('actual_length')})"
    if kind == "too_long":
        return f"{subject} must have at most {_items(ctx.get('max_length'))} (got {_length(value)})"
    if kind in _COMPARISONS:
        symbol, bound = _COMPARISONS[kind]
        return f"{subject} must be {symbol} {ctx.get(bound)} (got {_shown(value)})"
    if kind == "finite_number":
        return f"{subject} must be a finite number (got {_shown(value)})"
    if kind in ("value_error", "assertion_error"):
        reason = str(ctx.get("error", item["msg"]))
        return reason if not loc else f"{subject}: {reason}"
    message = item["msg"]
    return f"{subject}: {message[:1].lower()}{message[1:]}"


def _loc_part(part: int | str) -> str:
    text = str(part)
    return text if len(text) <= 60 else text[:57] + "..."


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type ("integer", "object", ...), for messages about it."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _length(value: object) -> str:
    return str(len(value)) if isinstance(value, str | list | dict) else "?"


def _items(count: object) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _or_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _unknown_type(type: str) -> UnknownEventType:
    close = difflib.get_close_matches(type, _TYPES, n=1) if isinstance(type, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return UnknownEventType(f"unknown event type {_shown(type)}{hint}".translate(_CONTROL_CHARACTERS))
