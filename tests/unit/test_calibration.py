"""Conformal calibration of the p10-p90 band."""

from __future__ import annotations

import numpy as np
import pytest

from nordiqd import calibration


def coverage(q: np.ndarray, actual: np.ndarray) -> float:
    return float(((actual >= q[..., 0]) & (actual <= q[..., -1])).mean())


def biased(n_groups: int, n: int, *, seed: int, bias: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts [groups, n, 3] whose median is off by ``bias`` and band ``width`` sigmas wide."""
    scale = np.random.default_rng(0).uniform(0.5, 5.0, size=(n_groups, 1))  # each group keeps its scale
    rng = np.random.default_rng(seed)
    actual = rng.normal(0.0, 1.0, size=(n_groups, n)) * scale
    median = np.full_like(actual, bias) * scale
    q = np.stack([median - width * scale, median, median + width * scale], axis=-1)
    return q, actual


@pytest.mark.parametrize(("bias", "width"), [(0.8, 1.28), (0.0, 0.5), (0.0, 3.0), (-1.0, 1.6)])
def test_a_biased_or_miswide_band_is_moved_to_nominal_coverage(bias: float, width: float) -> None:
    past_q, past_y = biased(200, 60, seed=1, bias=bias, width=width)
    new_q, new_y = biased(200, 60, seed=2, bias=bias, width=width)
    before = coverage(new_q, new_y)
    band = calibration.shift(past_q[..., 0], past_q[..., -1], past_y)
    after = coverage(calibration.apply(new_q, band, median_index=1), new_y)
    assert abs(before - 0.8) > 0.05  # the test starts from a band that is off
    assert abs(after - 0.8) <= 0.05, (before, after)


def test_each_tail_is_calibrated_on_its_own() -> None:
    past_q, past_y = biased(100, 200, seed=3, bias=0.8, width=1.28)
    new_q, new_y = biased(100, 200, seed=4, bias=0.8, width=1.28)
    out = calibration.apply(new_q, calibration.shift(past_q[..., 0], past_q[..., -1], past_y), 1)
    below = (new_y < out[..., 0]).mean()
    above = (new_y > out[..., -1]).mean()
    assert abs(below - 0.1) < 0.03 and abs(above - 0.1) < 0.03


def test_too_few_points_keep_the_band_and_nan_is_skipped() -> None:
    q, y = biased(3, 30, seed=5, bias=2.0, width=0.5)
    y[0, 15:] = np.nan  # group 0 has 15 points
    band = calibration.shift(q[..., 0], q[..., -1], y, min_points=20)
    assert band.points.tolist() == [15, 30, 30]
    assert band.lower[0] == 0.0 and band.upper[0] == 0.0
    assert band.lower[1] > 0 > band.upper[1]  # a band too high moves down at both edges


def test_edges_never_cross_the_median() -> None:
    q = np.array([[[0.0, 1.0, 2.0]]])
    band = calibration.BandShift(lower=np.array([-5.0]), upper=np.array([-5.0]), points=np.array([99]))
    out = calibration.apply(q, band, median_index=1)
    assert out.tolist() == [[[1.0, 1.0, 1.0]]]
    assert q.tolist() == [[[0.0, 1.0, 2.0]]]  # not modified in place


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="one shape"):
        calibration.shift(np.zeros(3), np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="0 < lo < hi < 1"):
        calibration.shift(np.zeros(3), np.zeros(3), np.zeros(3), interval=(0.9, 0.1))
