"""Per-series routing with real ledger objects: a scripted bad model is routed to a
baseline within its minimum points and back when it recovers; the served path is
cross-faded at bucket edges; the routing state survives a restart; [routing] errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nordiqd import config
from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.accuracy.reference import last_values
from nordiqd.accuracy.routing import CANDIDATES, LAST_VALUE, MODEL, SEASONAL_NAIVE, STATISTICAL, RoutingBook
from nordiqd.serving.routes import route, step_weights

STEP = 300
DAY = 86400 // STEP
T0 = 1_700_000_000 - 1_700_000_000 % 86400


def _live(tmp_path: Path, **routing: object) -> LiveAccuracy:
    cfg = config.from_dict(
        {
            "daemon": {"data_dir": str(tmp_path)},
            "model": {"targets": ["cpu_user_pct"], "horizon_steps": 12},  # one hour: the 0-1h bucket
            "routing": {"min_points": 24, "half_life_hours": 1.0, **routing},
        }
    )
    return LiveAccuracy.from_config(cfg)


def _walk(steps: int, seed: int = 5) -> np.ndarray:
    """A slow random walk [1 server, steps, 1 target]: the last value is hard to beat."""
    rng = np.random.default_rng(seed)
    return (50 + np.cumsum(rng.normal(0, 0.5, steps))).reshape(1, steps, 1)


class Scripted:
    """Issues hourly forecasts of a model whose p50 is off by ``offset`` (0: the truth)."""

    def __init__(self, live: LiveAccuracy, data: np.ndarray) -> None:
        self.live, self.data, self.at = live, data, T0 + DAY * STEP

    def hour(self, offset: float, version: str = "v1", challenger: float | None = None) -> None:
        at, horizon = self.at, self.live.ledger.horizon
        end = (at - T0) // STEP
        windows = self.data[:, end - DAY : end]
        truth = self.data[:, end : end + horizon, :].transpose(0, 2, 1)  # [S, T, H]
        p50 = truth + offset
        forecasts = np.stack([p50 - 1, p50, p50 + 1], axis=-1)
        fit = None if challenger is None else truth + challenger
        assert self.live.issue(at, version, "tft", ["web-1"], forecasts, windows, challenger=fit)
        starts = at + np.arange(horizon) * STEP
        self.live.actuals(["web-1"] * horizon, starts, self.data[0, end : end + horizon, :])
        self.at += 3600

    def route(self) -> int:
        choice = self.live.routes(["web-1"])
        assert choice is not None and choice.shape == (1, 1, 3)
        return int(choice[0, 0, 0])


def test_a_bad_model_is_routed_to_a_baseline_within_min_points_and_back_when_it_recovers(
    tmp_path: Path,
) -> None:
    live = _live(tmp_path)
    run = Scripted(live, _walk(DAY + 40 * 12 + 24))
    run.hour(offset=30.0)  # 12 points in 0-1h: fewer than min_points, the model serves
    assert run.route() == MODEL
    run.hour(offset=30.0)  # 24 points: the baselines have shown more skill
    assert CANDIDATES[run.route()] in ("last_value", "seasonal_naive")
    assert run.route() == LAST_VALUE  # a random walk: the last value beats yesterday's
    hours_back = None
    for h in range(1, 12):
        run.hour(offset=0.0)  # the model recovers: perfect forecasts from now on
        if run.route() == MODEL:
            hours_back = h
            break
    # A one-hour half-life: the bad hours' weight is soon small beside the good ones.
    assert hours_back is not None and hours_back <= 6, hours_back
    # A new version takes over the slot's record: a bad one is routed away as its errors come in.
    run.hour(offset=30.0, version="v2")
    assert run.route() == LAST_VALUE


def test_a_good_statistical_challenger_is_routed_to_and_kept_across_a_restart(tmp_path: Path) -> None:
    live = _live(tmp_path)
    run = Scripted(live, _walk(DAY + 100))
    run.hour(offset=30.0, challenger=0.01)
    run.hour(offset=30.0, challenger=0.01)
    assert CANDIDATES[run.route()] == "statistical"
    live.save()
    again = _live(tmp_path)
    assert again.routes(["web-1"]).tolist() == [[[STATISTICAL, 0, 0]]]
    kept = again.ledger.issues[-1]
    assert kept.challenger is not None and kept.challenger.dtype == np.float16
    np.testing.assert_array_equal(kept.challenger, live.ledger.issues[-1].challenger)


def test_routing_off_keeps_no_candidates(tmp_path: Path) -> None:
    live = _live(tmp_path, enabled=False)
    run = Scripted(live, _walk(DAY + 100))
    run.hour(offset=30.0)
    assert live.routes(["web-1"]) is None
    assert live.ledger.routes is None and live.ledger.issues[0].last is None


def test_the_routing_state_survives_a_restart(tmp_path: Path) -> None:
    live = _live(tmp_path)
    run = Scripted(live, _walk(DAY + 100))
    run.hour(offset=30.0)
    run.hour(offset=30.0)
    live.save()
    again = _live(tmp_path)
    assert again.routes(["web-1", "new-1"]).tolist() == [[[LAST_VALUE, 0, 0]], [[MODEL, 0, 0]]]
    routes, saved = again.ledger.routes, live.ledger.routes
    assert routes is not None and saved is not None
    np.testing.assert_array_equal(routes.points, saved.points)
    np.testing.assert_allclose(routes.error, saved.error)
    assert routes.decayed_to == saved.decayed_to
    np.testing.assert_array_equal(again.ledger.issues[-1].last, live.ledger.issues[-1].last)


def test_choose_needs_min_points_and_prefers_the_model_on_ties() -> None:
    book = RoutingBook(["cpu"], half_life_s=3600)
    rows, target, bucket = np.zeros(4, np.int64), np.zeros(4, np.int64), np.zeros(4, np.int64)
    errors = np.array([[2.0, 1.0, 2.0, np.nan]] * 4)  # the last value is better
    book.add(T0, rows, target, bucket, errors)
    assert book.choose(np.array([0]), min_points=5)[0, 0, 0] == MODEL
    assert book.choose(np.array([0]), min_points=4)[0, 0, 0] == LAST_VALUE
    zeros = np.zeros(40, np.int64)
    book.add(T0 + 3600, zeros, zeros, zeros, np.array([[0.5, 1.0, 1.0, np.nan]] * 40))
    assert book.choose(np.array([0, -1, 7]), min_points=4)[:, 0, 0].tolist() == [MODEL, MODEL, MODEL]
    assert book.nbytes == 3 * 1 * 1 * 3 * 4 * 8


def test_a_candidate_without_a_forecast_now_leaves_its_bucket_to_the_best_of_the_rest() -> None:
    book = RoutingBook(["cpu", "mem"], half_life_s=3600)
    n = 8
    rows, bucket = np.zeros(2 * n, np.int64), np.zeros(2 * n, np.int64)
    target = np.repeat([0, 1], n)
    # The challenger is best, the last value second, the model worst, on both targets.
    book.add(T0, rows, target, bucket, np.array([[3.0, 1.0, 2.0, 0.5]] * (2 * n)))
    assert book.choose(np.array([0]), min_points=4)[0, :, 0].tolist() == [STATISTICAL, STATISTICAL]
    absent = np.zeros((1, 2, len(CANDIDATES)), dtype=bool)
    absent[0, 1, STATISTICAL] = True  # its mem series is not fitted yet
    assert book.choose(np.array([0]), min_points=4, absent=absent)[0, :, 0].tolist() == [
        STATISTICAL,
        LAST_VALUE,
    ]


def test_last_values_skip_gaps() -> None:
    w = np.array([[[1.0, np.nan], [2.0, 5.0], [np.nan, np.nan]]])  # [1, 3, 2]
    assert last_values(w).tolist() == [[2.0, 5.0]]
    assert np.isnan(last_values(np.full((1, 3, 1), np.nan))).all()


def test_bucket_edges_are_cross_faded_and_quantiles_stay_ordered() -> None:
    spec = config.from_dict({"model": {"targets": ["cpu_user_pct"], "horizon_steps": 96}}).model
    horizon = spec.horizon_steps
    windows = np.full((1, DAY, 1), 20.0)  # flat: the last value 20 with a zero band
    model = np.broadcast_to(np.array([70.0, 80.0, 90.0]), (1, 1, horizon, 3)).astype(np.float32)
    choice = np.array([[[LAST_VALUE, MODEL, SEASONAL_NAIVE]]], dtype=np.int8)
    served, used = route(windows, model, choice, spec, blend_steps=3)
    assert used.tolist() == choice.tolist()
    p50 = served[0, 0, :, 1]
    assert p50[0] == pytest.approx(20.0) and p50[30] == pytest.approx(80.0) and p50[-1] == pytest.approx(20.0)
    # 0-1h ends at step 11: seven steps take the path from 20 to 80, none jumps the whole way.
    assert np.abs(np.diff(p50)).max() == pytest.approx(60 / 7, rel=1e-5)
    assert (np.diff(served[0, 0], axis=-1) >= 0).all()
    weights = step_weights(choice, horizon, STEP, 3)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
    hard = step_weights(choice, horizon, STEP, 0)
    assert hard[0, 0, 11].tolist() == [0, 1, 0, 0] and hard[0, 0, 12].tolist() == [1, 0, 0, 0]


def test_an_unfitted_challenger_leaves_the_model_serving_from_the_present() -> None:
    spec = config.from_dict({"model": {"targets": ["cpu_user_pct"], "horizon_steps": 12}}).model
    model = np.full((1, 1, 12, 3), 5.0, dtype=np.float32)
    choice = np.full((1, 1, 3), 3, dtype=np.int8)  # statistical
    windows = np.full((1, DAY, 1), 1.0)  # the present: 1, the model leaps to 5
    served, used = route(windows, model, choice, spec, 0, challenger=None)
    assert used.tolist() == [[[MODEL] * 3]] and served is model
    served, used = route(windows, model, choice, spec, 3, challenger=None)
    # From the present to the model over four steps: a ramp from 1 to 5, not a leap.
    assert served[0, 0, :5, 1].tolist() == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    assert served[0, 0, 1].tolist() == pytest.approx([2.0, 2.0, 2.0])  # the model's band, moved
    assert used.tolist() == [[[MODEL] * 3]]


@pytest.mark.parametrize(
    ("routing", "key", "says"),
    [
        ({"min_points": 0}, "routing.min_points", ">= 1"),
        ({"half_life_hours": 0}, "routing.half_life_hours", "> 0"),
        ({"enabled": "yes"}, "routing.enabled", "bool"),
        ({"blend_steps": 60}, "routing.blend_steps", "at most 48"),
        ({"min_point": 3}, "routing.min_point", "unknown key"),
    ],
)
def test_routing_config_errors_name_the_key(routing: dict[str, object], key: str, says: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.from_dict({"routing": routing}, "nordiqd.toml")
    assert f"key '{key}'" in str(err.value) and says in str(err.value), str(err.value)
