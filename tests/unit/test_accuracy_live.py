"""LiveAccuracy, the facade the predictor holds: windows in, scores out, kept on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nordiqd import config
from nordiqd.accuracy.live import FILE_NAME, LiveAccuracy
from nordiqd.accuracy.reference import seasonal_naive_steps
from tests.unit.accuracy_fakes import T0

STEP = 300
DAY = 86400 // STEP  # 288 steps


def _series(n_servers: int, n_targets: int, steps: int, seed: int = 31) -> np.ndarray:
    """Daily-seasonal step means [S, steps, T] from T0 - 1 day on."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    base = 50 + 20 * np.sin(2 * np.pi * t / DAY)
    return base[None, :, None] + rng.normal(0, 3, (n_servers, steps, n_targets))


def _live(tmp_path: Path, **accuracy: int) -> LiveAccuracy:
    cfg = config.from_dict({"daemon": {"data_dir": str(tmp_path)}, "accuracy": accuracy})
    return LiveAccuracy.from_config(cfg)


def test_seasonal_naive_steps_read_the_window_a_day_back() -> None:
    windows = np.arange(2 * 300 * 1, dtype=np.float64).reshape(2, 300, 1)
    windows[0, 12, 0] = np.nan
    naive = seasonal_naive_steps(windows, horizon=20, season_steps=DAY)
    assert naive.shape == (2, 1, 20) and naive.dtype == np.float32
    # Step h is slot 300 + h; a day earlier is slot 12 + h.
    assert np.isnan(naive[0, 0, 0]) and naive[0, 0, 1] == 13 and naive[1, 0, 0] == 312
    short = seasonal_naive_steps(windows[:, :290], horizon=4, season_steps=DAY)
    assert short[1, 0].tolist() == [302, 303, 304, 305]
    assert np.isnan(seasonal_naive_steps(windows[:, :100], horizon=4, season_steps=DAY)).all()


def test_the_baseline_through_the_facade_has_skill_one_and_scores_each_step_once(tmp_path: Path) -> None:
    live = _live(tmp_path)
    assert live.path == tmp_path / "state" / FILE_NAME
    spec = config.from_dict({}).model
    n_t, horizon = len(spec.targets), spec.horizon_steps
    names = ["a", "b", "c"]
    data = _series(3, n_t, 2 * DAY)  # slot j starts at T0 - DAY * STEP + j * STEP
    start0 = T0 - DAY * STEP
    issued = []
    for at in live.due(T0 - 1, T0 + 10 * 3600):
        end = (at - start0) // STEP  # the window's last slot is the step before ``at``
        windows = data[:, end - DAY : end]
        naive = seasonal_naive_steps(windows, horizon, DAY)
        quantiles = np.stack([naive - 5, naive, naive + 5], axis=-1)
        live.observe(names, windows, at - STEP, through=at)
        assert live.issue(at, "baseline", "baseline", names, quantiles, windows)
        issued.append(at)
    assert issued[0] == T0 and len(issued) == 11
    final = T0 + 12 * 3600  # two more hours of data, no new issue point handled
    end = (final - start0) // STEP
    newest = data[:, end - DAY : end]
    assert live.observe(names, newest, final - STEP, through=final) > 0
    assert live.observe(names, newest, final - STEP, through=final) == 0
    (v,) = live.report().versions
    assert v.kind == "baseline" and v.skill == pytest.approx(1.0)
    assert {name: b.points > 0 for name, b in v.buckets.items()} == dict.fromkeys(
        ["0-1h", "1-4h", "4-8h", "all"], True
    )
    # Every (issue, server, target, step) that lies before the last step delivered, once.
    expected = sum(min(horizon, (final - at) // STEP) for at in issued) * 3 * n_t
    assert v.points == expected
    # The MASE scale comes from the scores themselves once a series has scored points.
    assert v.mase is not None and v.mase == pytest.approx(1.0, abs=0.1)


def test_save_reload_and_a_trailing_window(tmp_path: Path) -> None:
    live = _live(tmp_path, window_hours=2)
    assert live.due(T0 - 1, T0 + 2 * 3600) == [T0, T0 + 3600, T0 + 7200]
    spec = config.from_dict({}).model
    n_t, horizon = len(spec.targets), spec.horizon_steps
    windows = np.full((2, DAY, n_t), 12.0)
    forecasts = np.full((2, n_t, horizon, 3), 10.0, dtype=np.float32)
    live.issue(T0, "v1", "tft", ["a", "b"], forecasts, windows, scale=np.ones((2, n_t)))
    for k in range(48):  # four hours of 5-minute steps
        live.actuals(["a", "b"], np.array([T0 + k * STEP] * 2), np.full((2, n_t), 11.0))
    live.save()
    again = _live(tmp_path, window_hours=2)
    assert again.scored_through == T0 + 4 * 3600
    (v,) = again.trailing().versions
    assert v.points == 2 * n_t * 24 and v.skill == 1.0 and v.mase == 1.0
    assert v.from_ == "2023-11-14T02:00:00Z"
    assert again.report().versions[0].points == 2 * n_t * 48


def test_sums_older_than_retention_are_trimmed(tmp_path: Path) -> None:
    cfg = config.from_dict({"daemon": {"data_dir": str(tmp_path)}, "buffer": {"retention_days": 1}})
    live = LiveAccuracy.from_config(cfg)
    n_t, horizon = len(cfg.model.targets), cfg.model.horizon_steps
    windows = np.full((1, DAY, n_t), 12.0)
    forecasts = np.full((1, n_t, horizon, 3), 10.0, dtype=np.float32)
    for day in range(3):
        at = T0 + day * 86400
        assert live.issue(at, "v1", "tft", ["a"], forecasts, windows)
        assert live.actuals(["a"], np.array([at]), np.full((1, n_t), 11.0)) == n_t
        assert live.actuals(["a"], np.array([at + 86400 - STEP]), np.full((1, n_t), 11.0)) == 0
    assert sorted({h for (_, _, h) in live.ledger.book.fleet}) == [T0 + 2 * 86400]
    assert sorted({d for (_, _, d) in live.ledger.book.per_server}) == [T0 + 2 * 86400]
    assert live.report().versions[0].points == n_t
