"""The forecast-only forward pass gives the network's own predictions at the default size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nordiqd.model import artifacts, fitting
from nordiqd.model.artifacts import LoadedModel
from nordiqd.model.errors import ForecastCancelled, ModelError
from nordiqd.model.forecast import WindowForecaster
from nordiqd.model.inference import TftInference
from nordiqd.model.params import ModelSpec
from nordiqd.model.reference import predict_via_dataframe
from nordiqd.model.selection import FoldedSelection, select
from nordiqd.model.shapes import per_target
from tests.unit.test_model_training import fleet

DEFAULT = ModelSpec(max_windows_per_epoch=64, batch_size=32)  # default network, few windows
LAST = 1_735_862_400  # 2025-01-03T00:00:00Z


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    trained = fitting.fit(fleet(["s0", "s1", "s2"], hours=40), DEFAULT, epochs=1)
    root: Path = tmp_path_factory.mktemp("models")
    artifacts.publish(root, trained)
    return artifacts.load(root / artifacts.CURRENT, expect=DEFAULT)


def fleet_windows(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Windows of very different levels and spreads, for known and unseen names."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(1, 80, (n, 1, len(DEFAULT.targets)))
    spread = rng.uniform(0.1, 20, (n, 1, len(DEFAULT.targets)))
    windows = level + spread * rng.standard_normal((n, DEFAULT.encoder_steps, len(DEFAULT.targets)))
    names = [("s0", "s1", "s2", "never-seen")[i % 4] for i in range(n)]
    profiles = [("web", "db")[i % 2] for i in range(n)]
    return windows, names, profiles


def both(model: LoadedModel, last: np.ndarray, n: int = 12) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    windows, names, profiles = fleet_windows(n)
    x = WindowForecaster(model).inputs(windows, names, profiles, last)
    with torch.inference_mode():
        want = per_target(model.network(x)["prediction"])
        got = per_target(TftInference(model.network)(x))
    return want, got


def test_fast_pass_equals_the_network_when_windows_end_together(model: LoadedModel) -> None:
    want, got = both(model, np.full(12, LAST))
    assert len(got) == len(DEFAULT.targets) and got[0].shape == (12, DEFAULT.horizon_steps, 3)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


def test_fast_pass_equals_the_network_when_windows_end_apart(model: LoadedModel) -> None:
    last = LAST - 300 * np.arange(12) * 7  # every window at its own step: nothing shared
    want, got = both(model, last)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


def test_forecaster_keeps_input_order_when_it_groups_by_last_step(model: LoadedModel) -> None:
    windows, names, profiles = fleet_windows(6)
    last = np.array([LAST, LAST - 3600, LAST, LAST - 600, LAST - 3600, LAST])
    together = WindowForecaster(model, batch_size=4).forecast(windows, names, profiles, last).values
    for i in range(6):
        alone = WindowForecaster(model).forecast(
            windows[i : i + 1], names[i : i + 1], profiles[i : i + 1], last[i]
        )
        np.testing.assert_allclose(together[i], alone.values[0], rtol=1e-4, atol=1e-4)


def test_a_network_that_is_not_a_tft_is_refused() -> None:
    with pytest.raises(ModelError, match="needs a TFT"):
        TftInference(torch.nn.Linear(2, 2))


def test_a_cancelled_pass_stops_between_batches(model: LoadedModel) -> None:
    windows, names, profiles = fleet_windows(10)
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 2  # two batches done, the third is refused

    forecaster = WindowForecaster(model, batch_size=4)
    with pytest.raises(ForecastCancelled, match="after 8 of 10 servers"):
        forecaster.forecast(windows, names, profiles, LAST, cancelled=cancelled)
    assert forecaster.forecast(windows, names, profiles, LAST, cancelled=lambda: False).valid.all()


def test_workers_give_the_same_forecasts_as_one_thread(model: LoadedModel) -> None:
    windows, names, profiles = fleet_windows(20)
    last = np.where(np.arange(20) % 3 == 0, LAST - 300, LAST)
    one = WindowForecaster(model, batch_size=4, workers=1).forecast(windows, names, profiles, last).values
    three = WindowForecaster(model, batch_size=4, workers=3).forecast(windows, names, profiles, last).values
    np.testing.assert_array_equal(one, three)


def test_folded_and_unfolded_selection_equal_the_network_own(model: LoadedModel) -> None:
    net = model.network.eval()
    vsn = net.encoder_variable_selection
    rng = torch.Generator().manual_seed(0)
    b, t = 5, 40
    x = {name: torch.randn(b, t, 1, generator=rng) * 3 for name in vsn.input_sizes}
    x["hour_sin"] = torch.randn(1, t, 1, generator=rng).expand(b, t, 1)  # the same for every window
    context = torch.randn(b, 1, net.hparams.hidden_size, generator=rng)
    with torch.inference_mode():
        want = vsn(x, context.expand(b, t, -1))[0]
        folded = FoldedSelection(vsn)(x, context)
        unfolded = select(vsn, x, context)
    np.testing.assert_allclose(folded.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(unfolded.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_a_selection_over_embeddings_does_not_fold(model: LoadedModel) -> None:
    with pytest.raises(ModelError, match="prescaled reals"):
        FoldedSelection(model.network.static_variable_selection)


def test_metrics_that_never_move_in_some_or_all_windows_equal_the_network(model: LoadedModel) -> None:
    # Such a variable goes through its network once per window: in a batch where every
    # window is flat, and in one where only some are.
    windows, names, profiles = fleet_windows(12)
    swap, iowait = DEFAULT.targets.index("swap_used_pct"), DEFAULT.targets.index("cpu_iowait_pct")
    windows[::2, :, swap] = 0.0
    windows[:, :, iowait] = windows[:, :1, iowait]
    x = WindowForecaster(model).inputs(windows, names, profiles, np.full(12, LAST))
    with torch.inference_mode():
        want = per_target(model.network(x)["prediction"])
        got = per_target(TftInference(model.network)(x))
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


def test_windows_with_a_constant_target_match_model_predict(model: LoadedModel) -> None:
    # scale = eps for a target that never moves: float rounding is then the whole input,
    # so the forecaster must round as training's EncoderNormalizer does.
    windows, names, profiles = fleet_windows(6)
    swap = DEFAULT.targets.index("swap_used_pct")
    windows[:, :, swap] = np.array([12.34, 0.1, 3.3, 0.0, 57.77, 1.01])[:, None]
    fast = WindowForecaster(model).forecast(windows, names, profiles, LAST).values
    slow = predict_via_dataframe(model, windows, names, profiles, LAST)
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-3)
