"""Per-bucket choices joined into one path: hard inside buckets, spread at the edges."""

from __future__ import annotations

import numpy as np
import pytest

from nordiqd.predict import blend


def test_weights_are_one_hot_inside_buckets_and_sum_to_one() -> None:
    choice = np.array([[0, 1, 1], [1, 1, 0]])  # two series, three buckets
    w = blend.weights(choice, [(0, 12), (12, 48), (48, 96)], candidates=2, width=5)
    assert w.shape == (2, 2, 96)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    assert w[0, 0, :10].tolist() == [1.0] * 10 and w[1, 0, 14:46].tolist() == [1.0] * 32
    assert np.all(w[1, 1, :46] == 1.0)  # the same choice across an edge: nothing to blend
    assert np.all(np.abs(np.diff(w[0, 0])) <= 1 / 5 + 1e-12)


def test_blend_ignores_nan_of_a_candidate_with_no_weight() -> None:
    forecasts = np.stack([np.full((1, 4, 3), 2.0), np.full((1, 4, 3), np.nan)])
    w = blend.weights(np.array([[0]]), [(0, 4)], candidates=2, width=3)
    assert blend.blend(forecasts, w).tolist() == [[[2.0] * 3] * 4]


def test_bad_width_or_spans_are_named() -> None:
    with pytest.raises(ValueError, match="odd"):
        blend.weights(np.array([[0]]), [(0, 4)], candidates=1, width=4)
    with pytest.raises(ValueError, match="2 bucket spans for 1 choices"):
        blend.weights(np.array([[0]]), [(0, 2), (2, 4)], candidates=1)
