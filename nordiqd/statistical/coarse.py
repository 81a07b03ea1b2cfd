"""From model steps to a coarse (hourly) series and back.

``to_coarse`` averages the last ``days`` of a step series into bins of ``bin_s``
seconds aligned so the last bin ends at the origin (seasonality in bins does not need
clock alignment); bins without data are filled by linear interpolation and leading
empty bins dropped. It also keeps the **within-bin variance** (the mean variance of the
steps around their bin's mean): a forecast of bin means says nothing about that noise,
and a 5-minute value carries it.

``to_steps`` maps a forecast of bin means (and their standard deviations) back to
steps: a piecewise-linear path through the centre of the last observed bin (its mean,
spread 0) and the centres of the forecast bins, held flat past the last centre; the
step spread is ``sqrt(bin spread^2 + within-bin variance)``. Quantile ``q`` at a step
is ``mean + z_q * spread`` (normal, as the models' own intervals are).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

DAYS = 15  # over two weeks: MSTL keeps a weekly season only with more than two cycles
BIN_S = 3600
MIN_BINS = 48  # two days: a daily season needs two cycles to be estimated


@dataclass(frozen=True)
class Coarse:
    """A series as bin means.

    Attributes:
        values: Bin means, oldest first, no NaN (gaps interpolated).
        bin_s: Seconds per bin.
        per_bin: Model steps per bin.
        within_var: Mean variance of the steps around their bin's mean.
        end_s: When the last bin ends (epoch seconds; 0 where the series has no clock).
    """

    values: np.ndarray
    bin_s: int
    per_bin: int
    within_var: float
    end_s: float = 0.0

    @property
    def season(self) -> int:
        """Bins per day."""
        return max(1, 86400 // self.bin_s)


def to_coarse(
    history: np.ndarray, step_s: int, *, days: int = DAYS, bin_s: int = BIN_S, end_s: float = 0.0
) -> Coarse | None:
    """Bin means of the last ``days`` of ``history`` (module docstring).

    Args:
        history: Array [T] of step values, oldest first, NaN for gaps.
        step_s: Seconds per step.
        days: How much history to keep.
        bin_s: Seconds per bin, a multiple of ``step_s``.
        end_s: When ``history`` ends (epoch seconds), kept as the last bin's end.

    Returns:
        The coarse series, or None with fewer than ``MIN_BINS`` bins from the first
        finite one.

    Raises:
        ValueError: ``bin_s`` is not a positive multiple of ``step_s``.
    """
    if step_s <= 0 or bin_s % step_s:
        raise ValueError(f"bin of {bin_s} s is not a multiple of the {step_s} s step")
    per_bin = bin_s // step_s
    x = np.asarray(history, dtype=np.float64)[-days * 86400 // step_s :]
    n_bins = x.size // per_bin
    if n_bins < MIN_BINS:
        return None
    x = x[x.size - n_bins * per_bin :].reshape(n_bins, per_bin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty bins: NaN is the answer
        means = np.nanmean(x, axis=1)
        within = np.nanmean(np.nanvar(x, axis=1))
    finite = np.isfinite(means)
    if finite.sum() < 2:
        return None
    first = int(np.argmax(finite))
    means, finite = means[first:], finite[first:]
    if means.size < MIN_BINS:
        return None
    idx = np.arange(means.size)
    means = np.interp(idx, idx[finite], means[finite])
    return Coarse(
        values=means,
        bin_s=bin_s,
        per_bin=per_bin,
        within_var=float(within) if np.isfinite(within) else 0.0,
        end_s=end_s,
    )


def bins_for(horizon_steps: int, per_bin: int) -> int:
    """Forecast bins needed to cover ``horizon_steps`` (one more to interpolate the end)."""
    return math.ceil(horizon_steps / per_bin) + 1


def to_steps(
    coarse: Coarse, mean: np.ndarray, std: np.ndarray, horizon_steps: int, quantiles: Sequence[float]
) -> np.ndarray:
    """Quantiles [horizon_steps, Q] of the steps from a forecast of bin means (module docstring).

    Args:
        coarse: The series the forecast continues.
        mean: Forecast bin means [K].
        std: Their standard deviations [K].
        horizon_steps: Steps to return.
        quantiles: Quantile levels in (0, 1).
    """
    a = coarse.per_bin
    centres = np.arange(len(mean)) * a + (a - 1) / 2  # in steps ahead, 0 = first step
    x = np.concatenate([[-(a + 1) / 2], centres])
    steps = np.arange(horizon_steps, dtype=np.float64)
    path = np.interp(steps, x, np.concatenate([[coarse.values[-1]], mean]))
    spread = np.interp(steps, x, np.concatenate([[0.0], np.nan_to_num(std, nan=0.0)]))
    spread = np.sqrt(spread**2 + coarse.within_var)
    z = np.array([0.0 if q == 0.5 else NormalDist().inv_cdf(q) for q in quantiles])
    return path[:, None] + spread[:, None] * z  # type: ignore[no-any-return]
