"""Generate the JSON Schema files of the contract from the pydantic models: `python -m schemas.generate`.

Writes `schemas/json/`: the submission, envelope and receipt schemas, one schema per (event type, version)
under `payloads/`, and `index.json`. Output is deterministic (sorted keys, 2-space indent, trailing newline)
so `--check` can compare bytes: it exits 1 listing stale, missing and extra files, 0 when up to date. The
schemas are only ever generated from the models, never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.envelope import SPEC, Envelope, Receipt, Submission
from schemas.registry import REGISTRY, EventTypeSpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parent / "json"


def payload_schema_path(spec: EventTypeSpec) -> str:
    """The path of a payload's schema file, relative to `schemas/json/`."""
    return f"payloads/{spec.type}.v{spec.version}.schema.json"


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The draft 2020-12 JSON Schema of a model as pydantic generates it for validation input."""
    return {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(mode="validation")}


def index_document() -> dict[str, Any]:
    """The index of the contract: every event type with its versions, actor kinds, description and file."""
    return {
        "spec": SPEC,
        "submission": "submission.schema.json",
        "envelope": "envelope.schema.json",
        "receipt": "receipt.schema.json",
        "event_types": {
            name: {
                "latest_version": max(versions),
                "versions": {
                    str(version): {
                        "schema": payload_schema_path(spec),
                        "actor_kinds": sorted(spec.actor_kinds),
                        "required_context": sorted(spec.required_context),
                        "description": spec.description,
                    }
                    for version, spec in versions.items()
                },
            }
            for name, versions in REGISTRY.items()
        },
    }


def encode(document: dict[str, Any]) -> bytes:
    """The one byte form of a generated file."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def render_all() -> dict[str, bytes]:
    """Every generated file: path relative to `schemas/json/` -> its exact bytes."""
    files = {
        "submission.schema.json": encode(model_schema(Submission)),
        "envelope.schema.json": encode(model_schema(Envelope)),
        "receipt.schema.json": encode(model_schema(Receipt)),
        "index.json": encode(index_document()),
    }
    for versions in REGISTRY.values():
        for spec in versions.values():
            files[payload_schema_path(spec)] = encode(model_schema(spec.payload_model))
    return dict(sorted(files.items()))


def existing_files(directory: Path) -> dict[str, bytes]:
    """The JSON files now under `directory`, by relative path."""
    if not directory.is_dir():
        return {}
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*.json"))
        if path.is_file()
    }


def differences(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """One line per file that is stale, missing or extra."""
    lines = [f"stale: {name}" for name in expected if name in actual and actual[name] != expected[name]]
    lines += [f"missing: {name}" for name in expected if name not in actual]
    lines += [f"extra: {name}" for name in actual if name not in expected]
    return lines


def write_all(directory: Path, files: dict[str, bytes]) -> list[str]:
    """Make `directory` hold exactly `files` (other JSON files are removed); return what changed."""
    changes = differences(files, existing_files(directory))
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != content:
            target.write_bytes(content)
    for line in changes:
        if line.startswith("extra: "):
            (directory / line.removeprefix("extra: ")).unlink()
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schemas.generate", description="Generate the JSON Schema files of the contract."
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help=f"target directory (default {SCHEMA_DIR})")
    args = parser.parse_args(argv)
    files = render_all()
    if args.check:
        problems = differences(files, existing_files(args.out))
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(
                f"{len(problems)} schema file(s) out of date: run `python -m schemas.generate`",
                file=sys.stderr,
            )
            return 1
        print(f"{len(files)} schema files up to date in {args.out}")
        return 0
    changes = write_all(args.out, files)
    for line in changes:
        print(line)
    print(f"{len(files)} schema files in {args.out} ({len(changes)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
