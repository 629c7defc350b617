"""OpenAPI documentation of the hand-parsed request bodies (multipart and JSON), for every
route and dialect: FastAPI cannot infer a body the route reads itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from voxtral_gateway.protocol import ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 413, 429, 500, 502, 503, 504)
}


def body_schema(model: type[BaseModel], exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`openapi_extra` documenting `model`'s fields as a multipart form (plus the `file`
    upload) and as a JSON body, without the `exclude`d fields."""
    # Inline pydantic's `$defs`: a `#/$defs/...` ref inside an operation dangles in the OpenAPI
    # document (its root has no `$defs`), and schema-driven clients and fuzzers drop the body.
    fields = _inline_refs(model.model_json_schema())
    for name in exclude:
        fields["properties"].pop(name, None)
    multipart = {
        **fields,
        "properties": {"file": {"type": "string", "format": "binary"}, **fields["properties"]},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": fields},
            },
        }
    }


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", {})

    def _resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return _resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: _resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [_resolve(item) for item in node]
        return node

    return _resolve(schema)
