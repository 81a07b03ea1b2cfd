"""The backtest's ``routed`` entry and calibrated coverage: earlier folds only, smooth joins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from nordiqd.backtest import engine
from nordiqd.backtest.data import Grid, to_grid
from nordiqd.backtest.folds import make_buckets, make_folds
from nordiqd.backtest.routing import ROUTED, Router
from nordiqd.backtest.scoring import ALL
from nordiqd.model.params import ModelSpec

T0 = 1_735_689_600
SPEC = ModelSpec(targets=("cpu_user_pct",), encoder_steps=288, horizon_steps=96)
FOLDS = 5


def grid_of(servers: int = 2, seed: int = 0) -> Grid:
    steps = SPEC.encoder_steps + (FOLDS + 1) * SPEC.horizon_steps
    rng = np.random.default_rng(seed)
    cols: dict[str, list[object]] = {"timestamp": [], "server_name": [], "profile": [], "cpu_user_pct": []}
    for s in range(servers):
        values = 50 + 10 * np.sin(np.arange(steps) * 2 * np.pi / 288) + rng.normal(0, 3, steps)
        for i, v in enumerate(values):
            cols["timestamp"].append((T0 + i * 300) * 1000)
            cols["server_name"].append(f"s{s}")
            cols["profile"].append("web")
            cols["cpu_user_pct"].append(float(v))
    table = pa.table(cols)
    table = table.set_column(0, "timestamp", table["timestamp"].cast(pa.timestamp("ms", tz="UTC")))
    return to_grid(table, SPEC)


@dataclass
class Scripted:
    """Knows the future (reads the grid) and is off by ``offsets[fold]`` at each fold.

    ``fold`` counts forecasts made (0 = the earliest fold); the band is +-1.28 x 2.
    """

    name: str
    grid: Grid
    offsets: list[float]
    calls: int = 0

    def forecast(self, origin: engine.Origin) -> np.ndarray:
        start = origin.history.shape[1]
        future = self.grid.values[: origin.history.shape[0], start : start + SPEC.horizon_steps]  # [n, H, k]
        median = np.moveaxis(future, 1, 2) + self.offsets[self.calls]
        self.calls += 1
        return median[..., None] + np.array([-2.56, 0.0, 2.56])


def run(grid: Grid, models: list[engine.Forecaster]) -> engine.Outcome:
    folds = make_folds(grid, SPEC, FOLDS)
    return engine.run(grid, SPEC, folds, models, buckets=make_buckets(SPEC), route=True)


def test_routing_never_uses_the_folds_own_future() -> None:
    grid = grid_of()
    # naive is perfect on every earlier fold and 10 off on the last; the TFT the reverse.
    # Routed by earlier folds, the last fold must be naive's (error 10); a router that
    # looked at the last fold's own actuals would pick the TFT there (error 0).
    tft = Scripted("tft", grid, [10.0] * (FOLDS - 1) + [0.0])
    naive = Scripted("naive", grid, [0.0] * (FOLDS - 1) + [10.0])
    outcome = run(grid, [tft, naive])
    routed_abs = outcome.errors[ROUTED]._abs
    tft_abs, naive_abs = outcome.errors["tft"]._abs, outcome.errors["naive"]._abs
    # The earliest fold has no earlier one: the TFT serves.
    np.testing.assert_allclose(routed_abs[0], tft_abs[0])
    for fold in range(1, FOLDS):
        np.testing.assert_allclose(routed_abs[fold], naive_abs[fold])
    assert np.nanmean(routed_abs[-1]) > 1.0 > np.nanmean(tft_abs[-1])


def test_routes_per_bucket_and_joins_the_edges_smoothly() -> None:
    buckets = make_buckets(SPEC)
    router = Router(("tft", "naive"), buckets, servers=1, targets=1, min_points=12, blend_steps=5)
    servers = np.array([0])
    h = SPEC.horizon_steps
    truth = np.zeros((1, 1, h))
    scale = np.ones((1, 1))
    # Earlier fold: naive exact in the first hour and 5 off after; the TFT 1 off everywhere.
    naive_fc = np.where(np.arange(h) < 12, 0.0, 5.0)[None, None, :, None] * np.ones(3)
    tft_fc = np.ones((1, 1, h, 3))
    router.observe(servers, {"tft": tft_fc, "naive": naive_fc}, truth, scale, median=1)
    # Next fold: naive says 0, the TFT says 10 everywhere.
    now = {"tft": np.full((1, 1, h, 3), 10.0), "naive": np.zeros((1, 1, h, 3))}
    path = router.route(servers, now)[0, 0, :, 1]
    assert path[:10].tolist() == [0.0] * 10  # the first hour: naive
    assert np.allclose(path[15:], 10.0)  # after it: the TFT
    jumps = np.abs(np.diff(path))
    assert jumps.max() <= 10.0 / 5 + 1e-9  # the 0 -> 10 edge spread over 5 steps
    assert np.all(np.diff(path) >= 0)


def test_too_few_earlier_points_route_to_the_default() -> None:
    buckets = make_buckets(SPEC)
    router = Router(("tft", "naive"), buckets, servers=1, targets=1, min_points=200)
    servers = np.array([0])
    h = SPEC.horizon_steps
    router.observe(
        servers,
        {"tft": np.ones((1, 1, h, 3)), "naive": np.zeros((1, 1, h, 3))},
        np.zeros((1, 1, h)),
        np.ones((1, 1)),
        1,
    )
    path = router.route(servers, {"tft": np.full((1, 1, h, 3), 7.0), "naive": np.zeros((1, 1, h, 3))})
    assert np.all(path == 7.0)  # naive was better, but on 96 < 200 points


def test_a_candidate_without_a_forecast_is_never_routed_to() -> None:
    buckets = make_buckets(SPEC)
    router = Router(("tft", "naive"), buckets, servers=1, targets=1, min_points=1)
    servers, h = np.array([0]), SPEC.horizon_steps
    router.observe(
        servers,
        {"tft": np.ones((1, 1, h, 3)), "naive": np.zeros((1, 1, h, 3))},
        np.zeros((1, 1, h)),
        np.ones((1, 1)),
        1,
    )
    path = router.route(servers, {"tft": np.full((1, 1, h, 3), 7.0), "naive": np.full((1, 1, h, 3), np.nan)})
    assert np.all(path == 7.0)


def test_calibration_uses_earlier_folds_only_and_fixes_a_steady_bias() -> None:
    grid = grid_of(servers=4, seed=1)
    # The band (+-2.56 around the truth + offset) misses everything when 5 off: a steady
    # bias is learned from the earlier folds; a bias only in the last fold is not.
    steady = Scripted("tft", grid, [5.0] * FOLDS)
    sudden = Scripted("naive", grid, [0.0] * (FOLDS - 1) + [5.0])
    outcome = run(grid, [steady, sudden])
    whole = {name: e.summary(SPEC.targets, [])[SPEC.targets[0]][ALL] for name, e in outcome.errors.items()}
    assert whole["tft"]["coverage"] == pytest.approx(0.0)
    # Calibrated from the second fold on (the first has no earlier one): 4 of 5 folds.
    assert whole["tft"]["coverage_calibrated"] == pytest.approx((FOLDS - 1) / FOLDS, abs=0.05)
    last_naive = outcome.errors["naive"]._inside_cal[-1]
    assert np.nanmean(last_naive) == pytest.approx(0.0)  # its own future did not fix it


def test_routing_needs_buckets() -> None:
    grid = grid_of(servers=1)
    with pytest.raises(ValueError, match="buckets"):
        engine.run(grid, SPEC, make_folds(grid, SPEC, 1), [], route=True)
