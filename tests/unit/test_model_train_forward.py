"""The training forward computes the network's own function: outputs and gradients.

``train_forward.TftTraining`` replaces ``TemporalFusionTransformer.forward`` while a fit
runs. Without dropout both passes are the same function of the same parameters, so for
the same batch every output of the network's dict and the gradient of the loss in every
parameter must agree to float rounding; with dropout the pass must draw masks (train
mode) and draw none in eval mode, where it also gives the attention weights.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from pytorch_forecasting import TemporalFusionTransformer

from nordiqd.model.dataset import fitted_dataset, model_parameters
from nordiqd.model.network import build_network
from nordiqd.model.params import ModelSpec
from nordiqd.model.series import fleet_series
from nordiqd.model.stacked import StackedSelection
from nordiqd.model.train_forward import TftTraining, training_forward
from nordiqd.model.trainer import run_trainer
from nordiqd.model.windows import WindowBatches, training_windows
from tests.unit.test_model_windows import SINGLE, SPEC, fleet

OUTPUTS = (
    "prediction",
    "encoder_attention",
    "decoder_attention",
    "static_variables",
    "encoder_variables",
    "decoder_variables",
)


def network_and_batches(spec: ModelSpec) -> tuple[TemporalFusionTransformer, WindowBatches]:
    series = fleet_series(fleet(spec), spec)
    index = training_windows(series, spec, seed=5)
    prototype, weights = fitted_dataset(series, index, spec)
    torch.manual_seed(0)
    network = build_network(prototype, spec, weights)
    params = model_parameters(prototype.get_parameters())
    hp = network.hparams
    return network, WindowBatches(series, index, spec, params, hp.x_reals, hp.x_categoricals)


def loss_and_gradients(
    network: TemporalFusionTransformer, x: dict[str, Any], y: Any, fast: bool
) -> tuple[Any, dict[str, torch.Tensor]]:
    network.zero_grad()
    if fast:
        with training_forward(network):
            out = network(x)
    else:
        out = network(x)
    network.loss(out["prediction"], y).backward()
    return out, {n: p.grad.clone() for n, p in network.named_parameters() if p.grad is not None}


def assert_same_outputs(got: Any, want: Any, keys: tuple[str, ...] = OUTPUTS) -> None:
    for key in keys:
        a, b = want[key], got[key]
        for w, g in zip(a, b, strict=True) if isinstance(a, list) else [(a, b)]:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")


SHAPES = {
    "five-targets-2-heads": {**SPEC.to_dict(), "attention_heads": 2},
    "one-target-1-head": SINGLE.to_dict(),
}


@pytest.mark.parametrize("base", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_outputs_and_gradients_equal_the_network_forward(base: dict[str, Any], padded: bool) -> None:
    network, batches = network_and_batches(ModelSpec(**{**base, "dropout": 0.0}))
    network.train()
    assert isinstance(network.encoder_variable_selection, torch.nn.Module)
    # The encoder and decoder selections really run stacked, not through the module.
    fast = TftTraining(network)
    assert isinstance(fast._encoder_selection, StackedSelection)
    assert isinstance(fast._decoder_selection, StackedSelection)
    x, y = batches[list(range(0, 24, 2))]
    if padded:  # two windows with a shorter history: the LSTM's packed path
        x["encoder_lengths"] = x["encoder_lengths"].clone()
        x["encoder_lengths"][[1, 5]] -= torch.tensor([3, 7])
    want, g_want = loss_and_gradients(network, x, y, fast=False)
    got, g_got = loss_and_gradients(network, x, y, fast=True)
    # In training the attention weights are not kept (the loss does not read them).
    assert got["encoder_attention"] is None
    assert_same_outputs(got, want, tuple(k for k in OUTPUTS if "attention" not in k))
    assert set(g_got) == set(g_want) and len(g_want) > 50
    scale = max(float(g.abs().max()) for g in g_want.values())
    assert scale > 1e-4  # a real gradient, not zeros
    for name, grad in g_want.items():
        torch.testing.assert_close(
            g_got[name], grad, rtol=1e-4, atol=1e-6 * scale, msg=lambda m, n=name: f"{n}: {m}"
        )


def test_dropout_is_drawn_in_training_only_and_the_forward_is_given_back() -> None:
    network, batches = network_and_batches(ModelSpec(**{**SPEC.to_dict(), "dropout": 0.3}))
    x, _ = batches[list(range(8))]
    with torch.no_grad():
        network.eval()
        want = network(x)
        with training_forward(network):
            assert isinstance(network.__dict__["forward"], TftTraining)
            assert_same_outputs(network(x), want)  # eval mode: no masks, the same function
            network.train()
            first, second = network(x)["prediction"], network(x)["prediction"]
        assert "forward" not in network.__dict__
    assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))  # masks drawn
    with pytest.raises(RuntimeError, match="boom"), training_forward(network):
        raise RuntimeError("boom")
    assert "forward" not in network.__dict__


class _SeesForward(Callback):
    def __init__(self) -> None:
        self.forwards: list[str] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.forwards.append(type(pl_module.__dict__.get("forward")).__name__)


def test_run_trainer_trains_with_the_training_forward() -> None:
    spec = ModelSpec(**{**SPEC.to_dict(), "max_windows_per_epoch": 64, "micro_batch_size": 32})
    network, batches = network_and_batches(spec)
    seen = _SeesForward()
    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    run_trainer(network, batches, spec, 1, 1, "cpu", None, None, 0, callbacks=[seen])
    assert seen.forwards == ["TftTraining"] * 2
    assert "forward" not in network.__dict__
    assert any(not torch.equal(p, before[n]) for n, p in network.named_parameters())
