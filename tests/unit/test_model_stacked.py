"""The stacked variable selection is the module's function for any prescaler weights.

``StackedSelection`` never makes the prescaled inputs: it folds each prescaler into
the layers after it and normalises the GRNs' residual lines in closed form. So it must
be pytorch-forecasting's ``VariableSelectionNetwork`` (outputs, selection weights and
every parameter's gradient) whatever the prescalers and inputs are, also far from
initialisation: large and small weights, a prescaler bias nearly parallel to its weight
(residual lines nearly flat where the inputs lie). In float64 both are the same
function to rounding; in float32 the stacked pass must stay about as close to that
function as the module's own float32 pass (a variance expanded as ``p x² + 2 q x + r``
was off by up to 98 % there, against the module's 0.05 %).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    GatedResidualNetwork,
    VariableSelectionNetwork,
)
from torch import nn

from nordiqd.model.errors import ModelError
from nordiqd.model.stacked import StackedSelection

HIDDEN, CONTINUOUS = 8, 4
Selection = Callable[[dict[str, torch.Tensor], torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


def selection(count: int, context: bool = True) -> VariableSelectionNetwork:
    """A selection over ``count`` reals laid out as the TFT lays out its encoder's."""
    names = [f"real_{i}" for i in range(count)]
    return VariableSelectionNetwork(
        input_sizes=dict.fromkeys(names, CONTINUOUS),
        hidden_size=HIDDEN,
        input_embedding_flags={},
        dropout=0.1,
        context_size=HIDDEN if context else None,
        prescalers={n: nn.Linear(1, CONTINUOUS) for n in names},
    )


def randomise(vsn: VariableSelectionNetwork, magnitude: float, parallel: float) -> None:
    """Every parameter off its initial value; prescalers of ``magnitude`` whose bias is
    ``parallel`` of the way to -1.7 times their weight (prescaled inputs near 0 at 1.7)."""
    with torch.no_grad():
        for param in vsn.parameters():
            param.add_(torch.randn_like(param) * 0.3)
        for prescaler in vsn.prescalers.values():
            prescaler.weight.mul_(magnitude)
            bias = prescaler.bias * magnitude
            prescaler.bias.copy_(parallel * -1.7 * prescaler.weight[:, 0] + (1 - parallel) * bias)


class Case:
    """One drawn selection with its inputs, run in a given float type."""

    def __init__(self, count: int, magnitude: float, parallel: float, spread: float, context: bool) -> None:
        self.vsn = selection(count, context)
        randomise(self.vsn, magnitude, parallel)
        self.vsn.eval()  # no dropout: both passes are one function
        self.x = {name: torch.randn(3, 7, 1) * spread for name in self.vsn.input_sizes}
        self.x["real_0"] = self.x["real_0"] + 1.7  # where the near-parallel lines are flattest
        self.context = torch.randn(3, 1, HIDDEN) if context else None
        self.probes = torch.randn(3, 7, HIDDEN), torch.randn(3, 7, 1, count)

    def run(self, forward: Selection, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The outputs, the weights and every parameter's gradient of a fixed projection."""
        self.vsn.to(dtype)
        self.vsn.zero_grad()
        x = {name: value.to(dtype) for name, value in self.x.items()}
        out, weights = forward(x, None if self.context is None else self.context.to(dtype))
        probe, weight_probe = (p.to(dtype) for p in self.probes)
        ((out * probe).sum() + (weights * weight_probe).sum()).backward()
        got = {"output": out.detach(), "weights": weights.detach()}
        got |= {n: p.grad.clone() for n, p in self.vsn.named_parameters() if p.grad is not None}
        self.vsn.float()
        return {name: value.double() for name, value in got.items()}


def error(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    """The largest difference of any tensor, relative to that tensor's largest value."""
    assert set(got) == set(want)
    return max(float((got[k] - want[k]).abs().max() / want[k].abs().max()) for k in want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    count=st.integers(3, 6),
    magnitude=st.sampled_from([0.01, 0.3, 1.0, 10.0, 100.0]),
    parallel=st.sampled_from([0.0, 0.5, 0.99, 0.9999]),
    spread=st.sampled_from([0.1, 1.0]),
    context=st.booleans(),
)
def test_the_stacked_selection_is_the_module_function(
    seed: int, count: int, magnitude: float, parallel: float, spread: float, context: bool
) -> None:
    torch.manual_seed(seed)
    case = Case(count, magnitude, parallel, spread, context)
    stacked = StackedSelection(case.vsn)
    exact = case.run(case.vsn, torch.float64)
    assert set(exact) == {"output", "weights"} | {n for n, _ in case.vsn.named_parameters()}
    assert error(case.run(stacked, torch.float64), exact) < 1e-9
    module_error = error(case.run(case.vsn, torch.float32), exact)
    assert error(case.run(stacked, torch.float32), exact) < 30 * max(module_error, 1e-4)


def test_a_selection_not_of_our_layout_does_not_stack() -> None:
    vsn = selection(3)
    vsn.single_variable_grns["real_1"] = GatedResidualNetwork(CONTINUOUS, CONTINUOUS, HIDDEN, 0.1, HIDDEN)
    with pytest.raises(ModelError, match="our layout"):
        StackedSelection(vsn)
    with pytest.raises(ModelError, match="two or more"):
        StackedSelection(selection(1))
