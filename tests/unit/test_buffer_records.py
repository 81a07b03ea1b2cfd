"""Batch validation: all-or-nothing, every problem named by record index and field."""

from __future__ import annotations

import json
import math

import msgspec
import pyarrow as pa
import pytest

from nordiqd.buffer.batch import batch_schema, decode_batch, encode_batch
from nordiqd.buffer.errors import BatchRejected, BatchTooLarge
from nordiqd.buffer.records import DEFAULT_METRICS, RecordValidator

NOW = 1_735_732_800.0  # 2025-01-01T12:00:00Z


def good(i: int = 0, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "timestamp": NOW - 60 + i,
        "server_name": f"ppweb{i:03d}",
        "cpu_user_pct": 12.5,
    }
    record.update(fields)
    return record


@pytest.fixture
def validator() -> RecordValidator:
    return RecordValidator(
        profile_patterns=[("ppdb*", "database"), ("ppweb*", "web")], clock=lambda: NOW, max_batch_records=50
    )


def test_json_batch_becomes_columns(validator: RecordValidator) -> None:
    body = json.dumps({"records": [
        good(0, timestamp="2025-01-01T13:00:00+02:00", mem_used_pct=None),
        good(1, server_name="ppdb01", cpu_user_pct=7),
        good(2, server_name="other-1.example.com", profile="custom"),
        good(3, server_name="zz_9"),
    ]}).encode()  # fmt: skip
    batch = validator.from_json(body)
    assert batch.schema == batch_schema(DEFAULT_METRICS)
    assert batch.column("timestamp").cast(pa.int64()).to_pylist()[0] == 1_735_729_200_000
    assert batch.column("profile").to_pylist() == ["web", "database", "custom", "generic"]
    assert batch.column("cpu_user_pct").to_pylist() == [12.5, 7.0, 12.5, 12.5]
    assert batch.column("mem_used_pct").null_count == 4  # absent or null: stored as null


def test_msgpack_and_decoded_records_give_the_same_batch(validator: RecordValidator) -> None:
    records = [good(i, load_average=1.25) for i in range(5)]
    from_msgpack = validator.from_msgpack(msgspec.msgpack.encode({"records": records}))
    assert from_msgpack.equals(validator.from_records(records))
    assert from_msgpack.equals(validator.from_json(msgspec.json.encode({"records": records})))


def test_duplicates_in_a_batch_are_kept_once_first_wins(validator: RecordValidator) -> None:
    batch = validator.from_records([good(0, cpu_user_pct=1.0), good(1), good(0, cpu_user_pct=2.0)])
    assert batch.num_rows == 2
    assert batch.column("cpu_user_pct").to_pylist() == [1.0, 12.5]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rogue", 1, "unknown field"),
        ("cpu_user_pct", "12", "must be a number"),
        ("cpu_user_pct", True, "must be a number, not bool"),
        ("cpu_user_pct", math.inf, "finite"),
        ("cpu_user_pct", math.nan, "finite"),
        ("cpu_user_pct", 1e39, "out of range"),
        ("timestamp", "yesterday", "not an ISO-8601"),
        ("timestamp", "2025-01-01T11:00:00", "UTC offset"),
        ("timestamp", 946_684_799, "before 2000"),
        ("timestamp", NOW + 301, "in the future"),
        ("timestamp", 1.2e308, "in the future"),  # x1000 overflows: once a 503 (internal error)
        ("timestamp", True, "ISO-8601 string or epoch seconds"),
        ("server_name", "web 01", "letters, digits"),
        ("server_name", "", "letters, digits"),
        ("server_name", "x" * 254, "letters, digits"),
        ("profile", "a/b", "letters, digits"),
        ("server_name", "web01\n", "letters, digits"),  # Python's "$" matches before a final newline
        ("profile", "web\n", "letters, digits"),
    ],
)
def test_each_rejection_names_record_and_field(
    validator: RecordValidator, field: str, value: object, message: str
) -> None:
    records = [good(0), good(1), good(2, **{field: value})]
    for decode in (
        validator.from_records,
        lambda r: validator.from_msgpack(msgspec.msgpack.encode({"records": r})),
    ):
        with pytest.raises(BatchRejected) as err:
            decode(records)
        [problem] = err.value.problems
        assert (problem.index, problem.field) == (2, field)
        assert message in problem.message


def test_json_specific_rejections(validator: RecordValidator) -> None:
    with pytest.raises(BatchRejected) as err:
        validator.from_json(
            b'{"records": [{"timestamp": 1735732000, "server_name": "a", "cpu_sys_pct": 1e999}]}'
        )
    assert [(p.index, p.field) for p in err.value.problems] == [(0, "cpu_sys_pct")]
    with pytest.raises(BatchRejected) as err:
        validator.from_json(b'{"records": [')
    assert err.value.problems[0].index is None and "not valid JSON" in str(err.value)


def test_missing_required_fields_and_batch_shape(validator: RecordValidator) -> None:
    with pytest.raises(BatchRejected) as err:
        validator.from_records([{"cpu_user_pct": 1.0}, "not a record"])  # type: ignore[list-item]
    got = [(p.index, p.field) for p in err.value.problems]
    assert got == [(0, "timestamp"), (0, "server_name"), (1, None)]
    for body in ({"records": []}, {"records": {}}, {"recs": []}, []):
        with pytest.raises(BatchRejected) as err:
            validator.from_msgpack(msgspec.msgpack.encode(body))
        assert err.value.problems[0].index is None


def test_every_problem_is_listed_up_to_a_cap() -> None:
    validator = RecordValidator(clock=lambda: NOW)
    records = [good(i, cpu_user_pct="x", mem_used_pct="y") for i in range(60)] + [good(60)]
    with pytest.raises(BatchRejected) as err:
        validator.from_records(records)
    assert err.value.total == 120 and len(err.value.problems) == BatchRejected.MAX_PROBLEMS
    body = err.value.to_dict()
    assert body["success"] is False and body["problem_count"] == 120
    assert body["problems"][1] == {
        "index": 0,
        "field": "mem_used_pct",
        "message": "must be a number, not str",
    }


def test_oversized_batch_is_too_large(validator: RecordValidator) -> None:
    with pytest.raises(BatchTooLarge):
        validator.from_msgpack(msgspec.msgpack.encode({"records": [good(i) for i in range(51)]}))


def test_bad_metric_names_are_refused() -> None:
    for metrics in (["cpu", "cpu"], ["timestamp"], ["Bad-Name"], ["series"], ["cpu\n"]):
        with pytest.raises(ValueError):
            RecordValidator(metrics)


def test_bad_profile_patterns_are_refused() -> None:
    for pattern in (("web*", "web server"), ("web *", "web"), ("web*", "")):
        with pytest.raises(ValueError):
            RecordValidator(profile_patterns=[pattern])


def test_ipc_round_trip(validator: RecordValidator) -> None:
    batch = validator.from_records([good(i) for i in range(3)])
    assert decode_batch(encode_batch(batch)).equals(pa.Table.from_batches([batch]))
