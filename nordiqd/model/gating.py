"""The TFT's gated residual networks and gates for serving: fewer passes over memory.

At serving batch sizes a TFT's time is spent streaming [batch, time, hidden] tensors
through elementwise kernels, not multiplying. Two changes cut the number of passes and
change no result beyond float rounding (tests hold the forecasts to 1e-4):

- A ``GatedResidualNetwork`` ends in ``fc2`` followed, with only eval-mode dropout
  between them, by its gate's ``Linear(hidden, 2 x out)``: one linear map, folded into
  one ``[2 x out, hidden]`` matrix once per model.
- Intermediates the pass owns are updated in place (the ELU, the context and the skip
  additions) instead of allocating a new tensor each.

``Grn`` runs a GRN this way, ``Gate`` a ``GatedLinearUnit`` followed by an ``AddNorm``.
Both check at construction that they know the module, and read it without modifying it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    AddNorm,
    GatedLinearUnit,
    GatedResidualNetwork,
)

from nordiqd.model.errors import ModelError


class Grn:
    """A ``GatedResidualNetwork`` with ``fc2`` folded into its gate.

    Raises:
        ModelError: The GRN's gate adds a resampled or gated skip (ours never do).
    """

    def __init__(self, grn: GatedResidualNetwork) -> None:
        add_norm = grn.gate_norm.add_norm
        if add_norm.trainable_add or add_norm.input_size != add_norm.skip_size:
            raise ModelError("fast inference does not know this GRN's gate")
        gate = grn.gate_norm.glu.fc
        with torch.no_grad():
            self.weight = gate.weight @ grn.fc2.weight
            self.bias = gate.weight @ grn.fc2.bias + gate.bias
        self.grn = grn
        self.norm = add_norm.norm
        self.resamples = grn.input_size != grn.output_size and not grn.residual

    def __call__(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The GRN of ``x`` [..., input] with an optional ``context`` [..., 1, context]."""
        grn = self.grn
        hidden = grn.fc1(x)
        if context is not None:
            hidden = _add(hidden, grn.context(context))
        skip = grn.resample_norm(x) if self.resamples else x
        return self.gated(hidden, skip)

    def gated(self, hidden: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The rest of the GRN from its first layer's output ``hidden`` (before the ELU),
        which it overwrites, and the skip already at the output width."""
        gate = F.glu(F.linear(F.elu(hidden, inplace=True), self.weight, self.bias), dim=-1)
        return _normed(_add(gate, skip), self.norm)


class Gate:
    """A ``GatedLinearUnit`` followed by an ``AddNorm``, with the addition in place.

    Raises:
        ModelError: The skip is resampled (ours never is).
    """

    def __init__(self, glu: GatedLinearUnit, add_norm: AddNorm) -> None:
        if add_norm.input_size != add_norm.skip_size:
            raise ModelError("fast inference does not know a resampled skip connection")
        self.glu = glu
        self.add_norm = add_norm
        self.skip_gate = torch.sigmoid(add_norm.mask).detach() * 2.0 if add_norm.trainable_add else None

    def __call__(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``add_norm(glu(x), skip)``."""
        gate = F.glu(self.glu.fc(x), dim=-1)
        if self.skip_gate is not None:
            gate = torch.addcmul(gate, skip, self.skip_gate)
        else:
            gate = _add(gate, skip)
        return _normed(gate, self.add_norm.norm)


def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b``, in ``a``'s memory when ``a`` already has the result's shape."""
    if a.shape == torch.broadcast_shapes(a.shape, b.shape):
        return a.add_(b)
    return a + b


def _normed(x: torch.Tensor, norm: Any) -> torch.Tensor:
    out: torch.Tensor = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    return out
