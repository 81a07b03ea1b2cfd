"""The route table: the one list that both mounts the resources and writes /openapi.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nordiqd.api import schemas


@dataclass(frozen=True)
class Param:
    """One query or path parameter and the JSON Schema of the values the server takes."""

    name: str
    where: str  # "query" or "path"
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False  # a path parameter always is


@dataclass(frozen=True)
class Operation:
    """One method on one path, as OpenAPI describes it.

    ``media`` is the content type of the bodies below 400 (none for a 304); ``bodies``
    their schemas by status where one is known. An answer of 400 or more is the JSON
    error body unless ``bodies`` says otherwise.
    """

    summary: str
    responses: dict[int, str]
    auth: bool = True
    params: tuple[Param, ...] = ()
    body: str | None = None
    body_schema: dict[str, Any] = field(default_factory=lambda: dict(schemas.JSON_OBJECT))
    media: tuple[str, ...] = ("application/json",)
    bodies: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """A path, the resource serving it and its operations by HTTP method."""

    path: str
    resource: object  # a Falcon resource (None only while the route table is being documented)
    operations: dict[str, Operation] = field(default_factory=dict)


def _responses(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, text in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": text}
        if code >= 400:
            entry["content"] = {"application/json": {"schema": op.bodies.get(code, schemas.ERROR)}}
        elif code != 304:
            entry["content"] = {media: {"schema": op.bodies.get(code, {})} for media in op.media}
        out[str(code)] = entry
    return out


def openapi(routes: list[Route], version: str, components: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing every route in ``routes``."""
    paths: dict[str, Any] = {}
    for route in routes:
        entry = paths.setdefault(route.path, {})
        for method, op in route.operations.items():
            doc: dict[str, Any] = {"summary": op.summary, "responses": _responses(op)}
            if not op.auth:
                doc["security"] = []
            if op.params:
                doc["parameters"] = [
                    {
                        "name": p.name,
                        "in": p.where,
                        "description": p.description,
                        "required": p.required or p.where == "path",
                        "schema": p.schema,
                    }
                    for p in op.params
                ]
            if op.body:
                doc["requestBody"] = {
                    "description": op.body,
                    "required": True,
                    "content": {"application/json": {"schema": op.body_schema}},
                }
            entry[method.lower()] = doc
    return {
        "openapi": "3.1.0",
        "info": {"title": "nordiqd", "version": version},
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }
