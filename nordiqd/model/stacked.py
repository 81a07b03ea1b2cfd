"""The TFT's time-varying variable selections for training: every variable's GRN at once.

pytorch-forecasting's ``VariableSelectionNetwork`` runs each input through its own
prescaler and gated residual network (GRN), one after the other: for the encoder's ten
reals that is ten chains of a dozen small kernels, each over [batch, time, 16] or
[batch, time, 32]. Written for [variables, batch x time, ...] tensors, the same
arithmetic runs as one chain of batched products (``torch.bmm``) whose weights are
the GRNs' own parameters stacked in every forward, so autograd reaches them as it
reaches the modules. Dropout is drawn where the GRN draws it (before each gate's linear
layer), element by element with the same probability (``nordiqd.model.dropout``), so
training sees the same distribution of masks, only not the same draws. Without dropout the outputs and the
gradients equal the network's own to float rounding
(``tests/unit/test_model_train_forward.py``).

No operation here writes in place: the tensors are the autograd graph.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    GatedResidualNetwork,
    ResampleNorm,
    VariableSelectionNetwork,
)

from nordiqd.model.dropout import dropout
from nordiqd.model.errors import ModelError


def _interpolation(size: int, out: int) -> torch.Tensor:
    """The [size, out] matrix of ``F.interpolate(..., mode="linear", align_corners=True)``."""
    eye = torch.eye(size).unsqueeze(1)
    return F.interpolate(eye, out, mode="linear", align_corners=True).squeeze(1)


def _stack(modules: list[Any], name: str) -> torch.Tensor:
    return torch.stack([getattr(m, name) for m in modules])


class StackedSelection:
    """A ``VariableSelectionNetwork`` over prescaled reals, its GRNs run as one.

    Args:
        vsn: The network's selection; read, never modified.

    Raises:
        ModelError: The selection has an input that is not a prescaled real with a GRN
            of the layout every TFT of ours has (then the caller runs the module itself).
    """

    def __init__(self, vsn: Any) -> None:
        if not isinstance(vsn, VariableSelectionNetwork) or vsn.num_inputs < 2:
            raise ModelError("only a selection over two or more inputs stacks")
        names = list(vsn.input_sizes)
        if any(n not in vsn.prescalers for n in names):
            raise ModelError("only a selection over prescaled reals stacks")
        grns = [vsn.single_variable_grns[n] for n in names]
        first = grns[0]
        for grn in grns:
            if not isinstance(grn, GatedResidualNetwork) or not isinstance(
                getattr(grn, "resample_norm", None), ResampleNorm
            ):
                raise ModelError("only GRNs with a resampled residual stack")
            norm, add_norm = grn.resample_norm, grn.gate_norm.add_norm
            same = (grn.input_size, grn.hidden_size, grn.output_size) == (
                first.input_size,
                first.hidden_size,
                first.output_size,
            )
            if (
                not same
                or grn.context_size is not None
                or not norm.trainable_add
                or add_norm.trainable_add
                or add_norm.input_size != add_norm.skip_size
            ):
                raise ModelError("only GRNs of one shape, without context, stack")
        self.vsn, self.names, self.grns = vsn, names, grns
        self.prescalers = [vsn.prescalers[n] for n in names]
        self.resample = _interpolation(first.input_size, first.output_size)
        dropout = grns[0].gate_norm.glu.dropout
        self.dropout = float(dropout.p) if dropout is not None else 0.0

    def __call__(
        self, x: dict[str, torch.Tensor], context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(output [batch, time, hidden], weights [batch, time, 1, variables]) as the module
        returns them, for inputs [batch, time, 1] by name and a context [batch, 1, context]."""
        vsn, grns = self.vsn, self.grns
        raw = torch.cat([x[n] for n in self.names], dim=-1)  # [B, T, V]
        batch, steps, count = raw.shape
        rows = raw.reshape(-1, count).T[..., None]  # [V, N, 1]
        # The prescalers: Linear(1, s) of each variable's value.
        scale, shift = _stack(self.prescalers, "weight").transpose(1, 2), _stack(self.prescalers, "bias")
        emb = rows * scale + shift[:, None]
        flat = emb.transpose(0, 1).reshape(batch, steps, -1)  # [B, T, V x s], the module's concatenation
        weights = torch.softmax(vsn.flattened_grn(flat, context), dim=-1)  # [B, T, V]

        hidden = _linear(emb, [g.fc1 for g in grns])
        hidden = _linear(F.elu(hidden), [g.fc2 for g in grns])
        hidden = dropout(hidden, self.dropout, vsn.training)
        gated = F.glu(_linear(hidden, [g.gate_norm.glu.fc for g in grns]), dim=-1)
        # The residual: each prescaled value interpolated to the output width, gated and
        # layer-normalised by its own ResampleNorm.
        norms = [g.resample_norm for g in grns]
        skip = torch.matmul(emb, self.resample) * (torch.sigmoid(_stack(norms, "mask")) * 2.0)[:, None]
        skip = _affine_norm(skip, [n.norm for n in norms])
        outputs = _affine_norm(gated + skip, [g.gate_norm.add_norm.norm for g in grns])  # [V, N, H]
        # Σ_v outputs[v] x weights[v] (a [1, V] @ [V, H] product per row is far slower).
        combined = (outputs * weights.reshape(-1, count).T[..., None]).sum(dim=0)
        return combined.view(batch, steps, -1), weights.unsqueeze(-2)


def _linear(x: torch.Tensor, layers: list[Any]) -> torch.Tensor:
    """Variable v's ``Linear`` of ``x[v]`` for ``x`` [V, N, in]: one batched product.

    ``bmm`` then the bias: ``baddbmm`` with a broadcast bias ran at half the speed.
    """
    return torch.bmm(x, _stack(layers, "weight").transpose(1, 2)) + _stack(layers, "bias")[:, None]


def _affine_norm(x: torch.Tensor, norms: list[Any]) -> torch.Tensor:
    """Layer norm of ``x`` [V, N, H] with variable v's own ``LayerNorm`` affine."""
    normed = F.layer_norm(x, (x.size(-1),), eps=norms[0].eps)
    return torch.addcmul(_stack(norms, "bias")[:, None], normed, _stack(norms, "weight")[:, None])
