"""Calibrated bands live, with real ledger objects: the ledger's recent band residuals
move a biased (too narrow, off-centre) p10-p90 band to its nominal 80 % coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nordiqd import config
from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.accuracy.routing import LAST_VALUE
from nordiqd.serving.routes import route

STEP = 300
DAY = 86400 // STEP
T0 = 1_700_000_000 - 1_700_000_000 % 86400
H = 12


def _cfg(tmp_path: Path) -> config.Config:
    return config.from_dict(
        {
            "daemon": {"data_dir": str(tmp_path)},
            "model": {"targets": ["cpu_user_pct"], "horizon_steps": H},
            "routing": {"min_points": 10_000},  # the model serves: this is about its band
        }
    )


def _coverage(tmp_path: Path, calibrate: bool) -> tuple[float, float]:
    """Raw and served coverage of a band 0.5 wide around a p50 that is 0.5 high, noise sd 1."""
    cfg = _cfg(tmp_path)
    live = LiveAccuracy.from_config(cfg)
    rng = np.random.default_rng(11)
    windows = np.full((1, DAY, 1), 50.0)
    p50 = np.full((1, 1, H), 50.5)
    forecasts = np.stack([p50 - 0.25, p50, p50 + 0.25], axis=-1)
    inside_raw = inside_served = total = 0
    for k in range(60):
        at = T0 + DAY * STEP + k * 3600
        bands = live.bands(["web-1"]) if calibrate else None
        served, _ = route(windows, forecasts, np.zeros((1, 1, 3), np.int8), cfg.model, 0, None, bands)
        assert live.issue(at, "v1", "tft", ["web-1"], forecasts, windows)
        actual = 50.0 + rng.normal(0, 1, H)
        live.actuals(["web-1"] * H, at + np.arange(H) * STEP, actual[:, None])
        live.refresh_bands()  # as the accuracy thread does after each issue point
        if k >= 20:  # once the rings hold their recent residuals
            inside_raw += int(((forecasts[0, 0, :, 0] <= actual) & (actual <= forecasts[0, 0, :, 2])).sum())
            inside_served += int(((served[0, 0, :, 0] <= actual) & (actual <= served[0, 0, :, 2])).sum())
            total += H
    return inside_raw / total, inside_served / total


def test_a_biased_band_is_calibrated_to_within_5_points_of_80_percent(tmp_path: Path) -> None:
    raw, served = _coverage(tmp_path, calibrate=True)
    assert raw < 0.25  # the model's own band: far too narrow
    assert 0.75 <= served <= 0.85, served


def test_calibration_off_serves_the_model_band(tmp_path: Path) -> None:
    raw, served = _coverage(tmp_path, calibrate=False)
    assert served == raw


def test_a_baseline_band_is_built_from_its_own_residuals(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    live = LiveAccuracy.from_config(cfg)
    rng = np.random.default_rng(3)
    model = np.broadcast_to(np.array([40.0, 60.0, 80.0]), (1, 1, H, 3)).astype(np.float32)
    for k in range(20):
        at = T0 + DAY * STEP + k * 3600
        windows = np.full((1, DAY, 1), 50.0)
        assert live.issue(at, "v1", "tft", ["web-1"], model, windows)
        live.actuals(["web-1"] * H, at + np.arange(H) * STEP, (50.0 + rng.normal(0, 2, H))[:, None])
    before = live.bands(["web-1"])  # as computed at start, from no residuals: no shift anywhere
    assert before is not None and not before.points.any() and not before.lower.any()
    live.refresh_bands()
    bands = live.bands(["web-1"])
    assert bands is not None and bands.points.shape == (1, 1, 3, 4)
    live.save()
    again = LiveAccuracy.from_config(cfg)  # a restart computes them from the saved rings
    restored = again.bands(["web-1"])
    assert restored is not None and np.array_equal(restored.lower, bands.lower)
    choice = np.full((1, 1, 3), LAST_VALUE, np.int8)
    served, _ = route(np.full((1, DAY, 1), 50.0), model, choice, cfg.model, 0, None, bands)
    # A flat window has no change scale: the last value's own band is zero wide. Calibrated,
    # it spans about +-1.28 sd of its errors (sd 2) around the last value.
    lo, mid, hi = served[0, 0, 0]
    assert mid == 50.0 and 1.5 < mid - lo < 4.5 and 1.5 < hi - mid < 4.5, served[0, 0, 0]
