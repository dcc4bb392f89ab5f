"""``/openapi.json``: an OpenAPI 3.1 document built from the route table and its models.

The request and response schemas are pydantic's JSON Schemas (2020-12, which OpenAPI 3.1
uses as is) of the very models the routes validate with and answer from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from .. import __version__
from .base import Operation, Reply

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"


def _is_model(body: Any) -> bool:
    return isinstance(body, type) and issubclass(body, BaseModel)


def openapi_document(ops: list[Operation], *, secured: bool) -> dict[str, Any]:
    """The OpenAPI document of ``ops``; ``secured``: every route needs a bearer token."""
    wanted: list[tuple[type[BaseModel], Any]] = []
    for op in ops:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        wanted += [(r.body, "serialization") for r in op.replies if _is_model(r.body)]
    unique = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(unique, ref_template=_REF)
    components: dict[str, Any] = top.get("$defs", {})

    def content(reply: Reply, media: str) -> dict[str, Any]:
        if reply.body is None:
            return {}
        if _is_model(reply.body):
            schema = refs[(reply.body, "serialization")]
        else:
            schema = TypeAdapter(reply.body).json_schema(mode="serialization")
        return {"content": {media: {"schema": schema}}}

    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        media_error = op.style.media_type
        responses: dict[str, Any] = {}
        for reply in op.replies:
            media = media_error if reply.status >= 400 else "application/json"
            entry: dict[str, Any] = {"description": reply.description, **content(reply, media)}
            if reply.headers:
                entry["headers"] = {
                    name: {"description": text, "required": True, "schema": {"type": "string"}}
                    for name, text in reply.headers.items()
                }
            responses[str(reply.status)] = entry
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": responses,
        }
        if op.description:
            operation["description"] = op.description
        if op.deprecated:
            operation["deprecated"] = True
        if op.params:
            operation["parameters"] = [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "description": p.description,
                    "schema": p.adapter.json_schema(mode="validation"),
                }
                for p in op.params
            ]
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "mcp-profiles REST API",
            "version": __version__,
            "description": "GetProfile-compatible (/v1) and AI-management-compatible "
            "(/umbraco/ai/management/api/v1) routes over the same profiles as /mcp. Unknown "
            "fields in request bodies are ignored; wrong types are a 400.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
