"""OpenAPI for routes that read their body raw: declare the body schema from the `schemas/` models anyway.

The intake routes must hand the ledger the bytes as sent (guarantee 6), so FastAPI cannot parse their body
into a model. `json_body` declares the request body in the route's `openapi_extra`, pointing at a component,
and `add_components` puts those models (and the models they use) into the spec. The spec stays generated from
the models, never written by hand.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF_TEMPLATE = "#/components/schemas/{model}"


def component_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def json_body(schema: dict[str, Any], description: str, example: Any = None) -> dict[str, Any]:
    """`openapi_extra` of a route whose JSON body is read raw but has this schema (and, optionally, an example)."""
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "description": description, "content": {"application/json": content}}}


def add_components(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add `models` (as validated on input) and the models they refer to, to the spec's components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            _, definitions = models_json_schema([(model, "validation") for model in models], ref_template=REF_TEMPLATE)
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in definitions.get("$defs", {}).items():
                components.setdefault(name, schema)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the spec
