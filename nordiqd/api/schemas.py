"""JSON Schemas of what the REST API takes and gives, for ``/openapi.json``.

Each schema says exactly what the server checks, from the same definitions: the record
fields from ``nordiqd.names`` and the configured metrics (what
``buffer/records.py`` validates), the bodies the api builds from their msgspec Structs.
What a static document cannot say is in words: a timestamp later than ``[buffer]
max_future_s`` from now is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from nordiqd.api.bodies import HealthBody, IngestAccepted, StatusBody
from nordiqd.names import NAME_PATTERN

FLOAT32_MAX = 3.4028234663852886e38
EARLIEST_EPOCH_S = 946_684_800  # 2000-01-01T00:00:00Z, as buffer/records.py

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {"success": {"const": False}, "error": {"type": "string"}},
}
JSON_OBJECT: dict[str, Any] = {"type": "object"}
NAME: dict[str, Any] = {"type": "string", "pattern": NAME_PATTERN}
DATE_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}


def bodies() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The schemas of the Struct bodies by name, and the components they refer to."""
    structs = (HealthBody, StatusBody, IngestAccepted)
    refs, components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    return dict(zip((s.__name__ for s in structs), refs, strict=True)), components


def feed_body(metrics: Sequence[str], max_records: int, max_future_s: float) -> dict[str, Any]:
    """``{"records": [...]}`` as ``RecordValidator`` accepts it for these metrics."""
    value = {"type": ["number", "null"], "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    record = {
        "type": "object",
        "additionalProperties": False,
        "required": ["timestamp", "server_name"],
        "properties": {
            "timestamp": {
                "description": (
                    "RFC 3339 with an offset, or epoch seconds; from 2000-01-01 to at most "
                    f"{max_future_s:g} s after the server's clock"
                ),
                "anyOf": [{"type": "number", "minimum": EARLIEST_EPOCH_S}, DATE_TIME],
            },
            "server_name": NAME,
            "profile": {
                "description": "default: the first [schema] profile_patterns glob that matches",
                "anyOf": [NAME, {"type": "null"}],
            },
            **{name: value for name in metrics},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["records"],
        "properties": {
            "records": {"type": "array", "minItems": 1, "maxItems": max_records, "items": record},
        },
    }
