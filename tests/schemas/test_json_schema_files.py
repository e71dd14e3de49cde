"""The generated JSON Schema files: never stale, complete, and in agreement with the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.examples import EXAMPLES
from schemas.generate import SCHEMA_DIR, differences, existing_files, main, payload_schema_path, render_all
from schemas.registry import event_types, spec_for


def load(relative_path: str) -> dict[str, Any]:
    document = json.loads((SCHEMA_DIR / relative_path).read_text())
    assert isinstance(document, dict)
    return document


def test_schema_files_are_up_to_date() -> None:
    problems = differences(render_all(), existing_files(SCHEMA_DIR))
    assert not problems, "run `python -m schemas.generate`: " + ", ".join(problems)


def test_generation_is_deterministic() -> None:
    assert render_all() == render_all()
    for content in render_all().values():
        assert content.endswith(b"}\n")
        assert json.dumps(json.loads(content), indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n" == (
            content
        )


def test_index_lists_every_type_with_its_schema_file() -> None:
    index = load("index.json")
    assert sorted(index["event_types"]) == event_types()
    for name, entry in index["event_types"].items():
        spec = spec_for(name)
        assert entry["latest_version"] == spec.version
        version = entry["versions"][str(spec.version)]
        assert version["schema"] == payload_schema_path(spec)
        assert version["actor_kinds"] == sorted(spec.actor_kinds)
        assert version["description"] == spec.description
        assert (SCHEMA_DIR / version["schema"]).is_file()


def test_payload_schemas_are_draft_2020_12_and_closed() -> None:
    for name in event_types():
        schema = load(payload_schema_path(spec_for(name)))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["additionalProperties"] is False
        assert schema["description"] == spec_for(name).description


def test_check_reports_missing_stale_and_extra_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "missing: index.json" in capsys.readouterr().err

    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    capsys.readouterr()

    (tmp_path / "payloads" / "memory.read.v1.schema.json").write_text("{}\n")
    (tmp_path / "payloads" / "memory.erased.v1.schema.json").write_text("{}\n")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "stale: payloads/memory.read.v1.schema.json" in err
    assert "extra: payloads/memory.erased.v1.schema.json" in err

    assert main(["--out", str(tmp_path)]) == 0
    assert not (tmp_path / "payloads" / "memory.erased.v1.schema.json").exists()
    assert main(["--check", "--out", str(tmp_path)]) == 0


# --- agreement with an independent JSON Schema validator ----------------------------------------------------

jsonschema = pytest.importorskip("jsonschema")


def validator_for(relative_path: str) -> Any:
    schema = load(relative_path)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_example_payload_validates_against_its_schema_file(event_type: str) -> None:
    example = EXAMPLES[event_type]
    payload = json.loads(json.dumps(example.submission()["payload"]))
    validator_for(payload_schema_path(spec_for(event_type, example.version))).validate(payload)


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_example_submission_validates_against_the_submission_schema(event_type: str) -> None:
    validator_for("submission.schema.json").validate(EXAMPLES[event_type].submission())


BAD_PAYLOADS = [
    ("tool.call.requested", {"call_id": "c-1", "tool": "t", "level": "prod", "arguments": {}}),
    ("tool.call.requested", {"call_id": "c-1", "tool": "t", "level": "canary"}),
    ("mission.opened", {"title": "t", "objective": "o", "owner_agent_id": "a", "owner": "x"}),
    ("agent.revised", {"reason": "nothing changed"}),
    ("memory.written", {"memory_id": "m", "key": "k", "content": "c", "scope": "shared"}),
    (
        "memory.written",
        {"memory_id": "m", "key": "k", "content": "c", "scope": "agent", "shared_with": ["a"]},
    ),
    ("memory.read", {"memory_ids": ["m-1", "m-1"]}),
    ("outcome.recorded", {"outcome": "success", "summary": "s", "metrics": {"Bad Key": 1}}),
    ("evaluation.recorded", {"evaluator": "e", "subject_event_id": "e-1", "dimension": "d", "verdict": "ok"}),
]


@pytest.mark.parametrize(("event_type", "payload"), BAD_PAYLOADS)
def test_schema_file_refuses_what_the_registry_refuses(event_type: str, payload: dict[str, Any]) -> None:
    from ledger.errors import SchemaViolation
    from schemas.registry import validate_payload

    with pytest.raises(SchemaViolation):
        validate_payload(spec_for(event_type), payload)
    validator = validator_for(payload_schema_path(spec_for(event_type)))
    assert not validator.is_valid(payload)
