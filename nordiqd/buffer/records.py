"""Validation of incoming record batches, all-or-nothing, into columnar batches.

A batch arrives as the bytes of ``{"records": [...]}`` (JSON over REST, msgpack from
agents over zmq) or as an already-decoded list of dicts. ``RecordValidator`` turns it
into one ``pyarrow.RecordBatch`` (schema: ``batch.batch_schema``) or raises
``BatchRejected`` listing every problem as (record index, field, message).

Two passes, because the common case must be fast: a typed msgspec decoder (a Struct
built from the metric list, unknown fields forbidden, numbers bounded to float32)
parses the bytes straight into typed values that are pivoted into columns and checked
with numpy. Only when that fails, or a vectorised check trips, does a slow per-record
pass run over the generically decoded body, which collects every problem (the fast
path stops at the first) and is the one source of truth for the error reply.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np
import pyarrow as pa

from nordiqd.names import DEFAULT_METRICS, NAME_RE, MetricName, ProfileName, ServerGlob, ServerName

from .batch import TIMESTAMP_TYPE, batch_schema
from .errors import BatchRejected, BatchTooLarge, RecordProblem

__all__ = ["DEFAULT_METRICS", "RecordValidator"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: anything older is a unit mistake

_Timestamp = Annotated[dt.datetime, msgspec.Meta(tz=True)]
_Metric = Annotated[float, msgspec.Meta(ge=-_FLOAT32_MAX, le=_FLOAT32_MAX)]
# The slow pass must see 1e999 as inf (to name the record) instead of failing the body.
_GENERIC_JSON = msgspec.json.Decoder(float_hook=float)
_GENERIC_MSGPACK = msgspec.msgpack.Decoder()


class RecordValidator:
    """Validates record batches against the configured metric list.

    Attributes:
        metrics: The accepted metric names, in column order.
        schema: The Arrow schema of the batches it produces.
    """

    def __init__(
        self,
        metrics: Sequence[str] = DEFAULT_METRICS,
        *,
        profile_patterns: Sequence[tuple[str, str]] = (),
        max_future_seconds: float = 300.0,
        max_batch_records: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Builds the typed decoders once.

        Args:
            metrics: Accepted metric names (lower-case identifiers, no duplicates).
            profile_patterns: Ordered ``(glob, profile)`` pairs; the first glob that
                matches a server name gives its profile when a record has none.
            max_future_seconds: How far ahead of ``clock()`` a timestamp may be.
            max_batch_records: Largest batch accepted; larger ones are BatchTooLarge.
            clock: Returns the current time as epoch seconds (injectable for tests).

        Raises:
            ValueError: A metric name is invalid, reserved or repeated, or a pattern or
                profile is not a glob or a profile name (``nordiqd.names``).
        """
        # The config loader decodes through the same types; this is the check for callers
        # that build a validator without a configuration (tests, benches, the backtest).
        self.metrics: tuple[str, ...] = msgspec.convert(tuple(metrics), tuple[MetricName, ...])
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metric names must be unique")
        self.schema = batch_schema(self.metrics)
        self._patterns: list[tuple[str, str]] = msgspec.convert(
            list(profile_patterns), list[tuple[ServerGlob, ProfileName]]
        )
        self._profiles: dict[str, str] = {}
        self._max_future_ms = max_future_seconds * 1000.0
        self._max_records = max_batch_records
        self._clock = clock
        self._fields = frozenset(("timestamp", "server_name", "profile", *self.metrics))
        record = msgspec.defstruct(
            "Record",
            [
                ("timestamp", _Timestamp | int | float),
                ("server_name", ServerName),
                ("profile", ProfileName | None, None),
                *[(name, _Metric | None, None) for name in self.metrics],
            ],
            forbid_unknown_fields=True,
        )
        self._record_list: Any = list[record]  # type: ignore[valid-type]
        body = msgspec.defstruct("Body", [("records", self._record_list)], forbid_unknown_fields=True)
        self._json: msgspec.json.Decoder[Any] = msgspec.json.Decoder(body)
        self._msgpack: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(body)

    def from_json(self, body: bytes | memoryview) -> pa.RecordBatch:
        """Validates the JSON bytes of ``{"records": [...]}`` into a batch.

        Raises:
            BatchRejected: With every problem found; BatchTooLarge for too many records.
        """
        try:
            records = self._json.decode(body).records
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._slow(_decode_or_reject(_GENERIC_JSON, body, "JSON"))
        return self._fast_or_slow(records, lambda: _GENERIC_JSON.decode(body))

    def from_msgpack(self, body: bytes | memoryview) -> pa.RecordBatch:
        """Validates the msgpack bytes of a ``{"records": [...]}`` map into a batch.

        Raises:
            BatchRejected: With every problem found; BatchTooLarge for too many records.
        """
        try:
            records = self._msgpack.decode(body).records
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._slow(_decode_or_reject(_GENERIC_MSGPACK, body, "msgpack"))
        return self._fast_or_slow(records, lambda: _GENERIC_MSGPACK.decode(body))

    def from_records(self, records: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
        """Validates an already-decoded list of record dicts into a batch.

        Raises:
            BatchRejected: With every problem found; BatchTooLarge for too many records.
        """
        try:
            typed = msgspec.convert(records, self._record_list)
        except msgspec.ValidationError:
            return self._slow({"records": records})
        return self._fast_or_slow(typed, lambda: {"records": records})

    def infer_profile(self, server_name: str) -> str:
        """Returns the profile of the first matching pattern, else ``"generic"``."""
        profile = self._profiles.get(server_name)
        if profile is None:
            profile = next(
                (p for glob, p in self._patterns if fnmatch.fnmatchcase(server_name, glob)),
                "generic",
            )
            if len(self._profiles) < 100_000:  # a bounded cache: names are a small set
                self._profiles[server_name] = profile
        return profile

    # -- fast path -----------------------------------------------------------------

    def _fast_or_slow(self, records: list[Any], generic: Callable[[], Any]) -> pa.RecordBatch:
        count = len(records)
        if count > self._max_records:
            raise _too_large(count, self._max_records)
        if count == 0:
            return self._slow(generic())
        columns = list(zip(*map(msgspec.structs.astuple, records), strict=True))
        ms = self._fast_timestamps(columns[0])
        if ms is None:
            return self._slow(generic())
        metrics = []
        for values in columns[3:]:
            array = np.array(values, dtype=np.float64)  # None becomes NaN
            if np.isinf(array).any():  # the decoder bounds numbers; this is a backstop
                return self._slow(generic())
            metrics.append(array)
        return self._assemble(ms, columns[1], columns[2], metrics)

    def _fast_timestamps(self, values: tuple[Any, ...]) -> np.ndarray | None:
        kinds = set(map(type, values))
        if kinds == {dt.datetime}:
            seconds = np.fromiter((v.timestamp() for v in values), np.float64, len(values))
        elif kinds <= {int, float}:
            seconds = np.array(values, dtype=np.float64)
        else:
            seconds = np.array([_epoch_seconds(v) for v in values], dtype=np.float64)
        with np.errstate(over="ignore"):  # past 1.8e305 s: inf, refused just below
            ms = np.rint(seconds * 1000.0)
        latest = self._clock() * 1000.0 + self._max_future_ms
        if not (np.isfinite(ms).all() and (ms >= _EARLIEST_MS).all() and (ms <= latest).all()):
            return None
        return ms.astype(np.int64)

    def _assemble(
        self,
        ms: np.ndarray,
        names: Sequence[str],
        profiles: Sequence[str | None],
        metrics: list[np.ndarray],
    ) -> pa.RecordBatch:
        """Builds the batch from checked columns, keeping the first of duplicates."""
        keep = _first_occurrences(names, ms)
        if keep is not None:
            ms = ms[keep]
            names = [names[i] for i in keep]
            profiles = [profiles[i] for i in keep]
            metrics = [m[keep] for m in metrics]
        infer = self.infer_profile
        arrays = [
            pa.array(ms, type=pa.int64()).view(TIMESTAMP_TYPE),
            pa.array(names, type=pa.string()),
            pa.array(
                [p if p is not None else infer(n) for p, n in zip(profiles, names, strict=True)], pa.string()
            ),
        ]
        for values in metrics:
            missing = np.isnan(values)
            arrays.append(pa.array(values.astype(np.float32), mask=missing if missing.any() else None))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    # -- slow path -----------------------------------------------------------------

    def _slow(self, body: Any) -> pa.RecordBatch:
        """Checks every record of a generically decoded body, collecting all problems."""
        problems: list[RecordProblem] = []
        records = _records_of(body, problems)
        if records is not None and len(records) > self._max_records:
            raise _too_large(len(records), self._max_records)
        if records == []:
            problems.append(RecordProblem(None, "records", "the batch holds no records"))
        latest = self._clock() * 1000.0 + self._max_future_ms
        ms: list[int] = []
        names: list[str] = []
        profiles: list[str | None] = []
        columns: list[list[float]] = [[] for _ in self.metrics]
        for index, record in enumerate(records or ()):
            if not isinstance(record, dict):
                problems.append(RecordProblem(index, None, "a record must be an object"))
                continue
            for key in record:
                if key not in self._fields:
                    problems.append(RecordProblem(index, str(key), "unknown field"))
            ms.append(_check_timestamp(index, record, latest, self._max_future_ms, problems))
            names.append(_check_name(index, record, "server_name", problems) or "")
            profiles.append(_check_name(index, record, "profile", problems))
            for column, name in zip(columns, self.metrics, strict=True):
                column.append(_check_metric(index, name, record.get(name), problems))
        if problems:
            raise BatchRejected(problems)
        return self._assemble(
            np.array(ms, dtype=np.int64), names, profiles,
            [np.array(c, dtype=np.float64) for c in columns],
        )  # fmt: skip


def _decode_or_reject(decoder: Any, body: bytes | memoryview, kind: str) -> Any:
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BatchRejected([RecordProblem(None, None, f"the body is not valid {kind}: {exc}")]) from None


def _too_large(count: int, limit: int) -> BatchTooLarge:
    message = f"the batch holds {count} records, more than the limit of {limit}"
    return BatchTooLarge([RecordProblem(None, "records", message)])


def _records_of(body: Any, problems: list[RecordProblem]) -> list[Any] | None:
    if not isinstance(body, dict):
        problems.append(RecordProblem(None, None, 'the body must be an object {"records": [...]}'))
        return None
    for key in body:
        if key != "records":
            problems.append(RecordProblem(None, str(key), "unknown field"))
    records = body.get("records")
    if records is None:
        problems.append(RecordProblem(None, "records", "required field is missing"))
    elif not isinstance(records, list):
        problems.append(RecordProblem(None, "records", "must be a list of records"))
        return None
    return records


def _first_occurrences(names: Sequence[str], ms: np.ndarray) -> np.ndarray | None:
    """Returns the indices to keep when (name, ms) repeats, else None."""
    keys = list(zip(names, ms.tolist(), strict=True))
    if len(set(keys)) == len(keys):
        return None
    seen: set[tuple[str, int]] = set()
    keep = []
    for index, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return np.array(keep, dtype=np.int64)


def _epoch_seconds(value: Any) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def _check_timestamp(
    index: int, record: dict[Any, Any], latest_ms: float, future_ms: float,
    problems: list[RecordProblem],
) -> int:  # fmt: skip
    value = record.get("timestamp")
    problem = None
    seconds = math.nan
    if value is None:
        problem = "required field is missing" if "timestamp" not in record else "must not be null"
    elif isinstance(value, dt.datetime):
        seconds = value.timestamp() if value.tzinfo else math.nan
        problem = None if value.tzinfo else "must carry a UTC offset"
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            problem = "is not an ISO-8601 timestamp"
        else:
            if parsed.tzinfo is None:
                problem = "ISO-8601 timestamp must carry a UTC offset (e.g. Z or +00:00)"
            else:
                seconds = parsed.timestamp()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _as_float(value)
        if not math.isfinite(seconds):
            problem = "must be a finite number of epoch seconds"
    else:
        problem = f"must be an ISO-8601 string or epoch seconds, not {type(value).__name__}"
    millis = seconds * 1000.0  # inf past 1.8e305 s: a finite number can still overflow here
    ms = round(millis) if math.isfinite(millis) else 0
    if problem is None and not math.isfinite(millis):
        problem = f"is more than {future_ms / 1000.0:g} s in the future"
    elif problem is None and ms < _EARLIEST_MS:
        problem = "is before 2000-01-01"
    elif problem is None and ms > latest_ms:
        problem = f"is more than {future_ms / 1000.0:g} s in the future"
    if problem is not None:
        problems.append(RecordProblem(index, "timestamp", problem))
    return ms


def _check_name(index: int, record: dict[Any, Any], field: str, problems: list[RecordProblem]) -> str | None:
    value = record.get(field)
    if value is None:
        if field == "server_name":
            missing = field not in record
            problems.append(
                RecordProblem(index, field, "required field is missing" if missing else "must not be null")
            )
        return None
    if not isinstance(value, str) or not NAME_RE.match(value):
        problems.append(RecordProblem(index, field, "must be 1-253 letters, digits, '.', '_' or '-'"))
        return None
    return value


def _check_metric(index: int, field: str, value: Any, problems: list[RecordProblem]) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(RecordProblem(index, field, f"must be a number, not {type(value).__name__}"))
        return math.nan
    number = _as_float(value)
    if math.isinf(number) and isinstance(value, int):
        problems.append(RecordProblem(index, field, "is out of range for a 32-bit float"))
    elif not math.isfinite(number):
        problems.append(RecordProblem(index, field, "must be a finite number"))
    elif abs(number) > _FLOAT32_MAX:
        problems.append(RecordProblem(index, field, "is out of range for a 32-bit float"))
    return number


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond float64: treat as infinite, reported by callers
        return math.inf
