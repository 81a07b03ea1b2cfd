"""The reference an issue is scored against: seasonal naive from the windows as they stood.

An issue at ``at`` is made from a window snapshot whose last slot is the last complete
step before ``at`` (``RollingWindows.snapshot(targets, now=at - 1)``), so step ``h`` of the
forecast starts ``h + 1`` steps after that slot. Its seasonal-naive value is the window's
value one season (a day) earlier, NaN where that slot is a gap or outside the window;
unlike the served baseline there is no last-value fallback, because a reference that
changes its rule would not be seasonal naive.
"""

from __future__ import annotations

import numpy as np

__all__ = ["seasonal_naive_steps"]


def seasonal_naive_steps(windows: np.ndarray, horizon: int, season_steps: int) -> np.ndarray:
    """The value one season before every forecast step, taken from the windows.

    Args:
        windows: Array [S, L, T] of step means, oldest first, the last slot the step right
            before the issue point (NaN: a gap).
        horizon: Steps forecast.
        season_steps: Steps in a season (86400 / step_seconds).

    Returns:
        Array [S, T, horizon] float32, NaN where unknown.
    """
    s, length, t = windows.shape
    out = np.full((s, t, horizon), np.nan, dtype=np.float32)
    # Step h lies at slot length + h; one season earlier is slot length + h - season.
    src = length + np.arange(horizon) - season_steps
    ok = (src >= 0) & (src < length)
    out[:, :, ok] = np.transpose(windows[:, src[ok], :], (0, 2, 1))
    return out
