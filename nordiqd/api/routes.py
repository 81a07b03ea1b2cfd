"""The route table: the one list that both mounts the resources and writes /openapi.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Operation:
    """One method on one path, as OpenAPI describes it."""

    summary: str
    responses: dict[int, str]
    auth: bool = True
    params: tuple[tuple[str, str, str], ...] = ()  # (name, in, description)
    body: str | None = None


@dataclass(frozen=True)
class Route:
    """A path, the resource serving it and its operations by HTTP method."""

    path: str
    resource: object  # a Falcon resource (None only while the route table is being documented)
    operations: dict[str, Operation] = field(default_factory=dict)


def openapi(routes: list[Route], version: str) -> dict[str, Any]:
    """An OpenAPI 3.0 document describing every route in ``routes``."""
    paths: dict[str, Any] = {}
    for route in routes:
        entry = paths.setdefault(route.path, {})
        for method, op in route.operations.items():
            doc: dict[str, Any] = {
                "summary": op.summary,
                "responses": {
                    str(code): {"description": text} for code, text in sorted(op.responses.items())
                },
            }
            if not op.auth:
                doc["security"] = []
            params = [
                {
                    "name": n,
                    "in": where,
                    "description": d,
                    "required": where == "path",
                    "schema": {"type": "string"},
                }
                for n, where, d in op.params
            ]
            if params:
                doc["parameters"] = params
            if op.body:
                doc["requestBody"] = {
                    "description": op.body,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            entry[method.lower()] = doc
    return {
        "openapi": "3.0.3",
        "info": {"title": "nordiqd", "version": version},
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }
