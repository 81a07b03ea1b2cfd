"""json_arrays: the fleet body's numbers, formatted in bulk, read as msgspec writes them."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest

from nordiqd.serving.decimals import json_arrays


def reference(values: np.ndarray, decimals: int) -> list[bytes]:
    return [msgspec.json.encode(row) for row in np.round(values.astype(np.float64), decimals).tolist()]


@pytest.mark.parametrize("decimals", [1, 2, 3, 4, 6])
def test_random_rows_match_msgspec_byte_for_byte(decimals: int) -> None:
    rng = np.random.default_rng(decimals)
    values = rng.random((50, 96)) * 10.0 ** rng.integers(-4, 7, size=(50, 1))
    assert json_arrays(values, decimals) == reference(values, decimals)


def test_edge_values() -> None:
    values = np.array(
        [
            [0.0, 12.0, 0.1, 100.0, 1e-3, 4e-4, 5e-4, 999.9996, 1000.0, 1000.5],
            [7.0, 1_000_000.007, 123_456_789.5, 1e11 + 0.25, 0.0105, 2.5, 0.0015, 10.0, 1e6, 999_999.999],
        ]
    )
    assert json_arrays(values, 3) == reference(values, 3)
    assert json_arrays(values.astype(np.float32), 3) == reference(values.astype(np.float32), 3)


def test_negative_numbers_and_non_finite_values() -> None:
    values = np.array([[-1.5, -0.25, 3.0, np.nan], [np.inf, -np.inf, -1234.5678, 0.0]])
    out = [json.loads(row) for row in json_arrays(values, 3)]
    assert out == [[-1.5, -0.25, 3.0, None], [None, None, -1234.568, 0.0]]
    # msgspec writes -0.0 for a tiny negative; ours reads 0.0: the same JSON number.
    assert json.loads(json_arrays(np.array([[-0.0004]]), 3)[0]) == [0.0]


def test_a_row_of_nothing_but_nan() -> None:
    assert json_arrays(np.full((2, 3), np.nan), 3) == [b"[null,null,null]"] * 2


def test_huge_numbers_go_through_msgspec() -> None:
    values = np.array([[1e16, 2.5], [3.0, 1e300]])
    assert json_arrays(values, 3) == reference(values, 3)


def test_empty() -> None:
    assert json_arrays(np.zeros((0, 96)), 3) == []
    assert json_arrays(np.zeros((2, 0)), 3) == [b"[]", b"[]"]
