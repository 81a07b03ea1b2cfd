"""The TFT's variable selection networks for serving, with their linear front folded away.

A time-varying real input is one number per step. pytorch-forecasting widens it with a
``Linear(1, s)`` prescaler, concatenates every widened input into a [batch, time, V x s]
tensor for the weight network, and runs each through its own gated residual network
(GRN) whose residual path interpolates it to the hidden width and layer-normalises it.
Everything between the number and the first nonlinearity is affine in that number, so
it folds into a few vectors per variable, computed once per model:

- the GRN's first layer becomes ``x * a1 + c1``;
- its residual ``LayerNorm(interp(x * w + b) * gate)`` becomes
  ``(x * a + c) / sqrt(x² A + 2 x B + C + eps) * gamma + beta``, the layer norm of an affine
  function of one number written out;
- the weight network's first layer and residual become [batch, time, V] @ [V, ...]
  products of the raw numbers, with no [batch, time, V x s] tensor built.

``FoldedSelection`` does this for a network whose inputs are all prescaled reals (the
encoder and decoder networks of our models); ``select`` is the unfolded path for any
other (the static network, with its embeddings). Both compute a variable once when its
value is the same for every window of the batch (the known time inputs when the windows
end at the same step) and broadcast it; ``FoldedSelection`` also computes a variable once
per window where its value never changes through the window. The GRNs' tails run as
``nordiqd.model.gating.Grn``. Results equal the network's own to float rounding; tests
hold them to 1e-4.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    GatedResidualNetwork,
    ResampleNorm,
)

from nordiqd.model.errors import ModelError
from nordiqd.model.gating import Grn


def _interpolation(size: int, out: int) -> torch.Tensor:
    """The [size, out] matrix of ``F.interpolate(..., mode="linear", align_corners=True)``."""
    eye = torch.eye(size).unsqueeze(1)
    return F.interpolate(eye, out, mode="linear", align_corners=True).squeeze(1)


def _gate(norm: ResampleNorm) -> torch.Tensor:
    if norm.trainable_add:
        return torch.sigmoid(norm.mask) * 2.0
    return torch.ones(norm.output_size)


def _affine_residual(grn: GatedResidualNetwork, w: torch.Tensor, b: torch.Tensor) -> tuple[Any, ...]:
    """A GRN's residual of ``x * w + b`` as (a, c, layer norm or None): ``x * a + c`` before it."""
    if grn.input_size == grn.output_size or grn.residual:
        return w, b, None
    norm = grn.resample_norm
    if norm.input_size != norm.output_size:
        m = _interpolation(norm.input_size, norm.output_size)
        w, b = w @ m, b @ m
    g = _gate(norm)
    return w * g, b * g, norm.norm


class _Variable:
    """One prescaled real input's GRN with its affine front folded."""

    def __init__(self, prescaler: torch.nn.Linear, grn: GatedResidualNetwork) -> None:
        w, b = prescaler.weight[:, 0], prescaler.bias
        self.a1 = grn.fc1.weight @ w
        self.c1 = grn.fc1.weight @ b + grn.fc1.bias
        self.gated = Grn(grn).gated
        a, c, norm = _affine_residual(grn, w, b)
        self.var: tuple[torch.Tensor, ...] | None = None
        if norm is None:  # the residual is x * a + c
            self.skip, self.skip_bias = a[None], c
        else:  # layer norm of x * a + c, in closed form: (x * ra + rc) / sigma(x) * w + b
            ra, rc = a - a.mean(), c - c.mean()
            self.var = ((ra**2).mean(), (ra * rc).mean(), (rc**2).mean() + norm.eps)
            self.skip, self.skip_bias = torch.stack([ra * norm.weight, rc * norm.weight]), norm.bias
        self.size = self.skip.size(-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """GRN output [..., hidden] for scalar inputs ``x`` [..., 1]."""
        if self.var is None:
            terms = x
        else:  # the residual's rows: (x / sigma, 1 / sigma)
            aa, ab, cc = self.var
            inv = torch.rsqrt(x * x * aa + x * (2 * ab) + cc)
            terms = torch.cat([x * inv, inv], dim=-1)
        skip = torch.addmm(self.skip_bias, terms.reshape(-1, terms.size(-1)), self.skip)
        hidden = torch.addcmul(self.c1, x, self.a1)
        return self.gated(hidden, skip.view(*x.shape[:-1], -1))


class FoldedSelection:
    """A ``VariableSelectionNetwork`` over prescaled real inputs; see the module docstring.

    Raises:
        ModelError: An input is not a prescaled real, or the network has one input.
    """

    def __init__(self, vsn: Any) -> None:
        names = list(vsn.input_sizes)
        if len(names) < 2 or any(n not in vsn.prescalers for n in names):
            raise ModelError("only a selection over two or more prescaled reals folds")
        if any(not isinstance(vsn.single_variable_grns[n], GatedResidualNetwork) for n in names):
            raise ModelError("only a selection whose variables have their own GRN folds")
        self.names = names
        with torch.no_grad():
            self.variables = [_Variable(vsn.prescalers[n], vsn.single_variable_grns[n]) for n in names]
            flat = vsn.flattened_grn
            w = torch.cat([vsn.prescalers[n].weight[:, 0] for n in names])
            b = torch.cat([vsn.prescalers[n].bias for n in names])
            sizes = [vsn.input_sizes[n] for n in names]
            spread = torch.block_diag(*[vsn.prescalers[n].weight.T for n in names])  # [V, V x s]
            self.u1 = spread @ flat.fc1.weight.T  # fc1 of the concatenation, per raw value
            self.c1 = flat.fc1.weight @ b + flat.fc1.bias
            a, c, norm = _affine_residual(flat, w, b)
            if a.shape != w.shape:  # resampled: a = w @ m, which per value is spread @ m
                m = _interpolation(sum(sizes), flat.output_size) * _gate(flat.resample_norm)
                self.ua, self.ca = spread @ m, c
            else:
                self.ua, self.ca = spread, c
            self.flat_norm = norm
        self.flat = flat
        self.flat_gated = Grn(flat).gated

    def __call__(self, x: dict[str, torch.Tensor], context: torch.Tensor | None) -> torch.Tensor:
        """The selection's output [batch, time, hidden] for inputs [batch, time, 1] by name."""
        values = [x[n] for n in self.names]
        raw = torch.cat(values, dim=-1)  # [B, T, V]
        rows, shape = raw.reshape(-1, raw.size(-1)), (*raw.shape[:-1], -1)
        flat = self.flat
        hidden = torch.addmm(self.c1, rows, self.u1).view(shape)
        if context is not None:
            hidden = hidden.add_(flat.context(context))
        residual = torch.addmm(self.ca, rows, self.ua).view(shape)
        if self.flat_norm is not None:
            residual = self.flat_norm(residual)
        weights = _softmax(self.flat_gated(hidden, residual))
        outputs = [
            _per_window(var, _batch_wide(value)) for value, var in zip(values, self.variables, strict=True)
        ]
        return _weighted_sum(outputs, weights)


def select(vsn: Any, x: dict[str, torch.Tensor], context: torch.Tensor | None) -> torch.Tensor:
    """``VariableSelectionNetwork`` output, unfolded, each batch-wide input computed once."""
    if vsn.num_inputs <= 1:
        out: torch.Tensor = vsn(x, context)[0]
        return out
    embeddings, outputs = [], []
    batch = next(iter(x.values())).size(0)
    for name in vsn.input_sizes:
        value = _batch_wide(x[name])
        if name in vsn.prescalers:
            value = vsn.prescalers[name](value)
        embeddings.append(value)
        outputs.append(vsn.single_variable_grns[name](value))
    flat = torch.cat([e.expand(batch, *e.shape[1:]) for e in embeddings], dim=-1)
    weights = _softmax(vsn.flattened_grn(flat, context))
    return _weighted_sum(outputs, weights)


def _batch_wide(value: torch.Tensor) -> torch.Tensor:
    """``value`` [batch, ...], or its first row when every window has the same one."""
    if value.size(0) > 1 and torch.equal(value, value[:1].expand_as(value)):
        return value[:1]
    return value


def _per_window(var: _Variable, value: torch.Tensor) -> torch.Tensor:
    """``var(value)`` for ``value`` [batch, time, 1], computed once per window whose value
    never changes (a metric that sits at 0 all day), [batch, 1, hidden] when all do."""
    if value.size(0) == 1 or value.size(1) == 1:
        return var(value)
    still = (value == value[:, :1]).all(dim=1).flatten()
    if not bool(still.any()):
        return var(value)
    if bool(still.all()):
        return var(value[:, :1])
    out = value.new_empty((*value.shape[:2], var.size))
    out[still] = var(value[still, :1])
    out[~still] = var(value[~still])
    return out


def _softmax(x: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(x, dim=-1)`` for a last dim of a few variables, in whole-tensor ops:
    torch's kernel loops per row there (3.3 against 0.6 ms for [64, 288, 10])."""
    e = (x - x.amax(dim=-1, keepdim=True)).exp_()
    return e.div_(e.sum(dim=-1, keepdim=True))


def _weighted_sum(outputs: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Σ_v outputs[v] x weights[..., v]: the selection's output, broadcast over the batch."""
    total = outputs[0] * weights[..., 0:1]
    for v, output in enumerate(outputs[1:], start=1):
        total.addcmul_(output, weights[..., v : v + 1])
    return total
