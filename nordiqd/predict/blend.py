"""Join per-bucket choices of forecast into one path without jumps at the bucket edges.

A router picks, per series and horizon bucket (0-1h, 1-4h, 4-8h), one candidate
forecast. Served as is, the path would jump where one bucket's candidate hands over to
the next. ``weights`` turns the choices into per-step weights, one-hot inside a bucket,
and averages them over ``width`` steps around each step (the first and last step
repeated at the ends of the horizon), so at an edge the weight moves from one candidate
to the next over ``width`` steps; ``blend`` is the weighted mean of the candidates'
quantiles (a weighted mean of quantile forecasts is one, and keeps their order). Used by
the backtest's ``routed`` entry and by the predictor's live routing (``serving.routes``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLEND_STEPS = 5


def weights(
    choice: np.ndarray, spans: Sequence[tuple[int, int]], candidates: int, width: int = BLEND_STEPS
) -> np.ndarray:
    """Per-step weights [C, ..., H] of each candidate from per-bucket choices.

    Args:
        choice: Int array [..., B]: the candidate chosen in each bucket.
        spans: Each bucket's steps ``(start, stop)``, in order, covering the horizon.
        candidates: C, the number of candidates.
        width: Steps an edge is spread over (odd; 1 keeps the hard edges).

    Raises:
        ValueError: ``width`` is even or below 1, or ``spans`` does not match ``choice``.
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"the blend width must be odd and at least 1, got {width}")
    if len(spans) != choice.shape[-1]:
        raise ValueError(f"{len(spans)} bucket spans for {choice.shape[-1]} choices")
    horizon = spans[-1][1]
    out = np.zeros((candidates, *choice.shape[:-1], horizon))
    for b, (start, stop) in enumerate(spans):
        onehot = choice[..., b][None] == np.arange(candidates).reshape((-1,) + (1,) * (choice.ndim - 1))
        out[..., start:stop] = onehot[..., None]
    if width == 1 or horizon == 1:
        return out
    half = width // 2
    padded = np.concatenate([np.repeat(out[..., :1], half, -1), out, np.repeat(out[..., -1:], half, -1)], -1)
    cum = np.cumsum(np.concatenate([np.zeros(out.shape[:-1] + (1,)), padded], axis=-1), axis=-1)
    return (cum[..., width:] - cum[..., :-width]) / width  # type: ignore[no-any-return]


def blend(forecasts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted mean [..., H, Q] of candidate forecasts [C, ..., H, Q] by ``w`` [C, ..., H].

    A candidate's NaN counts only where its weight is not 0 (then the result is NaN).
    """
    used = np.where(w[..., None] > 0, forecasts, 0.0)
    return (w[..., None] * used).sum(axis=0)  # type: ignore[no-any-return]
