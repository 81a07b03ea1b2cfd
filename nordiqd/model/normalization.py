"""Per-window target normalisation, as ``EncoderNormalizer`` fits it, for whole batches.

Training (``windows``) and serving (``forecast``) both normalise each window's targets by
the mean and standard deviation of its own encoder history; this module is that one
computation, and imports nothing of either.
"""

from __future__ import annotations

import functools

import torch


def encoder_normalization(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each window's (centre, scale) [n, m] of encoder targets ``y`` [n, T, m] (float32).

    ``TimeSeriesDataSet`` fits every window's target as its own 1-D float32 tensor: torch
    mean, unbiased std, + float32 eps. A batched reduction rounds differently, which does
    not matter unless the target never moves in the window (``swap_used_pct`` at a
    constant): then the scale is eps and the rounding *is* the normalised input the
    network sees, so those windows are reduced one by one, as the dataset does, to give
    the model's own answer. A window that holds one value throughout (a metric at 0) has
    the 1-D std of that value, looked up once per value.
    """
    return row_normalization(y.transpose(1, 2).contiguous())


def row_normalization(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``encoder_normalization`` of encoder targets laid out [n, m, T], contiguous.

    In this layout a row's mean rounds as the 1-D mean of that row does.
    """
    center = rows.mean(dim=-1)
    # Two passes in plain arithmetic: a few times faster than torch's std kernel, and
    # within float rounding of it; where rounding matters (flat windows) it is redone.
    deviation = rows - center[..., None]
    spread = ((deviation * deviation).sum(dim=-1) / max(1, rows.size(-1) - 1)).sqrt()
    flat = spread <= 1e-4 * (1.0 + center.abs())
    if bool(flat.any()):
        first = rows[..., 0]
        constant = flat & (rows == first[..., None]).all(dim=-1)
        if bool(constant.any()):
            length = rows.size(-1)
            values = [_constant_std(v, length) for v in first[constant].tolist()]
            spread[constant] = torch.tensor(values, dtype=spread.dtype)
        for i, j in (flat & ~constant).nonzero().tolist():
            spread[i, j] = torch.std(rows[i, j].clone())
    return center, spread + torch.finfo(torch.float32).eps


@functools.lru_cache(maxsize=4096)
def _constant_std(value: float, length: int) -> float:
    """The 1-D float32 std of ``length`` copies of ``value``: zero in exact arithmetic,
    the rounding of its mean in float32."""
    return float(torch.std(torch.full((length,), value, dtype=torch.float32)))
