"""Schemathesis hooks for its runs against a live daemon (the test and the bench).

One rule of ``POST /feed/data`` depends on the clock: a timestamp lies between
2000-01-01 and ``[buffer] max_future_s`` after the server's now. A static document can
state the lower bound for numbers only and the upper bound not at all, so /openapi.json
says it in words; a schema-valid batch generated with a timestamp outside that window
gets the current time instead, just before it is sent. Every other value, and every
negative case, is sent as generated. Load with ``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import schemathesis

from nordiqd.api.schemas import EARLIEST_EPOCH_S

MAX_FUTURE_S = 300.0  # the default [buffer] max_future_s, which the runs use


def _epoch(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError):
            return math.nan  # not RFC 3339 as Python reads it: sent as generated, to be seen
    return math.nan


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Moves the timestamps of a positive ``POST /feed/data`` case into the window."""
    if case.operation.path != "/feed/data" or case.meta is None or not case.meta.generation.mode.is_positive:
        return
    records = case.body.get("records") if isinstance(case.body, dict) else None
    for record in records if isinstance(records, list) else ():
        if not isinstance(record, dict) or "timestamp" not in record:
            continue
        when = _epoch(record["timestamp"])
        if not math.isnan(when) and not EARLIEST_EPOCH_S <= when <= time.time() + MAX_FUTURE_S:
            record["timestamp"] = time.time() - 1.0
