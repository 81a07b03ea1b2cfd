"""The TFT's time-varying variable selections for training: every variable's GRN at once.

pytorch-forecasting's ``VariableSelectionNetwork`` runs each input through its own
prescaler and gated residual network (GRN), one after the other: for the encoder's ten
reals that is ten chains of a dozen small kernels, each over [batch, time, 16] or
[batch, time, 32]. Written for [variables, batch x time, ...] tensors, the same
arithmetic runs as one chain of batched products (``torch.bmm``) whose weights are
the GRNs' own parameters stacked in every forward, so autograd reaches them as it
reaches the modules.

Each input is one real x per row and its prescaler makes ``x * s + b`` of it, so
whatever is linear in the prescaled values before a nonlinearity is a line in x: a
GRN's first layer is ``x * (W s) + (W b + c)``, its resampled residual
``x * (s R) + b R`` (``R`` the interpolation matrix), whose layer norm then has a
closed form, and the flattened GRN's first layer and residual over the concatenation
of every prescaled input are ``raw @ A + const`` for the [rows, variables] reals. So
the [variables, rows, 16] prescaled inputs are never made: against the stacked GRNs
over them, the encoder's selection of a default micro-batch (10 reals x 4,608 rows)
runs forward and backward in about 34 instead of 48-55 ms on one thread. The small
products of weights (``W s`` and the like) are made in every forward from the
parameters, so autograd reaches the parameters as before.

Dropout is drawn where the GRN draws it (before each gate's linear layer), element by
element with the same probability (``nordiqd.model.dropout``), so training sees the
same distribution of masks, only not the same draws. Without dropout the outputs and
the gradients equal the network's own to float rounding
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
    """The [size, out] matrix of ``F.interpolate(..., mode="linear", align_corners=True)``,
    in float64 (cast to the parameters' type in the forward)."""
    eye = torch.eye(size, dtype=torch.float64).unsqueeze(1)
    return F.interpolate(eye, out, mode="linear", align_corners=True).squeeze(1)


def _stack(modules: list[Any], name: str) -> torch.Tensor:
    return torch.stack([getattr(m, name) for m in modules])


def _check_grn(grn: Any, context: bool) -> None:
    """Raise ``ModelError`` unless ``grn`` is a GRN with a resampled, gated residual
    whose gate adds without a trainable gate, with a context layer iff ``context``."""
    if not isinstance(grn, GatedResidualNetwork) or not isinstance(
        getattr(grn, "resample_norm", None), ResampleNorm
    ):
        raise ModelError("only GRNs with a resampled residual stack")
    add_norm = grn.gate_norm.add_norm
    if (
        (grn.context_size is not None) != context
        or not grn.resample_norm.trainable_add
        or add_norm.trainable_add
        or add_norm.input_size != add_norm.skip_size
    ):
        raise ModelError("only GRNs of our layout stack")


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
        shape = (grns[0].input_size, grns[0].hidden_size, grns[0].output_size)
        for grn in grns:
            _check_grn(grn, context=False)
            if (grn.input_size, grn.hidden_size, grn.output_size) != shape:
                raise ModelError("only GRNs of one shape stack")
        prescalers = [vsn.prescalers[n] for n in names]
        if any(p.in_features != 1 or p.bias is None for p in prescalers):
            raise ModelError("only prescalers of one value with a bias stack")
        flattened = vsn.flattened_grn
        _check_grn(flattened, context=vsn.context_size is not None)
        if flattened.input_size != len(names) * shape[0]:
            raise ModelError("the flattened GRN does not read every prescaled input")
        self.vsn, self.names, self.grns, self.prescalers = vsn, names, grns, prescalers
        self.resample = _interpolation(shape[0], shape[2])
        self.flat_resample = _interpolation(flattened.input_size, flattened.output_size)
        self.dropout = _dropout_p(grns[0])
        self.flat_dropout = _dropout_p(flattened)

    def __call__(
        self, x: dict[str, torch.Tensor], context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(output [batch, time, hidden], weights [batch, time, 1, variables]) as the module
        returns them, for inputs [batch, time, 1] by name and a context [batch, 1, context]."""
        grns = self.grns
        raw = torch.cat([x[n] for n in self.names], dim=-1)  # [B, T, V]
        batch, steps, count = raw.shape
        # Contiguous: products of a transposed [V, N, 1] came out strided, and the kernels
        # after them (ELU, GLU and their backward passes) ran several times slower.
        rows = torch.stack([x[n].reshape(-1) for n in self.names])[..., None]  # [V, N, 1]
        # The prescalers: variable v's x becomes x * scale[v] + shift[v] (never made).
        scale, shift = _stack(self.prescalers, "weight")[..., 0], _stack(self.prescalers, "bias")
        weights = torch.softmax(self._flattened(raw, scale, shift, context), dim=-1)  # [B, T, V]

        slope, intercept = _prescaled_linear(scale, shift, [g.fc1 for g in grns])
        hidden = torch.addcmul(intercept[:, None], rows, slope[:, None])  # fc1, [V, N, h]
        hidden = _linear(F.elu(hidden), [g.fc2 for g in grns])
        hidden = dropout(hidden, self.dropout, self.vsn.training)
        gated = F.glu(_linear(hidden, [g.gate_norm.glu.fc for g in grns]), dim=-1)
        # The residual: each prescaled input interpolated to the output width, gated and
        # layer-normalised by its own ResampleNorm; a line in x before its norm.
        norms = [g.resample_norm for g in grns]
        gate = torch.sigmoid(_stack(norms, "mask")) * 2.0
        resample = self.resample.to(scale.dtype)
        slope, intercept = (scale @ resample) * gate, (shift @ resample) * gate
        summed = _plus_line_norm(gated, rows, slope, intercept, [n.norm for n in norms])
        outputs = _affine_norm(summed, [g.gate_norm.add_norm.norm for g in grns])  # [V, N, H]
        # Σ_v outputs[v] x weights[v] (a [1, V] @ [V, H] product per row is far slower).
        combined = (outputs * weights.reshape(-1, count).T[..., None]).sum(dim=0)
        return combined.view(batch, steps, -1), weights.unsqueeze(-2)

    def _flattened(
        self, raw: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, context: torch.Tensor | None
    ) -> torch.Tensor:
        """``vsn.flattened_grn`` of the concatenated prescaled inputs: [B, T, V] logits.

        Its first layer and its resampled residual over the concatenation [B, T, V x s]
        are ``raw @ A + const`` with A [V, out] folded from the prescalers; the rest is
        the GRN's own arithmetic over [B, T, V], its dropout drawn where it draws it.
        """
        grn = self.vsn.flattened_grn
        count, size = scale.shape
        fc1 = grn.fc1.weight.view(-1, count, size)  # [h, V, s]
        hidden = torch.addmm(
            torch.einsum("hvs,vs->h", fc1, shift) + grn.fc1.bias,
            raw.reshape(-1, count),
            torch.einsum("hvs,vs->vh", fc1, scale),
        ).view(*raw.shape[:2], -1)
        if context is not None:
            hidden = hidden + grn.context(context)
        hidden = F.linear(F.elu(hidden), grn.fc2.weight, grn.fc2.bias)
        hidden = dropout(hidden, self.flat_dropout, self.vsn.training)
        gated = F.glu(grn.gate_norm.glu.fc(hidden), dim=-1)
        norm = grn.resample_norm
        resample = self.flat_resample.to(scale.dtype).view(count, size, -1)  # [V, s, out]
        gate = torch.sigmoid(norm.mask) * 2.0
        skip = torch.addmm(
            torch.einsum("vso,vs->o", resample, shift) * gate,
            raw.reshape(-1, count),
            torch.einsum("vso,vs->vo", resample, scale) * gate,
        ).view(*raw.shape[:2], -1)
        skip = norm.norm(skip)
        return grn.gate_norm.add_norm.norm(gated + skip)


def _dropout_p(grn: Any) -> float:
    """The probability of the dropout a GRN draws before its gate's linear layer (0 without)."""
    module = grn.gate_norm.glu.dropout
    return float(module.p) if module is not None else 0.0


def _prescaled_linear(
    scale: torch.Tensor, shift: torch.Tensor, layers: list[Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(slope, intercept) [V, out] of variable v's ``Linear`` of ``x * scale[v] + shift[v]``."""
    weight = _stack(layers, "weight")  # [V, out, in]
    slope = torch.bmm(weight, scale[..., None])[..., 0]
    return slope, torch.bmm(weight, shift[..., None])[..., 0] + _stack(layers, "bias")


def _linear(x: torch.Tensor, layers: list[Any]) -> torch.Tensor:
    """Variable v's ``Linear`` of ``x[v]`` for ``x`` [V, N, in]: one batched product.

    ``bmm`` then the bias: ``baddbmm`` with a broadcast bias ran at half the speed.
    """
    return torch.bmm(x, _stack(layers, "weight").transpose(1, 2)) + _stack(layers, "bias")[:, None]


def _affine_norm(x: torch.Tensor, norms: list[Any]) -> torch.Tensor:
    """Layer norm of ``x`` [V, N, H] with variable v's own ``LayerNorm`` affine."""
    normed = F.layer_norm(x, (x.size(-1),), eps=norms[0].eps)
    return torch.addcmul(_stack(norms, "bias")[:, None], normed, _stack(norms, "weight")[:, None])


def _plus_line_norm(
    gated: torch.Tensor, rows: torch.Tensor, slope: torch.Tensor, intercept: torch.Tensor, norms: list[Any]
) -> torch.Tensor:
    """``gated`` [V, N, H] plus variable v's ``LayerNorm`` of ``rows[v] * slope[v] + intercept[v]``.

    Over the H features the mean of a line in x is a line in x, so the centred row is
    ``x a + c`` (a and c the centred slope and intercept) and its variance a quadratic
    in x. Written about ``x0``, the x where the row is flattest, the row is
    ``(x - x0) a + e`` and its variance ``p (x - x0)² + 2 k (x - x0) + m`` (k is zero
    but for rounding): for any x the terms are never much larger than the variance, so
    rows nearly constant for some x (a bias nearly parallel to the weight) keep float32
    precision, as ``F.layer_norm`` of the made row does. The normalised row times the
    norm's weight is then ``(x - x0) rstd * a w + rstd * e w``: one ``baddbmm`` of
    [V, N, 3] by [V, 3, H] onto ``gated`` instead of making the line, its norm and the
    sum (about 4 against 11 ms forward and backward for the encoder's [10, 4608, 32]).
    """
    slope = slope - slope.mean(-1, keepdim=True)
    intercept = intercept - intercept.mean(-1, keepdim=True)
    p = (slope * slope).mean(-1, keepdim=True)  # [V, 1]
    # The clamp keeps x0 finite for a slope flat across features (then p and the
    # products with it vanish and x0 is about 0: the formula stays exact through k).
    x0 = -(slope * intercept).mean(-1, keepdim=True) / p.clamp_min(1e-20)
    flat = intercept + x0 * slope  # e, [V, H]
    k, m = (slope * flat).mean(-1), (flat * flat).mean(-1)
    d = rows - x0[..., None]  # [V, N, 1]
    var = torch.addcmul(m[:, None, None], d, d * p[..., None] + 2.0 * k[:, None, None])
    rstd = torch.rsqrt(var.clamp_min(0.0) + norms[0].eps)
    weight = _stack(norms, "weight")
    coefficients = torch.stack([slope * weight, flat * weight, _stack(norms, "bias")], dim=1)
    return torch.baddbmm(gated, torch.cat([d * rstd, rstd, torch.ones_like(rstd)], dim=-1), coefficients)
